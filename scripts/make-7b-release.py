#!/usr/bin/python3
"""Writes a 7B-SHAPED random-weight release in the OFFICIAL layout (the one scripts/make-tiny-release.py
writes, at the real sizes), for measuring the converter's memory and time on a full-size release
(bench/convert-memory.mjs). Nothing here is a model: the weights are N(0, 0.02) noise.

  vicuna/      pytorch_model-00001-of-00002.bin (embed_tokens + layers 0..23, ~9.97 GB fp16),
               pytorch_model-00002-of-00002.bin (layers 24..31, norm, lm_head, ~3.5 GB fp16),
               pytorch_model.bin.index.json, config.json (hidden 4096, 32 layers, 32 heads, FFN 11008, vocab
               32000), generation_config.json, tokenizer.model (the real 32000 LLaMA-2 pieces, written by
               make-tiny-release.py's writer), tokenizer_config.json, special_tokens_map.json
  llava-rad/   config.json, adapter_config.json, adapter_model.bin (LoRA r=64, alpha=128 on q/k/v/o/gate/up/down
               of all 32 layers, fp16, ~320 MB), non_lora_trainables.bin (projector 768 -> 4096 -> 4096, fp16),
               biomedclipcxr_518_checkpoint.pt (~2.4 GB: {'state_dict': module.visual.trunk.* (ViT-B/14 at
               518: width 768, 12 blocks, 12 heads, MLP 3072, LayerScale), module.visual.head.*, module.text.*
               (a PubMedBERT-sized stand-in), module.logit_scale; 'optimizer': Adam exp_avg / exp_avg_sq of
               every parameter; 'epoch', 'name'}, all float32 like an open_clip training checkpoint),
               biomedclipcxr_518.json

Tensors are generated one at a time and each file's dict is saved and freed before the next one, so the
Python process holds at most one file's tensors (~10 GB for the first shard; --shards N splits the decoder
into N files instead, the index JSON names them).

usage: /usr/bin/python3 scripts/make-7b-release.py --out /tmp/conv7b/release [--seed S] [--shards 2]
  (needs node_modules/llama-tokenizer-js and python3-sentencepiece, like make-tiny-release.py; about 16 GB
  of disk and a few minutes)
"""
import argparse
import gc
import importlib.util
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..'))


def tiny_module():
    """make-tiny-release.py (hyphenated name) for its tokenizer writer and JSON helpers"""
    spec = importlib.util.spec_from_file_location('make_tiny_release', os.path.join(HERE, 'make-tiny-release.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


DEC = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
           intermediate_size=11008, rms_norm_eps=1e-5, max_position_embeddings=4096, vocab_size=32000)
LORA = dict(r=64, lora_alpha=128)
LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
TOWER = dict(image_size=518, patch=14, dim=768, depth=12, heads=12, hidden=3072)
# the text tower stand-in: PubMedBERT-base sized (vocab 30522, 12 layers of width 768, MLP 3072)
TEXT = dict(vocab=30522, dim=768, layers=12, hidden=3072, positions=512, embed_dim=512)
STD = 0.02


class Gen:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, shape, std=STD, mean=0.0, dtype=torch.float16):
        x = torch.randn(*shape, generator=self.g, dtype=torch.float32)
        if std != 1.0:
            x.mul_(std)
        if mean != 0.0:
            x.add_(mean)
        return x.to(dtype)


def decoder_shapes():
    h, f, v, L = DEC['hidden_size'], DEC['intermediate_size'], DEC['vocab_size'], DEC['num_hidden_layers']
    kv = h * DEC['num_key_value_heads'] // DEC['num_attention_heads']
    out = [('model.embed_tokens.weight', (v, h))]
    for i in range(L):
        p = f'model.layers.{i}.'
        out += [(p + 'self_attn.q_proj.weight', (h, h)), (p + 'self_attn.k_proj.weight', (kv, h)),
                (p + 'self_attn.v_proj.weight', (kv, h)), (p + 'self_attn.o_proj.weight', (h, h)),
                (p + 'mlp.gate_proj.weight', (f, h)), (p + 'mlp.up_proj.weight', (f, h)),
                (p + 'mlp.down_proj.weight', (h, f)),
                (p + 'input_layernorm.weight', (h,)), (p + 'post_attention_layernorm.weight', (h,))]
    out += [('model.norm.weight', (h,)), ('lm_head.weight', (v, h))]
    return out


def split_shards(shapes, n):
    """n consecutive groups; with 2, the first ends after layer 23 (as vicuna-7b-v1.5's ~9.98 GB + ~3.5 GB)"""
    if n == 2:
        cut = next(i for i, (k, _) in enumerate(shapes) if k.startswith('model.layers.24.'))
        return [shapes[:cut], shapes[cut:]]
    total = sum(torch.Size(s).numel() for _, s in shapes)
    groups, cur, acc = [], [], 0
    for k, s in shapes:
        cur.append((k, s))
        acc += torch.Size(s).numel()
        if acc >= total * (len(groups) + 1) / n and len(groups) < n - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    return groups


def save(obj, path):
    t0 = time.time()
    torch.save(obj, path)
    print(f'  {os.path.basename(path)}: {os.path.getsize(path) / 1e9:.3f} GB in {time.time() - t0:.1f} s', flush=True)


def main():
    ap = argparse.ArgumentParser(description='write a 7B-shaped random-weight release in the official layout')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--shards', type=int, default=2, help='decoder shard files (the real release has 2)')
    args = ap.parse_args()
    tiny = tiny_module()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    out = os.path.abspath(args.out)
    vic, rad = os.path.join(out, 'vicuna'), os.path.join(out, 'llava-rad')
    os.makedirs(vic, exist_ok=True)
    os.makedirs(rad, exist_ok=True)
    gen = Gen(args.seed)
    t_start = time.time()

    # ---- vicuna ----
    tiny.write_tokenizer(os.path.join(vic, 'tokenizer.model'), tiny.llama_pieces())
    shapes = decoder_shapes()
    groups = split_shards(shapes, args.shards)
    weight_map, total = {}, 0
    for s, group in enumerate(groups):
        fn = f'pytorch_model-{s + 1:05d}-of-{len(groups):05d}.bin'
        sd = {}
        for k, shape in group:
            sd[k] = gen.normal(shape, 0.1, 1.0) if len(shape) == 1 else gen.normal(shape)
            weight_map[k] = fn
            total += sd[k].numel() * 2
        save(sd, os.path.join(vic, fn))
        del sd
        gc.collect()
    tiny.write_vicuna_json(vic, DEC, weight_map, total)

    # ---- llava-rad: LoRA ----
    shape_of = dict(shapes)
    r = LORA['r']
    lora = {}
    for i in range(DEC['num_hidden_layers']):
        for m in LORA_TARGETS:
            mod = 'self_attn' if m in ('q_proj', 'k_proj', 'v_proj', 'o_proj') else 'mlp'
            out_f, in_f = shape_of[f'model.layers.{i}.{mod}.{m}.weight']
            p = f'base_model.model.model.layers.{i}.{mod}.{m}.'
            lora[p + 'lora_A.weight'] = gen.normal((r, in_f))
            lora[p + 'lora_B.weight'] = gen.normal((out_f, r))
    save(lora, os.path.join(rad, 'adapter_model.bin'))
    del lora
    tiny.write_adapter_json(rad, LORA)

    # ---- projector ----
    d, h = TOWER['dim'], DEC['hidden_size']
    pfx = 'base_model.model.model.mm_projector.'
    save({pfx + '0.weight': gen.normal((h, d)), pfx + '0.bias': gen.normal((h,)),
          pfx + '2.weight': gen.normal((h, h)), pfx + '2.bias': gen.normal((h,))},
         os.path.join(rad, 'non_lora_trainables.bin'))

    # ---- the open_clip checkpoint (float32 state dict + Adam state, like a training checkpoint) ----
    f32 = torch.float32
    grid = TOWER['image_size'] // TOWER['patch']
    ff = TOWER['hidden']
    sd = {}
    t = 'module.visual.trunk.'
    sd[t + 'cls_token'] = gen.normal((1, 1, d), 0.5, dtype=f32)
    sd[t + 'pos_embed'] = gen.normal((1, grid * grid + 1, d), 0.5, dtype=f32)
    sd[t + 'patch_embed.proj.weight'] = gen.normal((d, 3, TOWER['patch'], TOWER['patch']), dtype=f32)
    sd[t + 'patch_embed.proj.bias'] = gen.normal((d,), dtype=f32)
    for i in range(TOWER['depth']):
        b = f'{t}blocks.{i}.'
        sd[b + 'norm1.weight'] = gen.normal((d,), 0.1, 1.0, dtype=f32)
        sd[b + 'norm1.bias'] = gen.normal((d,), 0.05, dtype=f32)
        sd[b + 'attn.qkv.weight'] = gen.normal((3 * d, d), dtype=f32)
        sd[b + 'attn.qkv.bias'] = gen.normal((3 * d,), dtype=f32)
        sd[b + 'attn.proj.weight'] = gen.normal((d, d), dtype=f32)
        sd[b + 'attn.proj.bias'] = gen.normal((d,), dtype=f32)
        sd[b + 'ls1.gamma'] = torch.rand(d, generator=gen.g) * 0.45 + 0.05
        sd[b + 'norm2.weight'] = gen.normal((d,), 0.1, 1.0, dtype=f32)
        sd[b + 'norm2.bias'] = gen.normal((d,), 0.05, dtype=f32)
        sd[b + 'mlp.fc1.weight'] = gen.normal((ff, d), dtype=f32)
        sd[b + 'mlp.fc1.bias'] = gen.normal((ff,), dtype=f32)
        sd[b + 'mlp.fc2.weight'] = gen.normal((d, ff), dtype=f32)
        sd[b + 'mlp.fc2.bias'] = gen.normal((d,), dtype=f32)
        sd[b + 'ls2.gamma'] = torch.rand(d, generator=gen.g) * 0.45 + 0.05
    sd[t + 'norm.weight'] = gen.normal((d,), 0.1, 1.0, dtype=f32)
    sd[t + 'norm.bias'] = gen.normal((d,), 0.05, dtype=f32)
    sd['module.visual.head.proj.weight'] = gen.normal((TEXT['embed_dim'], d), dtype=f32)
    sd['module.logit_scale'] = torch.tensor(4.6052)
    x = 'module.text.transformer.'
    td, th = TEXT['dim'], TEXT['hidden']
    sd[x + 'embeddings.word_embeddings.weight'] = gen.normal((TEXT['vocab'], td), dtype=f32)
    sd[x + 'embeddings.position_embeddings.weight'] = gen.normal((TEXT['positions'], td), dtype=f32)
    sd[x + 'embeddings.token_type_embeddings.weight'] = gen.normal((2, td), dtype=f32)
    sd[x + 'embeddings.LayerNorm.weight'] = gen.normal((td,), 0.1, 1.0, dtype=f32)
    sd[x + 'embeddings.LayerNorm.bias'] = gen.normal((td,), dtype=f32)
    for i in range(TEXT['layers']):
        b = f'{x}encoder.layer.{i}.'
        for n in ('attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense'):
            sd[b + n + '.weight'] = gen.normal((td, td), dtype=f32)
            sd[b + n + '.bias'] = gen.normal((td,), dtype=f32)
        sd[b + 'attention.output.LayerNorm.weight'] = gen.normal((td,), 0.1, 1.0, dtype=f32)
        sd[b + 'attention.output.LayerNorm.bias'] = gen.normal((td,), dtype=f32)
        sd[b + 'intermediate.dense.weight'] = gen.normal((th, td), dtype=f32)
        sd[b + 'intermediate.dense.bias'] = gen.normal((th,), dtype=f32)
        sd[b + 'output.dense.weight'] = gen.normal((td, th), dtype=f32)
        sd[b + 'output.dense.bias'] = gen.normal((td,), dtype=f32)
        sd[b + 'output.LayerNorm.weight'] = gen.normal((td,), 0.1, 1.0, dtype=f32)
        sd[b + 'output.LayerNorm.bias'] = gen.normal((td,), dtype=f32)
    sd['module.text.proj.0.weight'] = gen.normal(((td + TEXT['embed_dim']) // 2, td), dtype=f32)
    sd['module.text.proj.2.weight'] = gen.normal((TEXT['embed_dim'], (td + TEXT['embed_dim']) // 2), dtype=f32)
    state = {}
    for j, (k, p) in enumerate(sd.items()):
        if not p.is_floating_point() or p.dim() == 0:
            continue
        state[j] = {'step': torch.tensor(30000.0), 'exp_avg': gen.normal(tuple(p.shape), 1e-4, dtype=f32),
                    'exp_avg_sq': gen.normal(tuple(p.shape), 1e-6, dtype=f32).abs_()}
    save({'epoch': 10, 'name': 'biomedclipcxr_518', 'state_dict': sd,
          'optimizer': {'state': state, 'param_groups': [{'lr': 1e-5, 'betas': (0.9, 0.98), 'eps': 1e-6,
                                                          'weight_decay': 0.2, 'params': sorted(state)}]}},
         os.path.join(rad, 'biomedclipcxr_518_checkpoint.pt'))
    del sd, state
    tiny.write_llava_rad_json(rad, DEC, TOWER, embed_dim=TEXT['embed_dim'], select_layer=-2)

    tot = 0
    for dpath, _, files in os.walk(out):
        for f in files:
            tot += os.path.getsize(os.path.join(dpath, f))
    print(f'wrote {out}: {tot / 1e9:.2f} GB in {time.time() - t_start:.0f} s')


if __name__ == '__main__':
    main()
