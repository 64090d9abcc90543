#!/usr/bin/python3
"""A minimal LLaMA decoder in PyTorch (float64) that reads a llama.cpp-convention GGUF (f32 / f16 tensors),
plus a SentencePiece tokenizer rebuilt from the GGUF's vocabulary. Independent of our engine: used by
scripts/reference/make_findings_golden.py to write the end-to-end goldens (CI never runs Python).

Decoder (HF LlamaForCausalLM semantics, written from the LLaMA structure):
  h = token_embd[ids] (or caller-supplied inputs_embeds, e.g. with image embeddings spliced in)
  per block:  h += Wo * Attn(RoPE(Wq * rms(h)), RoPE(Wk * rms(h)), Wv * rms(h))   (causal, GQA if n_head_kv < n_head)
              h += Wdown * (silu(Wgate * rms(h)) * (Wup * rms(h)))
  logits = output * rms(h)          (RMSNorm: x / sqrt(mean(x^2) + eps) * w, eps from the GGUF)
RoPE: llama.cpp's converter permutes HF's q_proj/k_proj rows so that ggml's rope mode 0 (NORM), which rotates
ADJACENT pairs (x[2i], x[2i+1]) by pos * base^(-2i/d), equals HF's rotate_half on the original rows. This
reference uses the GGUF rows as stored and rotates adjacent pairs (verified against llama.cpp through our
engine's CLI: `/usr/bin/python3 scripts/reference/llama_reference.py --check MODEL`).

GGUF tensors read with llama.cpp's gguf-py (build/llama.cpp/gguf-py): numpy shapes are ggml's ne reversed,
so a weight with ne=[n_in, n_out] reads as (n_out, n_in), i.e. torch Linear's layout.

usage:
  /usr/bin/python3 scripts/reference/llama_reference.py --check MODEL.gguf   # greedy tokens vs node dist/cli.js
  /usr/bin/python3 scripts/reference/llama_reference.py --tok-check MODEL.gguf  # tokenizer vs our engine
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'build', 'llama.cpp', 'gguf-py'))

import gguf  # noqa: E402

DTYPE = torch.float64


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode('utf-8') for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode('utf-8')
    return f.parts[f.data[0]][0].item()


def read_tensor(t):
    """a GGUF tensor as float64 torch (f32 / f16 only; gguf-py gives numpy in ggml-reversed shape)"""
    if t.tensor_type == gguf.GGMLQuantizationType.F32:
        a = np.asarray(t.data, dtype=np.float32)
    elif t.tensor_type == gguf.GGMLQuantizationType.F16:
        a = np.asarray(t.data, dtype=np.float16).astype(np.float32)
    else:
        raise ValueError(f'{t.name}: type {t.tensor_type!r} not supported by this reference (f32/f16 only)')
    shape = tuple(int(x) for x in reversed(list(t.shape)))
    return torch.from_numpy(a.reshape(shape).astype(np.float64))


class LlamaReference:
    def __init__(self, path):
        self.path = path
        r = gguf.GGUFReader(path)
        arch = _field(r, 'general.architecture')
        if arch != 'llama':
            raise ValueError(f'{path}: architecture {arch!r}, expected llama')
        self.n_embd = _field(r, 'llama.embedding_length')
        self.n_layer = _field(r, 'llama.block_count')
        self.n_head = _field(r, 'llama.attention.head_count')
        self.n_head_kv = _field(r, 'llama.attention.head_count_kv', self.n_head)
        self.eps = float(_field(r, 'llama.attention.layer_norm_rms_epsilon'))  # the stored float32 value
        self.rope_base = float(_field(r, 'llama.rope.freq_base', 10000.0))
        self.head_dim = self.n_embd // self.n_head
        self.n_rot = _field(r, 'llama.rope.dimension_count', self.head_dim)
        if self.n_rot != self.head_dim:
            raise ValueError('partial rotary dims not supported')
        self.bos = _field(r, 'tokenizer.ggml.bos_token_id', 1)
        self.eos = _field(r, 'tokenizer.ggml.eos_token_id', 2)
        self.tokens = _field(r, 'tokenizer.ggml.tokens')
        self.scores = _field(r, 'tokenizer.ggml.scores')
        self.token_types = _field(r, 'tokenizer.ggml.token_type')
        self.w = {t.name: read_tensor(t) for t in r.tensors}
        if 'output.weight' not in self.w:
            raise ValueError('tied output not expected (LLaMA-2 has an untied lm head)')

    # ---- model ----
    def rms(self, x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):
        """x [n, heads, d] in GGUF (permuted) layout: rotate adjacent pairs (ggml rope mode 0)"""
        d = x.shape[-1]
        i = torch.arange(d // 2, dtype=DTYPE)
        inv = self.rope_base ** (-2.0 * i / d)                          # [d/2]
        ang = pos.to(DTYPE)[:, None] * inv[None, :]                     # [n, d/2]
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def embed(self, ids):
        return self.w['token_embd.weight'][torch.as_tensor(ids, dtype=torch.long)]

    def forward(self, inputs_embeds, last_only=False, cache=None):
        """inputs_embeds [n, n_embd] -> logits [n, n_vocab] (or [1, n_vocab], the last row, with last_only).
        cache: None for a full causal pass from position 0, or a list (initially []) holding each layer's
        (K, V) so far; the new rows then continue at position len(K) and are appended to it."""
        h = inputs_embeds.to(DTYPE)
        n = h.shape[0]
        past = cache[0][0].shape[0] if cache else 0
        pos = torch.arange(past, past + n)
        hd, nh, nkv = self.head_dim, self.n_head, self.n_head_kv
        # row i (position past + i) sees keys 0 .. past + i
        mask = torch.full((n, past + n), float('-inf'), dtype=DTYPE).triu(past + 1)
        for L in range(self.n_layer):
            p = f'blk.{L}.'
            x = self.rms(h, self.w[p + 'attn_norm.weight'])
            q = (x @ self.w[p + 'attn_q.weight'].T).view(n, nh, hd)
            k = (x @ self.w[p + 'attn_k.weight'].T).view(n, nkv, hd)
            v = (x @ self.w[p + 'attn_v.weight'].T).view(n, nkv, hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache is not None:
                if len(cache) <= L:
                    cache.append((k, v))
                else:
                    k = torch.cat([cache[L][0], k], 0)
                    v = torch.cat([cache[L][1], v], 0)
                    cache[L] = (k, v)
            if nkv != nh:
                k = k.repeat_interleave(nh // nkv, dim=1)  # query head j uses KV head j // (nh / nkv)
                v = v.repeat_interleave(nh // nkv, dim=1)
            att = torch.einsum('qhd,khd->hqk', q, k) / (hd ** 0.5) + mask
            att = att.softmax(-1)
            o = torch.einsum('hqk,khd->qhd', att, v).reshape(n, nh * hd)
            h = h + o @ self.w[p + 'attn_output.weight'].T
            x = self.rms(h, self.w[p + 'ffn_norm.weight'])
            g = x @ self.w[p + 'ffn_gate.weight'].T
            u = x @ self.w[p + 'ffn_up.weight'].T
            h = h + (torch.nn.functional.silu(g) * u) @ self.w[p + 'ffn_down.weight'].T
        if last_only:
            h = h[-1:]
        h = self.rms(h, self.w['output_norm.weight'])
        return h @ self.w['output.weight'].T

    def greedy(self, inputs_embeds, max_new_tokens, stop_at_eos=True):
        """greedy decoding with a KV cache. Returns (tokens, steps): tokens as generated (an EOS that
        stopped generation included), steps[i] = dict(token, logit, top2_token, top2_logit, margin) for
        the choice at step i (logit = the maximum, margin = top-1 minus top-2)."""
        cache = []
        logits = self.forward(inputs_embeds, last_only=True, cache=cache)[-1]
        out, steps = [], []
        for i in range(max_new_tokens):
            top = torch.topk(logits, 2)
            t1, t2 = int(top.indices[0]), int(top.indices[1])
            l1, l2 = float(top.values[0]), float(top.values[1])
            steps.append(dict(token=t1, logit=l1, top2_token=t2, top2_logit=l2, margin=l1 - l2))
            out.append(t1)
            if (stop_at_eos and t1 == self.eos) or i + 1 == max_new_tokens:
                break
            logits = self.forward(self.embed([t1]), last_only=True, cache=cache)[-1]
        return out, steps


# ---- tokenizer: a SentencePiece BPE ModelProto rebuilt from the GGUF vocabulary ----
def sentencepiece_from_gguf(model):
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    # GGUF token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
    type_map = {1: pb.ModelProto.SentencePiece.NORMAL, 2: pb.ModelProto.SentencePiece.UNKNOWN,
                3: pb.ModelProto.SentencePiece.CONTROL, 4: pb.ModelProto.SentencePiece.USER_DEFINED,
                5: pb.ModelProto.SentencePiece.UNUSED, 6: pb.ModelProto.SentencePiece.BYTE}
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = len(model.tokens)
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = 'identity'
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for piece, score, typ in zip(model.tokens, model.scores, model.token_types):
        sp = m.pieces.add()
        sp.piece, sp.score, sp.type = piece, float(score), type_map[int(typ)]
    proc = spm.SentencePieceProcessor()
    proc.LoadFromSerializedProto(m.SerializeToString())
    return proc


RADIOLOGY = [
    'The lungs are clear. No pleural effusion or pneumothorax.',
    'Heart size is normal. Mediastinal and hilar contours are unremarkable.',
    ' There is mild bibasilar atelectasis;  no focal consolidation.',
    'Provide a description of the findings in the radiology image given the following indication: Chest pain rule out pneumonia',
    '\nProvide a description of the findings in the radiology image. ASSISTANT:',
    'A chat between a curious user and an artificial intelligence assistant. USER: ',
    'ETT tip 4.5 cm above the carina; NG tube courses below the diaphragm. Ø µg café 😀',
]


def _node(script, env_json):
    f = os.path.join('/tmp', f'llava_rad_ref_{os.getpid()}.mjs')
    with open(f, 'w') as fh:
        fh.write(script)
    try:
        res = subprocess.run(['node', '--import', './scripts/ts-hooks.mjs', f], cwd=ROOT,
                             capture_output=True, text=True, input=env_json)
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
    finally:
        os.unlink(f)
    return json.loads(res.stdout.strip().splitlines()[-1])


def engine_tokenize(model_path, texts):
    """our engine's tokenizer (lib/index.ts loadModel(...).tokenize(text, {addBos:false}))"""
    script = r"""
import { readFileSync } from 'node:fs';
const { path, texts, lib } = JSON.parse(readFileSync(0, 'utf8'));
const { loadModel } = await import(lib);
const model = await loadModel({ model: path });
const out = [];
for (const t of texts) out.push(Array.from(model.tokenize(t, { addBos: false })));
if (model.dispose) await model.dispose();
console.log(JSON.stringify(out));
"""
    return _node(script, json.dumps({'path': os.path.abspath(model_path), 'texts': texts,
                                     'lib': 'file://' + os.path.join(ROOT, 'lib', 'index.ts')}))


def check_tokenizer(model_path):
    model = LlamaReference(model_path)
    sp = sentencepiece_from_gguf(model)
    ours = engine_tokenize(model_path, RADIOLOGY)
    ok = True
    for text, theirs in zip(RADIOLOGY, ours):
        ref = sp.encode(text)
        same = ref == theirs
        ok &= same
        print('OK ' if same else 'DIFF', len(ref), 'tokens', repr(text[:60]), flush=True)
        if not same:
            print('  sentencepiece', ref)
            print('  engine       ', theirs)
    return ok


def check_against_engine(model_path, prompts=None, n=16):
    """greedy tokens of text prompts: this reference vs `node dist/cli.js generate` (= llama.cpp)"""
    model = LlamaReference(model_path)
    sp = sentencepiece_from_gguf(model)
    prompts = prompts or ['The lungs are clear. No pleural effusion.',
                          'Heart size is normal and the mediastinum is unremarkable.',
                          'Findings:']
    ok = True
    for text in prompts:
        res = subprocess.run(['node', 'dist/cli.js', 'generate', '--model', os.path.abspath(model_path),
                              '--prompt', text, '--max-tokens', str(n), '--json'],
                             cwd=ROOT, check=True, capture_output=True, text=True)
        eng = json.loads(res.stdout)
        ids = [model.bos] + sp.encode(text)
        same_prompt = ids == eng['prompt_tokens']
        toks, steps = model.greedy(model.embed(ids), n, stop_at_eos=True)
        k = 0
        while k < min(len(toks), len(eng['tokens'])) and toks[k] == eng['tokens'][k]:
            k += 1
        low = next((i for i, s in enumerate(steps) if s['margin'] < 0.05), None)
        agree = k == len(toks) == len(eng['tokens']) or (low is not None and k >= low)
        ok &= same_prompt and agree
        print(f"{'OK ' if same_prompt and agree else 'DIFF'} prompt ids equal={same_prompt} "
              f"tokens equal {k}/{len(toks)}, first margin < 0.05 at step {low}, "
              f"min margin {min(s['margin'] for s in steps):.4f} {text!r}", flush=True)
        if not agree:
            print('  reference', toks)
            print('  engine   ', eng['tokens'])
    return ok


if __name__ == '__main__':
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == '--check':
        sys.exit(0 if check_against_engine(args[1]) else 1)
    if len(args) == 2 and args[0] == '--tok-check':
        sys.exit(0 if check_tokenizer(args[1]) else 1)
    print(__doc__)
    sys.exit(2)
