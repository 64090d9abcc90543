#!/usr/bin/python3
"""Writes the checkpoint-reader fixtures under test/fixtures/checkpoints/ with REAL PyTorch.

Run with Debian's Python (python3-torch, python3-sentencepiece, python3-protobuf, python3-numpy):

    /usr/bin/python3 scripts/make-checkpoint-fixtures.py

CI never runs this: its outputs are committed. expected.json records, for every tensor torch wrote,
its dtype, shape, the row-major values as float (exact: fp16/bf16/fp32 values are exact in a double)
and the sha256 of its contiguous bytes in the source dtype; and what python's sentencepiece reports
for the tokenizer models. The malicious pickles are only written (pickling never runs __reduce__'s
callable); loading them with Python would run them, so never do that.
"""

import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
from collections import OrderedDict

import torch
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'checkpoints')
ROOT = os.path.normpath(ROOT)
# the file the malicious pickles would create if anything ever ran them (the test checks it never appears)
PWNED = '/tmp/llava-rad-pwned-by-checkpoint-fixture'

torch.manual_seed(1234)
os.makedirs(ROOT, exist_ok=True)
os.makedirs(os.path.join(ROOT, 'sharded'), exist_ok=True)
os.makedirs(os.path.join(ROOT, 'sharded-safetensors'), exist_ok=True)

DTYPE_NAMES = {
    torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64',
    torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8',
    torch.bool: 'BOOL',
}


def raw_bytes(t):
    c = t.detach().contiguous()
    if c.dtype == torch.bfloat16:
        c = c.view(torch.int16)
    return c.numpy().tobytes()


def describe(t):
    c = t.detach().contiguous()
    vals = c.to(torch.float64).flatten().tolist() if c.dtype != torch.bool else [float(x) for x in c.flatten().tolist()]
    return {
        'dtype': DTYPE_NAMES[c.dtype],
        'shape': list(c.shape),
        'contiguous': t.is_contiguous(),
        'values': vals,
        'sha256': hashlib.sha256(raw_bytes(c)).hexdigest(),
    }


def describe_dict(d, prefix=''):
    out = OrderedDict()
    for k, v in d.items():
        if isinstance(v, torch.Tensor):
            out[prefix + k] = describe(v)
        elif isinstance(v, dict):
            out.update(describe_dict(v, prefix + k + '.'))
    return out


expected = OrderedDict()

# ---------------------------------------------------------------------------------------------------
# 1. a state dict (OrderedDict) with fp32/fp16/bf16, a non-contiguous view, shared storage, a 0-dim scalar
base = torch.randn(5, 6)
shared = torch.randn(10)
sd = OrderedDict()
sd['layer.f32'] = torch.randn(3, 4)
sd['layer.f16'] = torch.randn(2, 3, 5).half()
sd['layer.bf16'] = torch.randn(4, 8).bfloat16()
sd['view.transposed'] = base.t()                      # stride (1, 6)
sd['view.sliced'] = base[1:, ::2]                     # offset 6, stride (6, 2)
sd['view.expanded'] = torch.randn(3, 1).expand(3, 4)  # stride (1, 0)
sd['shared.a'] = shared[:4]
sd['shared.b'] = shared[4:].view(2, 3)                # same storage, offset 4
sd['scalar'] = torch.tensor(3.5)
sd['buffer.position_ids'] = torch.arange(7, dtype=torch.int64).unsqueeze(0)
sd['empty'] = torch.zeros(0, 4)
sd['f16.transposed'] = torch.randn(3, 5).half().t()
assert not sd['view.transposed'].is_contiguous() and not sd['view.sliced'].is_contiguous()
assert sd['shared.a'].storage().data_ptr() == sd['shared.b'].storage().data_ptr()
torch.save(sd, os.path.join(ROOT, 'state_dict.pt'))
expected['state_dict.pt'] = {'format': 'zip', 'tensors': describe_dict(sd), 'skipped': []}

# the same archive with DEFLATE-compressed entries (torch never writes these; zip tools might)
import zipfile
with zipfile.ZipFile(os.path.join(ROOT, 'state_dict.pt')) as src, \
        zipfile.ZipFile(os.path.join(ROOT, 'state_dict_deflated.pt'), 'w', compression=zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
expected['state_dict_deflated.pt'] = {'format': 'zip', 'tensors': describe_dict(sd), 'skipped': []}

# legacy (non-zip) format of the same state dict
torch.save(sd, os.path.join(ROOT, 'legacy.pt'), _use_new_zipfile_serialization=False)
expected['legacy.pt'] = {'format': 'legacy', 'tensors': describe_dict(sd), 'skipped': []}

# a dict holding nn.Parameters (pickled through torch._utils._rebuild_parameter)
params = {'weight': torch.nn.Parameter(torch.randn(2, 3)), 'bias': torch.nn.Parameter(torch.randn(3).half(), requires_grad=False)}
torch.save(params, os.path.join(ROOT, 'parameters.pt'))
expected['parameters.pt'] = {'format': 'zip', 'tensors': describe_dict(params), 'skipped': []}


# ---------------------------------------------------------------------------------------------------
# 2. an open_clip-like training checkpoint: {'epoch', 'name', 'state_dict': {'module.visual.trunk...'},
#    'optimizer': a real AdamW state dict}
class Tower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embed = torch.nn.Parameter(torch.randn(1, 5, 8))
        self.cls_token = torch.nn.Parameter(torch.randn(1, 1, 8))
        self.qkv = torch.nn.Linear(8, 24)
        self.gamma = torch.nn.Parameter(torch.randn(8))


class Clip(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = torch.nn.Module()
        self.visual.trunk = Tower()
        self.text = torch.nn.Module()
        self.text.proj = torch.nn.Linear(8, 4, bias=False)
        self.logit_scale = torch.nn.Parameter(torch.tensor(4.6052))


model = Clip()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
model.visual.trunk.pos_embed.sum().backward()
model.logit_scale.backward()
opt.step()
ddp_sd = OrderedDict(('module.' + k, v.detach().half()) for k, v in model.state_dict().items())
ckpt = {
    'epoch': 3,
    'name': 'biomedclipcxr_518',
    'state_dict': ddp_sd,
    'optimizer': opt.state_dict(),
    'scaler': {'scale': 65536.0, 'growth_factor': 2.0, 'backoff_factor': 0.5, 'growth_interval': 2000, '_growth_tracker': 5},
    'notes': ['lists', ('and', 'tuples'), None, True, 1.5, -7, 2 ** 70, b'bytes'],
}
torch.save(ckpt, os.path.join(ROOT, 'open_clip_like.pt'))
expected['open_clip_like.pt'] = {
    'format': 'zip',
    'tensors': describe_dict(ddp_sd),
    'skipped': [],
    'epoch': 3,
    'name': 'biomedclipcxr_518',
    'optimizer_param_groups': [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt.state_dict()['param_groups']],
    'optimizer_state_keys': sorted(opt.state_dict()['state'].keys()),
    'optimizer_state_0': describe_dict(opt.state_dict()['state'][0]),
}

# ---------------------------------------------------------------------------------------------------
# 3. a 2-shard checkpoint with pytorch_model.bin.index.json (LLaMA-like names, fp16)
llama = OrderedDict()
llama['model.embed_tokens.weight'] = torch.randn(16, 8).half()
llama['model.layers.0.self_attn.q_proj.weight'] = torch.randn(8, 8).half()
llama['model.layers.0.self_attn.k_proj.weight'] = torch.randn(8, 8).half()
llama['model.layers.0.input_layernorm.weight'] = torch.randn(8).half()
llama['model.layers.1.self_attn.q_proj.weight'] = torch.randn(8, 8).half()
llama['model.norm.weight'] = torch.randn(8).half()
llama['lm_head.weight'] = torch.randn(16, 8).half()
names = list(llama.keys())
shard1 = OrderedDict((k, llama[k]) for k in names[:4])
shard2 = OrderedDict((k, llama[k]) for k in names[4:])
shard1_name = 'pytorch_model-00001-of-00002.bin'
shard2_name = 'pytorch_model-00002-of-00002.bin'
torch.save(shard1, os.path.join(ROOT, 'sharded', shard1_name))
torch.save(shard2, os.path.join(ROOT, 'sharded', shard2_name))
index = {
    'metadata': {'total_size': sum(t.numel() * t.element_size() for t in llama.values())},
    'weight_map': OrderedDict(sorted([(k, shard1_name) for k in shard1] + [(k, shard2_name) for k in shard2])),
}
with open(os.path.join(ROOT, 'sharded', 'pytorch_model.bin.index.json'), 'w') as f:
    json.dump(index, f, indent=2)
expected['sharded/pytorch_model.bin.index.json'] = {'format': 'sharded', 'tensors': describe_dict(llama), 'skipped': []}

# ---------------------------------------------------------------------------------------------------
# 4. a peft-style adapter_model.bin (LoRA A/B, r=4)
adapter = OrderedDict()
for layer in range(2):
    for proj, (out_f, in_f) in (('self_attn.q_proj', (8, 8)), ('mlp.down_proj', (8, 12))):
        p = f'base_model.model.model.layers.{layer}.{proj}'
        adapter[p + '.lora_A.weight'] = torch.randn(4, in_f).half()
        adapter[p + '.lora_B.weight'] = torch.randn(out_f, 4).half()
torch.save(adapter, os.path.join(ROOT, 'adapter_model.bin'))
expected['adapter_model.bin'] = {'format': 'zip', 'tensors': describe_dict(adapter), 'skipped': []}


# ---------------------------------------------------------------------------------------------------
# 5. safetensors, written by hand following the format (8-byte LE header length, JSON header, data)
def write_safetensors(path, tensors, metadata=None):
    header = OrderedDict()
    if metadata is not None:
        header['__metadata__'] = metadata
    blobs = []
    off = 0
    for k, t in tensors.items():
        b = raw_bytes(t)
        header[k] = {'dtype': DTYPE_NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)  # the reference writer pads the header with spaces to 8 bytes
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


st = OrderedDict()
st['a.f32'] = torch.randn(3, 5)
st['a.f16'] = torch.randn(4, 2).half()
st['a.bf16'] = torch.randn(6).bfloat16()
st['a.i64'] = torch.arange(-3, 3, dtype=torch.int64)
st['a.scalar'] = torch.tensor(-2.25)
st['a.empty'] = torch.zeros(2, 0)
write_safetensors(os.path.join(ROOT, 'model.safetensors'), st, {'format': 'pt', 'note': 'fixture'})
expected['model.safetensors'] = {'format': 'safetensors', 'tensors': describe_dict(st), 'metadata': {'format': 'pt', 'note': 'fixture'}}

st1 = OrderedDict((k, llama[k]) for k in names[:3])
st2 = OrderedDict((k, llama[k]) for k in names[3:])
write_safetensors(os.path.join(ROOT, 'sharded-safetensors', 'model-00001-of-00002.safetensors'), st1, {'format': 'pt'})
write_safetensors(os.path.join(ROOT, 'sharded-safetensors', 'model-00002-of-00002.safetensors'), st2, {'format': 'pt'})
with open(os.path.join(ROOT, 'sharded-safetensors', 'model.safetensors.index.json'), 'w') as f:
    json.dump({'metadata': {'total_size': index['metadata']['total_size']},
               'weight_map': OrderedDict([(k, 'model-00001-of-00002.safetensors') for k in st1] +
                                         [(k, 'model-00002-of-00002.safetensors') for k in st2])}, f, indent=2)
expected['sharded-safetensors/model.safetensors.index.json'] = {'format': 'sharded', 'tensors': describe_dict(llama)}

# ---------------------------------------------------------------------------------------------------
# 6. SentencePiece: a tiny BPE model trained here (byte fallback, a user-defined and a control symbol),
#    and a variant edited through the protobuf (add_dummy_prefix off, one piece UNUSED, other ids)
corpus_path = os.path.join('/tmp', 'llava-rad-sp-corpus.txt')
words = ['heart', 'size', 'is', 'normal', 'lungs', 'are', 'clear', 'no', 'pleural', 'effusion', 'or',
         'pneumothorax', 'mediastinal', 'contours', 'within', 'limits', 'mild', 'atelectasis', 'at', 'the',
         'left', 'right', 'base', 'stable', 'cardiomegaly', 'support', 'devices', 'unchanged', 'position']
import random
rng = random.Random(7)
with open(corpus_path, 'w') as f:
    for _ in range(3000):
        f.write(' '.join(rng.choice(words) for _ in range(rng.randint(4, 12))) + '.\n')
sp_prefix = os.path.join('/tmp', 'llava-rad-sp')
spm.SentencePieceTrainer.train(
    input=corpus_path, model_prefix=sp_prefix, vocab_size=400, model_type='bpe', byte_fallback=True,
    user_defined_symbols=['<image>'], control_symbols=['<ctrl>'], num_threads=1, minloglevel=2,
    character_coverage=1.0, normalization_rule_name='identity')
with open(sp_prefix + '.model', 'rb') as f:
    sp_bytes = f.read()
with open(os.path.join(ROOT, 'tokenizer.model'), 'wb') as f:
    f.write(sp_bytes)

proto = sp_pb2.ModelProto()
proto.ParseFromString(sp_bytes)
proto.normalizer_spec.add_dummy_prefix = False
proto.pieces[300].type = sp_pb2.ModelProto.SentencePiece.UNUSED
proto.trainer_spec.pad_id = 3
proto.trainer_spec.eos_id = -1
with open(os.path.join(ROOT, 'tokenizer-edited.model'), 'wb') as f:
    f.write(proto.SerializeToString())


def describe_sp(path):
    sp = spm.SentencePieceProcessor(model_file=path)
    m = sp_pb2.ModelProto()
    with open(path, 'rb') as f:
        m.ParseFromString(f.read())
    n = sp.get_piece_size()
    types = []
    for i in range(n):
        t = m.pieces[i].type  # SentencePiece numbering = llama.cpp numbering
        # cross-check with the processor's own view
        if sp.is_unknown(i):
            assert t == 2
        elif sp.is_control(i):
            assert t == 3
        elif sp.is_unused(i):
            assert t == 5
        elif sp.is_byte(i):
            assert t == 6
        types.append(t)
    return {
        'tokens': [sp.id_to_piece(i) for i in range(n)],
        'scores': [sp.get_score(i) for i in range(n)],
        'types': types,
        'bosId': sp.bos_id(), 'eosId': sp.eos_id(), 'unkId': sp.unk_id(), 'padId': sp.pad_id(),
        'addDummyPrefix': m.normalizer_spec.add_dummy_prefix,
        'byteFallback': m.trainer_spec.byte_fallback,
        'modelType': m.trainer_spec.model_type,
    }


expected['tokenizer.model'] = describe_sp(os.path.join(ROOT, 'tokenizer.model'))
expected['tokenizer-edited.model'] = describe_sp(os.path.join(ROOT, 'tokenizer-edited.model'))

# ---------------------------------------------------------------------------------------------------
# 7. malicious pickles (never load these with Python)
CMD = f'echo pwned > {PWNED}'


class EvilSystem:
    def __reduce__(self):
        return (os.system, (CMD,))


class EvilEval:
    def __reduce__(self):
        return (eval, (f"__import__('os').system({CMD!r})",))


class EvilPopen:
    def __reduce__(self):
        return (subprocess.Popen, (['sh', '-c', CMD],))


os.makedirs(os.path.join(ROOT, 'malicious'), exist_ok=True)
mal = OrderedDict()
torch.save(OrderedDict([('weight', torch.ones(2)), ('evil', EvilSystem())]), os.path.join(ROOT, 'malicious', 'os_system.pt'))
mal['os_system.pt'] = 'posix.system'
torch.save(OrderedDict([('weight', torch.ones(2)), ('evil', EvilEval())]), os.path.join(ROOT, 'malicious', 'eval.pt'))
mal['eval.pt'] = 'builtins.eval'
torch.save({'evil': EvilPopen()}, os.path.join(ROOT, 'malicious', 'popen_legacy.pt'), _use_new_zipfile_serialization=False)
mal['popen_legacy.pt'] = 'subprocess.Popen'
with open(os.path.join(ROOT, 'malicious', 'popen_proto2.pkl'), 'wb') as f:
    pickle.dump(EvilPopen(), f, protocol=2)  # GLOBAL 'subprocess Popen'
mal['popen_proto2.pkl'] = 'subprocess.Popen'
with open(os.path.join(ROOT, 'malicious', 'system_proto4.pkl'), 'wb') as f:
    pickle.dump({'x': EvilSystem()}, f, protocol=4)  # STACK_GLOBAL
mal['system_proto4.pkl'] = 'posix.system'
with open(os.path.join(ROOT, 'malicious', 'eval_proto0.pkl'), 'wb') as f:
    pickle.dump([EvilEval()], f, protocol=0)
mal['eval_proto0.pkl'] = 'builtins.eval'
expected['malicious'] = {'sideEffectFile': PWNED, 'files': mal}
assert not os.path.exists(PWNED)

with open(os.path.join(ROOT, 'expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
    f.write('\n')

total = 0
for dirpath, _, files in os.walk(ROOT):
    for fn in files:
        total += os.path.getsize(os.path.join(dirpath, fn))
print(f'wrote fixtures to {ROOT}: {total} bytes, torch {torch.__version__}, sentencepiece {spm.__version__}')
