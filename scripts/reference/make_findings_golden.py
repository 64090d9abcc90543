#!/usr/bin/python3
"""Writes the end-to-end LLaVA-Rad goldens under test/fixtures/findings/ (committed; CI never runs Python):

- three test images (made here, deterministic): a smooth synthetic radiograph-like 900x1100 grey PNG,
  a 1100x900 RGB JPEG, a 600x600 RGB PNG;
- golden.json: for each (image, reason) case, the official pipeline computed independently of our engine:
  open_clip eval preprocessing with PIL/torchvision (Resize(518, BICUBIC) on the short side, CenterCrop(518),
  ToTensor, Normalize with OpenAI mean/std), the vision tower + mlp2x_gelu projector
  (scripts/reference/llava_rad_reference.py) with the weights of test/fixtures/vision/tiny-vision-f32.gguf,
  the conv "v1" prompt tokenized in two parts around "<image>" with SentencePiece (a BPE ModelProto rebuilt
  from the decoder GGUF's vocabulary), [BOS] + part0 + 1369 image rows + part1 into the tiny f32 LLaMA
  decoder (scripts/reference/llama_reference.py), greedy decoding to EOS or max_new_tokens, and the
  official post-processing. Everything after the float32 pixel tensor runs in float64.

usage: /usr/bin/python3 scripts/reference/make_findings_golden.py [--max-new-tokens 64] [--decoder FILE]
  (the decoder defaults to the cached `node scripts/make-tiny-llama.mjs --type f32` base fixture; llama.cpp's
  gguf-py comes from build/llama.cpp/gguf-py, checked out by `npm install`)
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'build', 'llama.cpp', 'gguf-py'))

import gguf  # noqa: E402
from llama_reference import LlamaReference, _field, read_tensor, sentencepiece_from_gguf  # noqa: E402
from llava_rad_reference import OPENAI_MEAN, OPENAI_STD, Projector, VisionTower, image_features  # noqa: E402

OUT = os.path.join(ROOT, 'test', 'fixtures', 'findings')
VISION = os.path.join(ROOT, 'test', 'fixtures', 'vision', 'tiny-vision-f32.gguf')

# llava/conversation.py conv_vicuna_v1 ("v1") and llava/utils.py's question, as LLAVA_RAD.md quotes them
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
QUESTION = 'Provide a description of the findings in the radiology image.'
QUESTION_WITH_REASON = 'Provide a description of the findings in the radiology image given the following indication: {}'

CASES = [
    ('radiograph-grey-900x1100.png', None),
    ('radiograph-rgb-1100x900.jpg', 'Shortness of breath.'),
    ('square-rgb-600x600.png', 'Chest pain\nrule out pneumonia'),
]


def prompt_text(reason):
    q = QUESTION_WITH_REASON.format(reason.replace('\n', ' ')) if reason else QUESTION
    return f'{SYSTEM} USER: <image>\n{q} ASSISTANT:'


# ---- test images ----
def _radiograph(w, h, seed):
    """smooth radiograph-like grey field: dark lungs, bright mediastinum/spine, ribs, soft vignette"""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = (x - w / 2) / (w / 2), (y - h / 2) / (h / 2)
    img = 0.55 + 0.25 * (u ** 2 + 0.6 * v ** 2)                               # bright body edges
    for cx in (-0.45, 0.45):                                                   # two lung fields
        img -= 0.35 * np.exp(-(((u - cx) / 0.28) ** 2 + ((v + 0.05) / 0.55) ** 4))
    img += 0.30 * np.exp(-((u / 0.12) ** 2))                                   # mediastinum / spine
    img += 0.12 * np.exp(-(((u + 0.08) / 0.22) ** 2 + ((v - 0.35) / 0.2) ** 2))  # heart
    img += 0.05 * np.sin(v * 22 + 3 * u ** 2) * (np.abs(u) > 0.15)            # ribs
    rng = np.random.default_rng(seed)
    blobs = rng.normal(size=(8, 4))
    for a, b, c, d in blobs:                                                   # a few smooth nodules
        img += 0.04 * a * np.exp(-(((u - 0.5 * b) / 0.08) ** 2 + ((v - 0.5 * c) / 0.08) ** 2))
    return np.clip(img, 0, 1)


def make_images():
    os.makedirs(OUT, exist_ok=True)
    g = _radiograph(900, 1100, 1)
    Image.fromarray(np.round(g * 255).astype(np.uint8), 'L').save(os.path.join(OUT, CASES[0][0]), optimize=True)
    g = _radiograph(1100, 900, 2)
    tint = np.stack([g, g * 0.97 + 0.02, g * 0.93 + 0.04], -1)
    Image.fromarray(np.round(np.clip(tint, 0, 1) * 255).astype(np.uint8), 'RGB').save(
        os.path.join(OUT, CASES[1][0]), quality=88)
    y, x = np.mgrid[0:600, 0:600].astype(np.float64) / 600
    r = 0.5 + 0.4 * np.sin(6 * x + 2 * y)
    gch = _radiograph(600, 600, 3)
    b = 0.5 + 0.4 * np.cos(5 * y - 3 * x * y)
    Image.fromarray(np.round(np.stack([r, gch, b], -1) * 255).astype(np.uint8), 'RGB').save(
        os.path.join(OUT, CASES[2][0]), optimize=True)
    for f, _ in CASES:
        size = os.path.getsize(os.path.join(OUT, f))
        assert size < 150_000, f'{f}: {size} bytes'


# ---- vision ----
def load_vision(path):
    r = gguf.GGUFReader(path)
    dim = _field(r, 'clip.vision.embedding_length')
    dims = dict(image_size=_field(r, 'clip.vision.image_size'), patch=_field(r, 'clip.vision.patch_size'),
                dim=dim, depth=_field(r, 'clip.vision.block_count'),
                heads=_field(r, 'clip.vision.attention.head_count'),
                hidden=_field(r, 'clip.vision.feed_forward_length'),
                eps=float(_field(r, 'clip.vision.attention.layer_norm_epsilon')))
    select = _field(r, 'llava_rad.vision.select_layer')
    text_dim = _field(r, 'clip.vision.projection_dim')
    mean = tuple(_field(r, 'clip.vision.image_mean'))
    std = tuple(_field(r, 'clip.vision.image_std'))
    t = {x.name: read_tensor(x) for x in r.tensors}
    sd = {
        'patch_embed.proj.weight': t['v.patch_embd.weight'],
        'patch_embed.proj.bias': t['v.patch_embd.bias'],
        'cls_token': t['v.class_embd'].reshape(1, 1, dim),
        'pos_embed': t['v.position_embd.weight'].reshape(1, -1, dim),
    }
    for i in range(dims['depth']):
        v, p = f'v.blk.{i}.', f'blocks.{i}.'
        sd[p + 'norm1.weight'], sd[p + 'norm1.bias'] = t[v + 'ln1.weight'], t[v + 'ln1.bias']
        sd[p + 'attn.qkv.weight'] = torch.cat([t[v + 'attn_q.weight'], t[v + 'attn_k.weight'], t[v + 'attn_v.weight']], 0)
        sd[p + 'attn.qkv.bias'] = torch.cat([t[v + 'attn_q.bias'], t[v + 'attn_k.bias'], t[v + 'attn_v.bias']], 0)
        sd[p + 'attn.proj.weight'], sd[p + 'attn.proj.bias'] = t[v + 'attn_out.weight'], t[v + 'attn_out.bias']
        sd[p + 'ls1.gamma'], sd[p + 'ls2.gamma'] = t[v + 'ls1.weight'], t[v + 'ls2.weight']
        sd[p + 'norm2.weight'], sd[p + 'norm2.bias'] = t[v + 'ln2.weight'], t[v + 'ln2.bias']
        sd[p + 'mlp.fc1.weight'], sd[p + 'mlp.fc1.bias'] = t[v + 'ffn_up.weight'], t[v + 'ffn_up.bias']
        sd[p + 'mlp.fc2.weight'], sd[p + 'mlp.fc2.bias'] = t[v + 'ffn_down.weight'], t[v + 'ffn_down.bias']
    tower = VisionTower(**dims).double()
    missing = tower.load_state_dict(sd, strict=False)
    assert set(missing.missing_keys) == {'norm.weight', 'norm.bias'} and not missing.unexpected_keys, missing
    proj = Projector(dim, text_dim).double()
    proj.load_state_dict({'0.weight': t['mm.0.weight'], '0.bias': t['mm.0.bias'],
                          '2.weight': t['mm.2.weight'], '2.bias': t['mm.2.bias']})
    return tower, proj, select, dims['image_size'], mean, std


def preprocess(path, size, mean, std):
    """open_clip's eval transform (image_aspect_ratio "square": no padding), float32 as torchvision gives it"""
    tf = transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    with open(path, 'rb') as f:
        img = Image.open(io.BytesIO(f.read())).convert('RGB')
    return tf(img)


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def default_decoder():
    res = subprocess.run(['node', 'scripts/make-tiny-llama.mjs', '--type', 'f32', '--variant', 'base'],
                         cwd=ROOT, check=True, capture_output=True, text=True)
    return res.stdout.strip().splitlines()[-1].split(' (')[0]


def decode_findings(sp, tokens, special):
    """HF decode(skip_special_tokens=True) with the slow LLaMA tokenizer (SentencePiece decode), then the
    official post-processing: strip, drop a trailing "</s>", strip"""
    text = sp.decode([t for t in tokens if t not in special])
    text = text.strip()
    if text.endswith('</s>'):
        text = text[:-len('</s>')]
    return text.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--max-new-tokens', type=int, default=64)
    ap.add_argument('--decoder', default=None)
    ap.add_argument('--keep-images', action='store_true', help='do not rewrite the test images')
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    if not a.keep_images:
        make_images()
    decoder_path = os.path.abspath(a.decoder or default_decoder())
    llm = LlamaReference(decoder_path)
    sp = sentencepiece_from_gguf(llm)
    special = {i for i, ty in enumerate(llm.token_types) if ty in (2, 3)}  # unknown + control (bos/eos/unk)
    tower, proj, select, size, mean, std = load_vision(VISION)
    assert proj[2].out_features == llm.n_embd

    cases = []
    for image, reason in CASES:
        text = prompt_text(reason)
        part0_text, part1_text = text.split('<image>')
        part0 = [llm.bos] + sp.encode(part0_text)
        part1 = sp.encode(part1_text)
        assert part1[:2] == [29871, 13], part1[:4]
        pixels = preprocess(os.path.join(OUT, image), size, mean, std)  # float32 [3, 518, 518]
        with torch.no_grad():
            rows = proj(image_features(tower, pixels[None].double(), select))[0]  # [1369, n_embd]
            emb = torch.cat([llm.embed(part0), rows, llm.embed(part1)], 0)
            tokens, steps = llm.greedy(emb, a.max_new_tokens, stop_at_eos=True)
        stopped_at_eos = bool(tokens) and tokens[-1] == llm.eos
        generated = tokens[:-1] if stopped_at_eos else tokens
        findings = decode_findings(sp, tokens, special)
        margins = [s['margin'] for s in steps]
        low = next((i for i, m in enumerate(margins) if m <= 0.05), None)
        cases.append({
            'image': image,
            'reason': reason,
            'prompt_text': text,
            'prompt_tokens': {'before': part0, 'image_rows': int(rows.shape[0]), 'after': part1},
            'n_positions': len(part0) + int(rows.shape[0]) + len(part1),
            'tokens': generated,
            'stop_reason': 'eos' if stopped_at_eos else 'max_tokens',
            'findings': findings,
            'steps': [{'token': s['token'], 'logit': round(s['logit'], 6), 'top2_token': s['top2_token'],
                       'top2_logit': round(s['top2_logit'], 6), 'margin': round(s['margin'], 6)} for s in steps],
            'min_margin': round(min(margins), 6),
            'first_low_margin_step': low,
            'image_rows_checksum': {'sum': float(rows.sum()), 'abs_sum': float(rows.abs().sum()),
                                    'row0_first8': [round(float(x), 6) for x in rows[0, :8]]},
        })
        print(f'{image} reason={reason!r}: prompt {len(part0)}+{rows.shape[0]}+{len(part1)}, '
              f'{len(generated)} tokens ({cases[-1]["stop_reason"]}), min margin {min(margins):.4f}, '
              f'first margin <= 0.05 at {low}: {findings[:70]!r}', flush=True)

    golden = {
        'about': 'LLaVA-Rad end to end on tiny random weights: PyTorch float64 reference '
                 '(scripts/reference/make_findings_golden.py). steps[i] is the reference choice at step i '
                 '(logit = max logit, margin = top-1 minus top-2); compare tokens only while margin > 0.05.',
        'decoder': {'file': os.path.basename(decoder_path), 'sha256': sha256(decoder_path),
                    'made_by': 'node scripts/make-tiny-llama.mjs --type f32 --variant base'},
        'vision': {'file': os.path.relpath(VISION, ROOT), 'sha256': sha256(VISION)},
        'images': {f: sha256(os.path.join(OUT, f)) for f, _ in CASES},
        'max_new_tokens': a.max_new_tokens,
        'conv_mode': 'v1',
        'preprocess': f'PIL convert(RGB), torchvision Resize({size}, BICUBIC), CenterCrop({size}), ToTensor, '
                      f'Normalize(mean={list(mean)}, std={list(std)})',
        'torch': torch.__version__,
        'cases': cases,
    }
    with open(os.path.join(OUT, 'golden.json'), 'w') as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write('\n')
    print('wrote', os.path.join(OUT, 'golden.json'))


if __name__ == '__main__':
    main()
