#!/usr/bin/python3
"""Writes the vision-tower test fixtures under test/fixtures/vision/ (committed; CI never runs this):

- tiny-vision-f32.gguf, tiny-vision-f16.gguf: a tiny random-weight tower + projector of LLaVA-Rad's real
  structure (518 px, patch 14, CLS first, LayerScale, erf GELU, select layer -2, mlp2x_gelu) in our vision
  GGUF layout (docs: native/src/vision_model.h), written with llama.cpp's gguf-py;
- golden.bin + golden.json: the reference's features (hidden_states[-2] without CLS) and projected
  embeddings for two synthetic images, computed in float64 from the same weights, on a sample of rows.

usage: /usr/bin/python3 scripts/reference/make_vision_fixture.py   (after `npm install`, which checks out
llama.cpp into build/llama.cpp; gguf-py comes from there)
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'build', 'llama.cpp', 'gguf-py'))

import gguf  # noqa: E402
from llava_rad_reference import (OPENAI_MEAN, OPENAI_STD, Projector, VisionTower, image_features,  # noqa: E402
                                 normalize, randomize_, synthetic_pixels)

OUT = os.path.join(ROOT, 'test', 'fixtures', 'vision')
DIMS = dict(image_size=518, patch=14, dim=64, depth=3, heads=4, hidden=128, eps=1e-6)
TEXT_DIM = 256           # the tiny test decoder's n_embd
SELECT_LAYER = -2
SEED = 1234


def sample_rows(n):
    rows = list(range(0, 16)) + list(range(n - 16, n)) + list(range(16, n - 16, 37))
    return sorted(set(rows))


def write_gguf(path, tower, proj, matrix_type):
    sd = {k: v.detach().to(torch.float32).numpy() for k, v in tower.state_dict().items()}
    pd = {k: v.detach().to(torch.float32).numpy() for k, v in proj.state_dict().items()}
    w = gguf.GGUFWriter(path, 'clip')
    w.add_name('tiny-llava-rad-vision')
    w.add_bool('clip.has_vision_encoder', True)
    w.add_bool('clip.has_text_encoder', False)
    w.add_string('clip.projector_type', 'mlp')
    w.add_bool('clip.use_gelu', True)
    w.add_uint32('clip.vision.image_size', DIMS['image_size'])
    w.add_uint32('clip.vision.patch_size', DIMS['patch'])
    w.add_uint32('clip.vision.embedding_length', DIMS['dim'])
    w.add_uint32('clip.vision.feed_forward_length', DIMS['hidden'])
    w.add_uint32('clip.vision.block_count', DIMS['depth'])
    w.add_uint32('clip.vision.attention.head_count', DIMS['heads'])
    w.add_float32('clip.vision.attention.layer_norm_epsilon', DIMS['eps'])
    w.add_uint32('clip.vision.projection_dim', TEXT_DIM)
    w.add_array('clip.vision.image_mean', list(OPENAI_MEAN))
    w.add_array('clip.vision.image_std', list(OPENAI_STD))
    w.add_int32('llava_rad.vision.select_layer', SELECT_LAYER)
    w.add_bool('llava_rad.vision.layer_scale', True)
    w.add_string('llava_rad.vision.gelu', 'erf')
    w.add_string('llava_rad.vision.cls_position', 'first')
    w.add_string('llava_rad.vision.crop_mode', 'resize_short_center_crop')
    w.add_string('llava_rad.projector.type', 'mlp2x_gelu')

    def mat(a):
        return a.astype(np.float16) if matrix_type == 'f16' else a.astype(np.float32)

    dim = DIMS['dim']
    w.add_tensor('v.patch_embd.weight', mat(sd['patch_embed.proj.weight']))
    w.add_tensor('v.patch_embd.bias', sd['patch_embed.proj.bias'])
    w.add_tensor('v.class_embd', sd['cls_token'].reshape(dim))
    w.add_tensor('v.position_embd.weight', sd['pos_embed'].reshape(-1, dim))
    for i in range(DIMS['depth']):
        p = f'blocks.{i}.'
        qkv_w, qkv_b = sd[p + 'attn.qkv.weight'], sd[p + 'attn.qkv.bias']
        w.add_tensor(f'v.blk.{i}.ln1.weight', sd[p + 'norm1.weight'])
        w.add_tensor(f'v.blk.{i}.ln1.bias', sd[p + 'norm1.bias'])
        for j, name in enumerate(('attn_q', 'attn_k', 'attn_v')):  # fused rows are q, k, v
            w.add_tensor(f'v.blk.{i}.{name}.weight', mat(qkv_w[j * dim:(j + 1) * dim]))
            w.add_tensor(f'v.blk.{i}.{name}.bias', qkv_b[j * dim:(j + 1) * dim])
        w.add_tensor(f'v.blk.{i}.attn_out.weight', mat(sd[p + 'attn.proj.weight']))
        w.add_tensor(f'v.blk.{i}.attn_out.bias', sd[p + 'attn.proj.bias'])
        w.add_tensor(f'v.blk.{i}.ls1.weight', sd[p + 'ls1.gamma'])
        w.add_tensor(f'v.blk.{i}.ln2.weight', sd[p + 'norm2.weight'])
        w.add_tensor(f'v.blk.{i}.ln2.bias', sd[p + 'norm2.bias'])
        w.add_tensor(f'v.blk.{i}.ffn_up.weight', mat(sd[p + 'mlp.fc1.weight']))
        w.add_tensor(f'v.blk.{i}.ffn_up.bias', sd[p + 'mlp.fc1.bias'])
        w.add_tensor(f'v.blk.{i}.ffn_down.weight', mat(sd[p + 'mlp.fc2.weight']))
        w.add_tensor(f'v.blk.{i}.ffn_down.bias', sd[p + 'mlp.fc2.bias'])
        w.add_tensor(f'v.blk.{i}.ls2.weight', sd[p + 'ls2.gamma'])
    w.add_tensor('mm.0.weight', mat(pd['0.weight']))
    w.add_tensor('mm.0.bias', pd['0.bias'])
    w.add_tensor('mm.2.weight', mat(pd['2.weight']))
    w.add_tensor('mm.2.bias', pd['2.bias'])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(SEED)
    tower = VisionTower(**DIMS)
    proj = Projector(DIMS['dim'], TEXT_DIM)
    randomize_(tower, g)
    randomize_(proj, g)
    for t in ('f32', 'f16'):
        write_gguf(os.path.join(OUT, f'tiny-vision-{t}.gguf'), tower, proj, t)

    # the two test images: the synthetic pattern and its mirror (so a batch holds two different inputs)
    u8 = synthetic_pixels(DIMS['image_size'])
    images = torch.stack([normalize(u8), normalize(torch.flip(u8, dims=[2]))])  # float32, as the engine gets them
    tower64, proj64 = tower.double(), proj.double()
    with torch.no_grad():
        feats = image_features(tower64, images.double(), SELECT_LAYER)  # [2, 1369, 64]
        projected = proj64(feats)                                      # [2, 1369, 256]
    n = feats.shape[1]
    rows = sample_rows(n)
    blob = b''
    for b in range(images.shape[0]):
        blob += feats[b, rows].to(torch.float32).numpy().astype('<f4').tobytes()
        blob += projected[b, rows].to(torch.float32).numpy().astype('<f4').tobytes()
    with open(os.path.join(OUT, 'golden.bin'), 'wb') as f:
        f.write(blob)
    meta = {
        'images': ['synthetic_pixels(518)', 'synthetic_pixels(518) mirrored left-right'],
        'pixel_formula': '(x*7 + y*13 + c*29 + floor(x*y/97)) % 256, c in 0..2, y row, x column',
        'layout': 'for each image: features[rows] (float32 [len(rows), dim]), then projected[rows] (float32 [len(rows), text_dim])',
        'rows': rows,
        'n_patches': n,
        'dim': DIMS['dim'],
        'text_dim': TEXT_DIM,
        'select_layer': SELECT_LAYER,
        'reference': 'scripts/reference/llava_rad_reference.py, float64',
        'torch': torch.__version__,
    }
    with open(os.path.join(OUT, 'golden.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    print('wrote', OUT, 'rows', len(rows), 'blob', len(blob))


if __name__ == '__main__':
    main()
