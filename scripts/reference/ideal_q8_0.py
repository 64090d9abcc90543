#!/usr/bin/python3
"""How far is q8_0 from the fp16 model by itself? Builds the IDEAL q8_0 model of a release (every decoder matrix
rounded to ggml's q8_0 blocks: 32 values, scale = fp16(amax / 127), round to nearest; everything else exact)
and runs it in float64 in the reference, with no engine involved; its greedy tokens are then scored by teacher
forcing against the fp16 reference exactly as our engine's tokens are (scripts/reference/teacher_force.py).
If even this model misses the 0.4 criterion, the release is too sensitive for any q8_0 implementation to meet it.

--activations also rounds every activation that enters a decoder matrix product to q8_0 blocks, as ggml's (and
llama.cpp's) q8_0 products on the CPU quantize their right operand (x86 quantize_row_q8_0: scale amax / 127
kept as fp16, values rounded half to even with 127 / amax); everything else stays float64. That is the
arithmetic of llama.cpp's q8_0 inference without an engine's summation orders, f16 KV cache or f16 tower.

usage: /usr/bin/python3 scripts/reference/ideal_q8_0.py [--activations] WORK IMAGE...
       (WORK: a check_unseen_release.py --work folder)
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from check_unseen_release import REASONS  # noqa: E402
from hf_llama_reference import HfLlama  # noqa: E402
from llava_rad_reference import image_features  # noqa: E402
from make_findings_golden import preprocess, prompt_text  # noqa: E402
from official_release import Release  # noqa: E402
from teacher_force import BOS, EOS, teacher_force  # noqa: E402

Q8_0_BLOCK = 32


def q8_0_round_trip(w):
    """ggml's quantize_row_q8_0 then dequantize, per row in blocks of 32"""
    w = w.to(torch.float32)
    rows, cols = w.shape
    blocks = w.reshape(rows, cols // Q8_0_BLOCK, Q8_0_BLOCK)
    amax = blocks.abs().amax(-1, keepdim=True)
    d = (amax / 127).to(torch.float16).to(torch.float32)
    inv = torch.where(amax > 0, 127 / amax, torch.zeros_like(amax))
    return (torch.round(blocks * inv) * d).reshape(rows, cols)


def q8_0_activations(x):
    """the activations [n, k] as ggml's x86 quantize_row_q8_0 leaves them (the same rounding as the weights'; the
    dequantized values are exact in float32), float64"""
    return q8_0_round_trip(x).to(torch.float64)


def main():
    args = sys.argv[1:]
    act = None
    if args and args[0] == '--activations':
        act, args = q8_0_activations, args[1:]
    work, images = args[0], args[1:]
    rel = Release(os.path.join(work, 'release', 'vicuna'), os.path.join(work, 'release', 'llava-rad'))
    fp = rel.llm
    cfg = dict(hidden_size=fp.h, num_attention_heads=fp.nh, num_key_value_heads=fp.nkv, num_hidden_layers=fp.L,
               rms_norm_eps=fp.eps, eos_token_id=EOS)
    ideal = HfLlama({k: (q8_0_round_trip(v) if v.dim() == 2 else v) for k, v in fp.w.items()}, cfg, act)
    for image in images:
        for reason in REASONS:
            t0, t1 = prompt_text(reason).split('<image>')
            before, after = [BOS] + rel.sp.encode(t0), rel.sp.encode(t1)
            px = preprocess(image, rel.image_size, rel.mean, rel.std)
            with torch.no_grad():
                rows = rel.proj(image_features(rel.tower, px[None].double(), rel.select_layer))[0]
                toks, _ = ideal.greedy(torch.cat([ideal.embed(before), rows, ideal.embed(after)], 0), 64)
            eos = toks[-1] == EOS
            mine = dict(tokens=toks[:-1] if eos else toks, stop_reason='eos' if eos else 'max_tokens',
                        prompt_tokens=dict(before_image=before, after_image=after, image_rows=rows.shape[0]))
            r = teacher_force(rel, image, reason, mine)
            agree = sum(s['ref_argmax'] == s['token'] for s in r['steps'])
            print(f"{os.path.basename(image)} reason={'yes' if reason else 'no'}: ideal q8_0 model"
                  f"{' with q8_0 activations' if act else ''} vs fp16 reference: "
                  f"max gap {r['max_gap']:.3f}, argmax {agree}/{r['n_steps']}", flush=True)


if __name__ == '__main__':
    main()
