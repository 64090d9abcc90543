#!/usr/bin/python3
"""Writes a TINY random-weight release in the OFFICIAL layout under test/fixtures/release/ (committed; CI
never runs Python), and the golden of the official pipeline run on it:

  vicuna/      pytorch_model-0000{1,2}-of-00002.bin (torch.save, fp16, HF LLaMA names), pytorch_model.bin.index.json,
               config.json, generation_config.json, tokenizer.model (SentencePiece BPE with the real 32000 LLaMA-2
               pieces and SentencePiece's scores), tokenizer_config.json, special_tokens_map.json
  llava-rad/   config.json (mm_projector_type mlp2x_gelu, mm_vision_select_layer -2, ...), adapter_config.json,
               adapter_model.bin (peft LoRA, fp16), non_lora_trainables.bin (projector),
               biomedclipcxr_518_checkpoint.pt ({'state_dict': {'module.visual.trunk.*', 'module.visual.head.*',
               'module.text.*', 'module.logit_scale'}, 'epoch', 'optimizer'}), biomedclipcxr_518.json
  biomedbert/  the text tower's Hub files (vocab.txt: a small WordPiece vocabulary in PubMedBERT's layout, [PAD] 0;
               config.json: HF BertConfig), what `pull` fetches from microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract
  golden.json  the reference forward of the official pipeline (float64 from the fp16 weights the official
               loader holds: W = fp16(float(W) + alpha/r * B @ A); HF rotate_half RoPE on the UNPERMUTED q/k rows,
               so it checks the converter's permutation independently) on committed test images: the prompt
               tokens (SentencePiece from tokenizer.model itself), greedy tokens, and each step's top-1/top-2 logits.

Sizes: the real 32000-piece vocabulary is kept (the converter must read the real tokenizer.model), so the
embedding and the untied lm head dominate: hidden 32 at fp16 is 2 x 2.05 MB. Hidden 32 is the smallest width
whose rows are a multiple of 32, so q8_0 / q5_0 really quantize the matrices; the FFN width 256 makes ffn_down
rows K-quant sized (q4_K / q6_K in the q4_k_m mix) while the 32-wide rows exercise llama.cpp's fallbacks.

usage: /usr/bin/python3 scripts/make-tiny-release.py [--out DIR --seed S --profile unseen|trained --no-golden]
  --profile trained trains the decoder for a few minutes (scripts/reference/train_tiny_decoder.py); the tower,
  the projector and the LoRA stay random
  (needs node_modules/llama-tokenizer-js; images from
test/fixtures/findings/, written by scripts/reference/make_findings_golden.py)
"""
import json
import math
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..'))
sys.path.insert(0, os.path.join(HERE, 'reference'))

from hf_llama_reference import HfLlama  # noqa: E402
from clip_reference import random_text_tower  # noqa: E402
from clip_text_model import write_text_model  # noqa: E402
from llava_rad_reference import Projector, VisionTower, image_features, randomize_  # noqa: E402

OUT = os.path.join(ROOT, 'test', 'fixtures', 'release')
FINDINGS = os.path.join(ROOT, 'test', 'fixtures', 'findings')
SEED = 4242

DEC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
           intermediate_size=256, rms_norm_eps=1e-5, max_position_embeddings=4096, vocab_size=32000)
LORA = dict(r=4, lora_alpha=8)
TOWER = dict(image_size=518, patch=14, dim=32, depth=3, heads=2, hidden=64, eps=1e-6)
SELECT_LAYER = -2
EMBED_DIM = 16
# the text tower (HF BertModel shape; PubMedBERT: 768 wide, 12 layers, 12 heads, 3072, 512 positions)
TEXT = dict(dim=32, layers=2, heads=2, ff=64, positions=300)
MAX_NEW = 32
# decoder weight scales (std): large q/k and lm-head scales give clear greedy winners (the committed fixture)
SCALES = dict(embed=0.4, qk=0.5, lm_head=0.6, lm_head_lognormal=0.5)

# --profile unseen: another structure (GQA, 3 layers, a wider tower with 3 heads) and better-conditioned
# weights (logits of a few units, like a trained model's), for releases the tests never saw
PROFILES = {
    'unseen': dict(
        DEC=dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=256, rms_norm_eps=1e-6, max_position_embeddings=4096, vocab_size=32000),
        LORA=dict(r=8, lora_alpha=16),
        TOWER=dict(image_size=518, patch=14, dim=48, depth=4, heads=3, hidden=96, eps=1e-6),
        TEXT=dict(dim=48, layers=3, heads=3, ff=96, positions=512),
        SCALES=dict(embed=0.3, qk=0.15, lm_head=0.35, lm_head_lognormal=0.3)),
}
# --profile trained: the unseen structure, its decoder (with the LoRA merged) then trained for a few minutes to
# write findings chosen by the image (scripts/reference/train_tiny_decoder.py): conditioned like a trained model
PROFILES['trained'] = PROFILES['unseen']
CASES = [('radiograph-grey-900x1100.png', None), ('radiograph-rgb-1100x900.jpg', 'Shortness of breath.')]

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")


def prompt_text(reason):
    q = ('Provide a description of the findings in the radiology image given the following indication: '
         + reason.replace('\n', ' ')) if reason else 'Provide a description of the findings in the radiology image.'
    return f'{SYSTEM} USER: <image>\n{q} ASSISTANT:'


# ---- tokenizer.model -------------------------------------------------------------------------------
def llama_pieces():
    js = "import('llama-tokenizer-js').then(m => process.stdout.write(JSON.stringify(m.default.vocabById)))"
    res = subprocess.run(['node', '-e', js], cwd=ROOT, check=True, capture_output=True, text=True)
    pieces = json.loads(res.stdout)
    assert len(pieces) == 32000 and pieces[:3] == ['<unk>', '<s>', '</s>'], pieces[:3]
    return pieces


def write_tokenizer(path, pieces):
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    t = m.trainer_spec
    t.model_type = pb.TrainerSpec.BPE
    t.vocab_size = len(pieces)
    t.byte_fallback = True
    t.split_digits = True
    t.unk_id, t.bos_id, t.eos_id, t.pad_id = 0, 1, 2, -1
    n = m.normalizer_spec
    n.name = 'identity'
    n.add_dummy_prefix = True
    n.remove_extra_whitespaces = False
    n.escape_whitespaces = True
    P = pb.ModelProto.SentencePiece
    for i, piece in enumerate(pieces):
        sp = m.pieces.add()
        sp.piece = piece
        if i == 0:
            sp.type, sp.score = P.UNKNOWN, 0.0
        elif i in (1, 2):
            sp.type, sp.score = P.CONTROL, 0.0
        elif 3 <= i <= 258:
            assert piece == f'<0x{i - 3:02X}>', piece
            sp.type, sp.score = P.BYTE, 0.0
        else:
            sp.type = P.NORMAL
            # SentencePiece's LLaMA-2 scores: -(id - 259); the 16 all-space pieces merge last
            sp.score = -1e9 if set(piece) == {'\u2581'} else -float(i - 259)
    with open(path, 'wb') as f:
        f.write(m.SerializeToString())


# ---- weights ---------------------------------------------------------------------------------------
def normal(g, shape, std, mean=0.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * std + mean


def decoder_weights(g):
    h, f, v, L = DEC['hidden_size'], DEC['intermediate_size'], DEC['vocab_size'], DEC['num_hidden_layers']
    sd = {'model.embed_tokens.weight': normal(g, (v, h), SCALES['embed'])}
    for i in range(L):
        p = f'model.layers.{i}.'
        sd[p + 'self_attn.q_proj.weight'] = normal(g, (h, h), SCALES['qk'])
        sd[p + 'self_attn.k_proj.weight'] = normal(g, (h * DEC['num_key_value_heads'] // DEC['num_attention_heads'], h), SCALES['qk'])
        sd[p + 'self_attn.v_proj.weight'] = normal(g, (h * DEC['num_key_value_heads'] // DEC['num_attention_heads'], h), 1 / math.sqrt(h))
        sd[p + 'self_attn.o_proj.weight'] = normal(g, (h, h), 1 / math.sqrt(h))
        sd[p + 'mlp.gate_proj.weight'] = normal(g, (f, h), 1 / math.sqrt(h))
        sd[p + 'mlp.up_proj.weight'] = normal(g, (f, h), 1 / math.sqrt(h))
        sd[p + 'mlp.down_proj.weight'] = normal(g, (h, f), 1 / math.sqrt(f))
        sd[p + 'input_layernorm.weight'] = normal(g, (h,), 0.1, 1.0)
        sd[p + 'post_attention_layernorm.weight'] = normal(g, (h,), 0.1, 1.0)
    sd['model.norm.weight'] = normal(g, (h,), 0.1, 1.0)
    # lm head with log-normal row norms (a heavier logit tail: clearer winners, see test/helpers/tiny-llama.ts)
    sd['lm_head.weight'] = normal(g, (v, h), SCALES['lm_head']) * torch.exp(SCALES['lm_head_lognormal'] * torch.randn(v, 1, generator=g))
    return {k: x.to(torch.float16) for k, x in sd.items()}


LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']


def lora_weights(g, base):
    r = LORA['r']
    sd = {}
    for i in range(DEC['num_hidden_layers']):
        for m in LORA_TARGETS:
            mod = 'self_attn' if m.endswith(('q_proj', 'k_proj', 'v_proj', 'o_proj')) else 'mlp'
            out_f, in_f = base[f'model.layers.{i}.{mod}.{m}.weight'].shape
            p = f'base_model.model.model.layers.{i}.{mod}.{m}.'
            sd[p + 'lora_A.weight'] = normal(g, (r, in_f), 0.3).to(torch.float16)
            sd[p + 'lora_B.weight'] = normal(g, (out_f, r), 0.1).to(torch.float16)
    return sd


def merged(base, lora):
    """what llava/model/builder.py holds after merge_and_unload: fp16(float(W) + alpha/r * B @ A)"""
    scale = LORA['lora_alpha'] / LORA['r']
    out = dict(base)
    for k in base:
        if not k.startswith('model.layers.'):
            continue
        p = 'base_model.model.' + k[:-len('weight')]
        if p + 'lora_A.weight' in lora:
            a, b = lora[p + 'lora_A.weight'].float(), lora[p + 'lora_B.weight'].float()
            out[k] = (base[k].float() + scale * (b @ a)).to(torch.float16)
    return out


# ---- files -----------------------------------------------------------------------------------------
def dump_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


# ---- the release's JSON files (shared with scripts/make-7b-release.py) -----------------------------------
def write_vicuna_json(vic, dec, weight_map, total_size):
    """lmsys/vicuna-7b-v1.5's shard index, config, generation config and tokenizer files for the shape `dec`"""
    dump_json(os.path.join(vic, 'pytorch_model.bin.index.json'), {'metadata': {'total_size': total_size}, 'weight_map': weight_map})
    dump_json(os.path.join(vic, 'config.json'), {
        '_name_or_path': 'vicuna-7b-v1.5', 'architectures': ['LlamaForCausalLM'], 'bos_token_id': 1, 'eos_token_id': 2,
        'hidden_act': 'silu', 'initializer_range': 0.02, 'model_type': 'llama', 'pad_token_id': 0,
        'pretraining_tp': 1, 'rope_scaling': None, 'tie_word_embeddings': False, 'torch_dtype': 'float16',
        'transformers_version': '4.31.0', 'use_cache': True, **dec})
    dump_json(os.path.join(vic, 'generation_config.json'), {'bos_token_id': 1, 'eos_token_id': 2, 'pad_token_id': 0,
                                                            'max_length': 4096, 'temperature': 0.9, 'top_p': 0.6})
    dump_json(os.path.join(vic, 'tokenizer_config.json'), {
        'add_bos_token': True, 'add_eos_token': False, 'clean_up_tokenization_spaces': False, 'legacy': False,
        'model_max_length': 4096, 'pad_token': None, 'sp_model_kwargs': {}, 'tokenizer_class': 'LlamaTokenizer',
        'bos_token': {'__type': 'AddedToken', 'content': '<s>', 'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False},
        'eos_token': {'__type': 'AddedToken', 'content': '</s>', 'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False},
        'unk_token': {'__type': 'AddedToken', 'content': '<unk>', 'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False}})
    dump_json(os.path.join(vic, 'special_tokens_map.json'), {'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>'})


def write_adapter_json(rad, lora):
    """peft's adapter_config.json for a LoRA of rank lora['r'] on LORA_TARGETS"""
    dump_json(os.path.join(rad, 'adapter_config.json'), {
        'auto_mapping': None, 'base_model_name_or_path': 'lmsys/vicuna-7b-v1.5', 'bias': 'none',
        'fan_in_fan_out': False, 'inference_mode': True, 'init_lora_weights': True, 'layers_pattern': None,
        'layers_to_transform': None, 'lora_alpha': lora['lora_alpha'], 'lora_dropout': 0.05, 'modules_to_save': None,
        'peft_type': 'LORA', 'r': lora['r'], 'revision': None, 'target_modules': LORA_TARGETS, 'task_type': 'CAUSAL_LM'})


def write_llava_rad_json(rad, dec, tower, embed_dim, select_layer):
    """the open_clip config of the tower (biomedclipcxr_518.json) and LLaVA-Rad's config.json"""
    dump_json(os.path.join(rad, 'biomedclipcxr_518.json'), {
        'embed_dim': embed_dim,
        # head_width: open_clip's CLIPVisionCfg field (heads = width / head_width; 64 for the real ViT-B/14)
        'vision_cfg': {'timm_model_name': 'vit_base_patch14_dinov2.lvd142m', 'timm_model_pretrained': False,
                       'timm_pool': '', 'timm_proj': 'linear', 'image_size': tower['image_size'],
                       'head_width': tower['dim'] // tower['heads']},
        'text_cfg': {'hf_model_name': 'microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract', 'hf_tokenizer_name':
                     'microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract', 'hf_proj_type': 'mlp',
                     'hf_pooler_type': 'cls_last_hidden_state_pooler', 'context_length': 256}})
    dump_json(os.path.join(rad, 'config.json'), {
        '_name_or_path': 'lmsys/vicuna-7b-v1.5', 'architectures': ['LlavaLlamaForCausalLM'], 'model_type': 'llava',
        'hidden_size': dec['hidden_size'], 'num_hidden_layers': dec['num_hidden_layers'],
        'num_attention_heads': dec['num_attention_heads'], 'intermediate_size': dec['intermediate_size'],
        'vocab_size': dec['vocab_size'], 'image_aspect_ratio': 'square', 'mm_hidden_size': tower['dim'],
        'mm_projector_type': 'mlp2x_gelu', 'mm_use_im_patch_token': False, 'mm_use_im_start_end': False,
        'mm_vision_select_feature': 'patch', 'mm_vision_select_layer': select_layer,
        'mm_vision_tower': 'biomedclip_cxr_518', 'vision_tower_config': 'biomedclipcxr_518.json',
        'vision_tower_checkpoint': 'biomedclipcxr_518_checkpoint.pt', 'torch_dtype': 'float16', 'use_cache': True})


def parse_args():
    import argparse
    ap = argparse.ArgumentParser(description='write a tiny random-weight release in the official layout')
    ap.add_argument('--out', default=OUT, help='output folder (default: the committed test/fixtures/release)')
    ap.add_argument('--seed', type=int, default=SEED)
    ap.add_argument('--profile', choices=['fixture', *PROFILES], default='fixture',
                    help='fixture: the committed structure; unseen: another structure, better-conditioned weights; '
                         'trained: the unseen structure with its decoder trained (a few minutes)')
    ap.add_argument('--no-golden', action='store_true', help='write the release only (teacher_force.py checks it)')
    return ap.parse_args()


def main():
    global OUT, SEED, DEC, LORA, TOWER, SCALES, TEXT
    args = parse_args()
    OUT, SEED = os.path.abspath(args.out), args.seed
    if args.profile != 'fixture':
        prof = PROFILES[args.profile]
        DEC, LORA, TOWER, SCALES, TEXT = prof['DEC'], prof['LORA'], prof['TOWER'], prof['SCALES'], prof['TEXT']
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    vic, rad = os.path.join(OUT, 'vicuna'), os.path.join(OUT, 'llava-rad')
    os.makedirs(vic, exist_ok=True)
    os.makedirs(rad, exist_ok=True)

    # ---- vicuna ----
    write_tokenizer(os.path.join(vic, 'tokenizer.model'), llama_pieces())
    base = decoder_weights(g)
    lora = lora_weights(g, base)
    tower = VisionTower(**TOWER)
    proj = Projector(TOWER['dim'], DEC['hidden_size'])
    randomize_(tower, g)
    randomize_(proj, g)
    tower.half()
    proj.half()
    if args.profile == 'trained':
        import sentencepiece as spm
        from train_tiny_decoder import train_decoder
        sp = spm.SentencePieceProcessor(model_file=os.path.join(vic, 'tokenizer.model'))
        # what is trained is the model the official loader builds (base + the LoRA merged), with the LoRA fixed
        m = merged(base, lora)
        delta = {k: m[k].float() - base[k].float() for k in base if k.startswith('model.layers.')}
        base = train_decoder(base, DEC, tower, proj, TOWER, sp, SEED + 1, delta=delta)
    names = list(base)
    half = names.index('model.layers.1.input_layernorm.weight')
    shards = [names[:half], names[half:]]
    weight_map = {}
    total = 0
    for s, keys in enumerate(shards):
        fn = f'pytorch_model-{s + 1:05d}-of-00002.bin'
        torch.save({k: base[k] for k in keys}, os.path.join(vic, fn))  # PyTorch zip format
        for k in keys:
            weight_map[k] = fn
            total += base[k].numel() * 2
    write_vicuna_json(vic, DEC, weight_map, total)

    # ---- llava-rad ----
    torch.save(lora, os.path.join(rad, 'adapter_model.bin'))
    write_adapter_json(rad, LORA)
    torch.save({f'base_model.model.model.mm_projector.{k}': v.clone() for k, v in proj.state_dict().items()},
               os.path.join(rad, 'non_lora_trainables.bin'))
    sd = {f'module.visual.trunk.{k}': v.clone() for k, v in tower.state_dict().items()}
    sd['module.visual.head.proj.weight'] = normal(g, (EMBED_DIM, TOWER['dim']), 0.1).half()   # timm_proj linear (CLIP image head)
    sd['module.logit_scale'] = torch.tensor(4.6052)
    # the PubMedBERT text tower and its mlp projection (tiny, random; its own generator, so every tensor above
    # stays as it was), and the Hub folder it comes from (vocab.txt, config.json)
    vocab = write_text_model(os.path.join(OUT, 'biomedbert'), TEXT)
    gt = torch.Generator().manual_seed(SEED + 17)
    text = random_text_tower(gt, len(vocab), TEXT['dim'], TEXT['layers'], TEXT['ff'], TEXT['positions'], EMBED_DIM)
    sd.update({f'module.{k}': v.half() for k, v in text.items()})
    torch.save({'epoch': 3, 'name': 'biomedclipcxr_518', 'state_dict': sd,
                'optimizer': {'state': {0: {'step': torch.tensor(10.0), 'exp_avg': torch.zeros(4)}},
                              'param_groups': [{'lr': 1e-5, 'betas': (0.9, 0.98), 'params': [0]}]}},
               os.path.join(rad, 'biomedclipcxr_518_checkpoint.pt'))
    write_llava_rad_json(rad, DEC, TOWER, embed_dim=EMBED_DIM, select_layer=SELECT_LAYER)

    if args.no_golden:
        print('wrote', OUT, '(no golden)')
        return

    # ---- golden: the official pipeline on the fp16 weights the official loader holds ----
    import sentencepiece as spm
    sys.path.insert(0, os.path.join(HERE, 'reference'))
    from make_findings_golden import preprocess  # PIL / torchvision open_clip eval transform
    from llava_rad_reference import OPENAI_MEAN, OPENAI_STD
    sp = spm.SentencePieceProcessor(model_file=os.path.join(vic, 'tokenizer.model'))
    llm = HfLlama(merged(base, lora), DEC)
    tower64, proj64 = tower.double(), proj.double()
    cases = []
    for image, reason in CASES:
        text = prompt_text(reason)
        t0, t1 = text.split('<image>')
        before, after = [1] + sp.encode(t0), sp.encode(t1)
        assert after[:2] == [29871, 13], after[:4]
        px = preprocess(os.path.join(FINDINGS, image), TOWER['image_size'], OPENAI_MEAN, OPENAI_STD)
        with torch.no_grad():
            rows = proj64(image_features(tower64, px[None].double(), SELECT_LAYER))[0]
            emb = torch.cat([llm.embed(before), rows, llm.embed(after)], 0)
            toks, steps = llm.greedy(emb, MAX_NEW)
        margins = [s['margin'] for s in steps]
        cases.append({'image': image, 'reason': reason, 'prompt_tokens': {'before': before, 'image_rows': int(rows.shape[0]), 'after': after},
                      'tokens': toks, 'steps': steps, 'min_margin': min(margins),
                      'image_rows_checksum': {'sum': float(rows.sum()), 'abs_sum': float(rows.abs().sum()),
                                              'row0_first8': [round(float(x), 6) for x in rows[0, :8]]}})
        print(f'{image}: {len(toks)} tokens, min margin {min(margins):.4f}, '
              f'margins<0.4: {sum(m < 0.4 for m in margins)}, distinct {len(set(toks))}: {sp.decode(toks)[:80]!r}')
    dump_json(os.path.join(OUT, 'golden.json'), {
        'about': 'official LLaVA-Rad pipeline on the tiny release (scripts/make-tiny-release.py): LoRA merged as '
                 'fp16(float(W) + alpha/r * B@A), HF rotate_half RoPE on unpermuted weights, float64 compute from the '
                 'fp16 weights, PIL/torchvision preprocessing; steps[i] = reference choice at step i (margin = top-1 - top-2)',
        'max_new_tokens': MAX_NEW, 'torch': torch.__version__, 'cases': cases})
    tot = 0
    for d, _, files in os.walk(OUT):
        for f in files:
            tot += os.path.getsize(os.path.join(d, f))
    print('wrote', OUT, f'{tot / 1e6:.2f} MB')


if __name__ == '__main__':
    main()
