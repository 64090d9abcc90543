#!/usr/bin/python3
"""What ggml's CPU f16 dot product does to our numbers when the CPU module is compiled with __AVX512FP16__
(e.g. -march=native on Sapphire Rapids), established by bit-exact emulation on a CPU without AVX512-FP16.

ggml_vec_dot_f16 (ggml-cpu/vec.cpp, SIMD branch) with __AVX512FP16__ (simd-mappings.h, the __AVX512FP16__
block): 4 accumulator registers of 32 half lanes, STEP 128 elements; every step is one _mm512_fmadd_ph per
register (a + x*y rounded ONCE to half); then the registers are added pairwise in half (r0+r2, r1+r3, then
the two), then _mm512_reduce_add_ph (GCC's avx512fp16intrin.h: a halving tree 32->16->8->4->2->1, each add
rounded to half); that half goes to double, the n % 128 leftover elements are added in double (each product
formed in float, exactly), and the double is stored as float.
Without AVX512-FP16 (AVX512F, e.g. Zen 4) the same function uses 4 registers of 16 FLOAT lanes, STEP 64,
fmadd in float, the same tree in float, leftovers in double.

The emulation computes each operation in float64 and rounds once to the target type; where a float64 sum
is inexact, it is first made round-to-odd (TwoSum error term), so the final rounding is the correctly
rounded result of the real instruction (numpy's float64->float16 cast rounds directly, nearest-even).
AVX512-FP16 ignores MXCSR.FTZ/DAZ, so half subnormals are kept, as numpy does.

Part A: the tiny f16 vision fixture (test/fixtures/vision/tiny-vision-f16.gguf), forward pass in float32
following native/src/vision_graph.cpp, on the two test images, against golden.bin (float64 reference),
with the metric of test/vision.test.ts (max |ours - ref| over the sampled rows / max |ref|):
  - "f32-acc":  every f16 matmul accumulates in f32 (what an AVX512F-only build computes);
  - "fp16-acc": the ops that reach ggml_vec_dot_f16 with __AVX512FP16__ accumulate in half -- for this
                graph only the patch embedding (k = 14*14*3 = 588, not a multiple of 16, so llamafile's
                tinyBLAS refuses it); every other f16 matmul has k % 16 == 0, m % 4 == 0, n >= 2 and runs in
                tinyBLAS, which widens to f32;
  - "all-fp16": (a bound, not what ggml does) every f16 matmul through the half dot product.
Part B: dot products of LLaMA-7B-like sizes (what an f16 decoder computes at n_tokens == 1, where tinyBLAS
refuses n < 2): relative errors of half vs f32 accumulation, and when half accumulation overflows.

usage: /usr/bin/python3 scripts/reference/fp16_accumulation.py     (numpy; gguf-py from build/llama.cpp)
"""
import json
import math
import os
import sys
import time

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')  # one core
os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'build', 'llama.cpp', 'gguf-py'))

import gguf  # noqa: E402

FIX = os.path.join(ROOT, 'test', 'fixtures', 'vision')
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
HALF_MAX = 65504.0

np.seterr(over='ignore', invalid='ignore')


# ---- exact single-rounding arithmetic -------------------------------------------------------------------

def _round_to_odd_sum(a, b):
    """a + b in float64, made round-to-odd where inexact (so that one more rounding to a type of <= 51
    bits gives the correctly rounded exact sum)"""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)  # TwoSum: a + b == s + err exactly
    fix = np.isfinite(s) & (err != 0) & ((s.view(np.int64) & 1) == 0)
    if np.any(fix):
        s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s


def rnd(x, dtype):
    return x.astype(dtype).astype(np.float64)


def fma(acc, x, y, dtype):
    """acc + x*y rounded once to dtype; x, y are halves (their product is exact in float64)"""
    return rnd(_round_to_odd_sum(acc, x * y), dtype)


def add(a, b, dtype):
    return rnd(_round_to_odd_sum(a, b), dtype)


def _self_test():
    h = np.array([1 + 2 ** -11, 1 + 2 ** -11, 65504.0, 2048.0], np.float64)
    p = np.array([2 ** -40, -2 ** -40, 16.0, 1.0], np.float64)
    got = _round_to_odd_sum(h, p).astype(np.float16).astype(np.float64)
    want = np.array([1 + 2 ** -10, 1.0, np.inf, 2048.0])  # 2048+1: tie, to even
    assert np.array_equal(got, want), got


# ---- ggml_vec_dot_f16, two builds ------------------------------------------------------------------------

MODES = {
    # name: (accumulator type, lanes per register, elements per step)
    'fp16': (np.float16, 32, 128),  # __AVX512FP16__
    'f32': (np.float32, 16, 64),    # AVX512F without FP16 (e.g. Zen 4)
}


def vec_dot_f16(W, X, mode, stats=None, col_chunk=None):
    """out[n, m] = ggml_vec_dot_f16(K, W[m], X[n]) for float16 W [M, K] and X [N, K], as the build `mode`
    computes it; returns float32 [N, M]. stats (dict) collects the largest |partial| kept in the accumulator
    type and whether any became inf/nan."""
    acc_t, epr, step = MODES[mode]
    M, K = W.shape
    N = X.shape[0]
    n_vec = K - K % step
    Wd = W.astype(np.float64)
    Xd = X.astype(np.float64)
    out = np.empty((N, M), np.float32)
    if col_chunk is None:
        col_chunk = max(1, int(4_000_000 // max(1, M * step)))
    peak, bad = 0.0, False
    for n0 in range(0, N, col_chunk):
        n1 = min(N, n0 + col_chunk)
        x = Xd[n0:n1]
        acc = np.zeros((n1 - n0, M, 4, epr))
        for i in range(0, n_vec, step):
            xs = x[:, None, i:i + step].reshape(n1 - n0, 1, 4, epr)
            ws = Wd[None, :, i:i + step].reshape(1, M, 4, epr)
            acc = fma(acc, ws, xs, acc_t)
            if stats is not None:
                peak = max(peak, float(np.nanmax(np.abs(np.where(np.isfinite(acc), acc, 0)))))
        # the 4 registers: r0+r2, r1+r3, then (r0+r2)+(r1+r3)
        v = add(add(acc[:, :, 0], acc[:, :, 2], acc_t), add(acc[:, :, 1], acc[:, :, 3], acc_t), acc_t)
        # horizontal: halving tree, lane i + lane i+half, each add rounded to the accumulator type
        while v.shape[-1] > 1:
            hlf = v.shape[-1] // 2
            v = add(v[..., :hlf], v[..., hlf:], acc_t)
        sumf = v[..., 0]
        if stats is not None:
            peak = max(peak, float(np.nanmax(np.abs(np.where(np.isfinite(sumf), sumf, 0)))) if sumf.size else 0.0)
            bad = bad or not np.all(np.isfinite(sumf))
        # leftovers: float products (exact) summed in double, in order
        for i in range(n_vec, K):
            sumf = sumf + x[:, None, i] * Wd[None, :, i]
        out[n0:n1] = sumf.astype(np.float32)
    if stats is not None:
        stats['peak'] = max(stats.get('peak', 0.0), peak)
        stats['nonfinite'] = stats.get('nonfinite', False) or bad or not np.all(np.isfinite(out))
    return out


def dot_f32acc(W, X):
    """tinyBLAS-like: half inputs widened, f32-class accumulation (float64 here; tinyBLAS's own f32 rounding
    is ~1e-7 relative, far below everything measured)"""
    return (X.astype(np.float64) @ W.astype(np.float64).T).astype(np.float32)


# ---- Part A: the tiny f16 vision tower --------------------------------------------------------------------

def load_vision(path):
    r = gguf.GGUFReader(path)
    t = {x.name: np.array(x.data) for x in r.tensors}
    kv = {}
    for f in r.fields.values():
        if f.types and f.types[0] in (gguf.GGUFValueType.UINT32, gguf.GGUFValueType.INT32, gguf.GGUFValueType.FLOAT32):
            kv[f.name] = f.parts[f.data[0]][0].item()
    return t, kv


def synthetic_image(size, mirrored):
    """the test's syntheticImage: ((u8/255) - mean) / std in float32"""
    c = np.arange(3).reshape(3, 1, 1)
    y = np.arange(size).reshape(1, size, 1)
    x0 = np.arange(size).reshape(1, 1, size)
    x = size - 1 - x0 if mirrored else x0
    u8 = (x * 7 + y * 13 + c * 29 + (x * y) // 97) % 256
    m = np.array(MEAN, np.float32).reshape(3, 1, 1)
    s = np.array(STD, np.float32).reshape(3, 1, 1)
    return ((u8.astype(np.float32) / np.float32(255)) - m) / s


def layer_norm(x, w, b, eps):
    xd = x.astype(np.float64)
    mu = xd.mean(-1, keepdims=True)
    var = ((xd - mu) ** 2).mean(-1, keepdims=True)
    return ((xd - mu) / np.sqrt(var + eps)).astype(np.float32) * w + b


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_erf(x):
    xd = x.astype(np.float64)
    return (0.5 * xd * (1.0 + _erf(xd / math.sqrt(2.0)).astype(np.float64))).astype(np.float32)


def softmax(x):
    m = x.max(-1, keepdims=True)
    e = np.exp((x - m).astype(np.float64))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def f16_matmul(W, x, how, stats):
    """ggml_mul_mat(W f16, x f32): x is rounded to f16 (from_float), then the dot products"""
    xh = x.astype(np.float16)
    if how == 'f32':
        return dot_f32acc(W, xh)
    return vec_dot_f16(W, xh, 'fp16', stats)


def vision_forward(t, kv, pixels, patch_how, linear_how, stats):
    S = kv['clip.vision.image_size']
    P = kv['clip.vision.patch_size']
    D = kv['clip.vision.embedding_length']
    H = kv['clip.vision.attention.head_count']
    eps = kv['clip.vision.attention.layer_norm_epsilon']
    n_blocks = kv['clip.vision.block_count'] + kv['llava_rad.vision.select_layer'] + 1  # blocks up to -2
    G = S // P
    # im2col: one row per patch (row-major), elements in (channel, ky, kx) order, as ggml_im2col writes them
    cols = pixels.reshape(3, G, P, G, P).transpose(1, 3, 0, 2, 4).reshape(G * G, 3 * P * P)
    kernel = t['v.patch_embd.weight'].reshape(D, 3 * P * P)
    patches = f16_matmul(kernel, cols, patch_how, stats) + t['v.patch_embd.bias']
    x = np.concatenate([t['v.class_embd'].reshape(1, D), patches], 0) + t['v.position_embd.weight']
    x = x.astype(np.float32)
    N = x.shape[0]
    hd = D // H
    scale = np.float32(1.0 / math.sqrt(hd))

    def lin(name, h):
        return f16_matmul(t[name + '.weight'], h, linear_how, stats) + t[name + '.bias']

    for i in range(n_blocks):
        p = f'v.blk.{i}.'
        h = layer_norm(x, t[p + 'ln1.weight'], t[p + 'ln1.bias'], eps)
        q = lin(p + 'attn_q', h).reshape(N, H, hd).transpose(1, 0, 2)
        k = lin(p + 'attn_k', h).reshape(N, H, hd).transpose(1, 0, 2)
        v = lin(p + 'attn_v', h).reshape(N, H, hd).transpose(1, 0, 2)
        # K*Q and (KQ)*V: f32 x f32 in ggml (tinyBLAS f32); the padded keys are masked, so they are left out
        att = softmax((q @ k.transpose(0, 2, 1)) * scale)
        o = (att @ v).transpose(1, 0, 2).reshape(N, D)
        x = x + lin(p + 'attn_out', o) * t[p + 'ls1.weight']
        h = layer_norm(x, t[p + 'ln2.weight'], t[p + 'ln2.bias'], eps)
        x = x + lin(p + 'ffn_down', gelu_erf(lin(p + 'ffn_up', h))) * t[p + 'ls2.weight']
    feats = x[1:]
    proj = lin('mm.2', gelu_erf(lin('mm.0', feats)))
    return patches, feats, proj


def rel_error(ours, ref_rows, rows):
    o = ours[rows].astype(np.float64)
    d = np.abs(o - ref_rows)
    if not np.all(np.isfinite(o)):
        return math.inf
    return float(d.max() / np.abs(ref_rows).max())


def part_a():
    t, kv = load_vision(os.path.join(FIX, 'tiny-vision-f16.gguf'))
    meta = json.load(open(os.path.join(FIX, 'golden.json')))
    gold = np.fromfile(os.path.join(FIX, 'golden.bin'), dtype='<f4').astype(np.float64)
    rows, R, D, T = meta['rows'], len(meta['rows']), meta['dim'], meta['text_dim']
    per = R * D + R * T
    configs = [('f32-acc', 'f32', 'f32'), ('fp16-acc', 'fp16', 'f32'), ('all-fp16', 'fp16', 'fp16')]
    res = {}
    print('A. tiny f16 vision tower + projector vs the float64 golden (test metric, test tolerance 2e-3)')
    print('   %-9s %5s %11s %11s %12s %12s %10s %s' % ('config', 'image', 'features', 'projected',
                                                     'patch |d|max', 'proj |d|max', 'peak|acc|', 'inf/nan'))
    for b in range(2):
        px = synthetic_image(kv['clip.vision.image_size'], mirrored=(b == 1))
        ref_f = gold[b * per:b * per + R * D].reshape(R, D)
        ref_p = gold[b * per + R * D:(b + 1) * per].reshape(R, T)
        base = None
        for name, ph, lh in configs:
            st = {}
            patches, feats, proj = vision_forward(t, kv, px, ph, lh, st)
            ef, ep = rel_error(feats, ref_f, rows), rel_error(proj, ref_p, rows)
            if base is None:
                base = (patches, proj)
                dpatch = dproj = 0.0
            else:
                dpatch = float(np.abs(patches.astype(np.float64) - base[0]).max())
                dproj = float(np.abs(proj.astype(np.float64) - base[1]).max())
            nonfin = st.get('nonfinite', False) or not (np.all(np.isfinite(feats)) and np.all(np.isfinite(proj)))
            res[(name, b)] = (ef, ep, nonfin)
            print('   %-9s %5d %11.3e %11.3e %12.3e %12.3e %10s %s' % (
                name, b, ef, ep, dpatch, dproj, ('%.3g' % st['peak']) if 'peak' in st else '-', nonfin))
    return res


# ---- Part B: LLaMA-7B-like dot products -------------------------------------------------------------------

def err_stats(approx, exact):
    a = approx.astype(np.float64)
    d = np.abs(a - exact)
    scale = np.sqrt(np.mean(exact ** 2))  # typical output magnitude
    big = np.abs(exact) > np.median(np.abs(exact))
    return (float(np.median(d[big] / np.abs(exact[big]))), float(d.max() / scale), int(np.sum(~np.isfinite(a))))


def part_b():
    rng = np.random.default_rng(7)
    print('\nB. f16 decoder dot products (n_tokens == 1 -> ggml_vec_dot_f16); errors vs float64 of the same f16 inputs')
    print('   rel = median |err|/|exact| over outputs larger than the median;  max/rms = max |err| / rms(exact)')
    print('   %-40s %6s %10s %10s %10s %10s %9s %s' % ('case', 'k', 'rel f32', 'rel fp16', 'max/rms32',
                                                       'max/rms16', 'peak|acc|', 'inf'))

    def run(label, W, X):
        W = W.astype(np.float16)
        X = X.astype(np.float16)
        exact = X.astype(np.float64) @ W.astype(np.float64).T
        st = {}
        r32 = err_stats(vec_dot_f16(W, X, 'f32'), exact)
        r16 = err_stats(vec_dot_f16(W, X, 'fp16', st), exact)
        print('   %-40s %6d %10.2e %10.2e %10.2e %10.2e %9.3g %d' % (label, W.shape[1], r32[0], r16[0], r32[1],
                                                                   r16[1], st['peak'], r16[2]))
        return r16

    def acts(n, k, outlier, n_out=6):
        x = rng.standard_normal((n, k))
        ch = rng.choice(k, n_out, replace=False)  # fixed outlier channels, as in real LLMs
        x[:, ch] = outlier * np.sign(rng.standard_normal((n, n_out)))
        return x

    out = {}
    for k in (4096, 11008):
        W = rng.standard_normal((128, k)) * 0.02  # LLaMA-7B weights: std ~0.02
        out[('rms1', k)] = run('act rms 1, W std 0.02', W, rng.standard_normal((8, k)))
        out[('out100', k)] = run('act rms 1 + 6 channels at +-100', W, acts(8, k, 100.0))
    # a "massive activation" row: ffn_down input with channels in the thousands, weights aligned with them
    k = 11008
    W = rng.standard_normal((64, k)) * 0.02
    X = acts(4, k, 2000.0)
    run('ffn_down, 6 channels at +-2000', W, X)
    # where does half accumulation overflow? scale the outlier channels up (inputs stay < 65504)
    first_inf = None
    for amp in (5e3, 1e4, 2e4, 4e4, 6e4):
        Xa = acts(4, k, amp)
        y = vec_dot_f16(W.astype(np.float16), Xa.astype(np.float16), 'fp16')
        if not np.all(np.isfinite(y)) and first_inf is None:
            first_inf = amp
    print('   outlier amplitude at which fp16 accumulation first gave inf (k=11008, W std 0.02): %s'
          % (first_inf if first_inf else 'none up to 6e4'))
    # the same with the largest realistic output: an output of ~65504 needs |sum| > half max
    Wb = np.full((1, 4096), 0.05)
    for target in (3e4, 6e4, 7e4):
        xb = np.full((1, 4096), target / (0.05 * 4096))
        y16 = vec_dot_f16(Wb.astype(np.float16), xb.astype(np.float16), 'fp16')
        y32 = vec_dot_f16(Wb.astype(np.float16), xb.astype(np.float16), 'f32')
        print('   coherent dot, exact ~%.0e: f32-acc %.6g, fp16-acc %.6g' % (target, y32[0, 0], y16[0, 0]))
    # attention in a decode step: K*Q (head_dim 128; q, k with a few large RoPE channels) and (KQ)*V
    q = rng.standard_normal((1, 128)) * 2.0
    q[0, :8] *= 8
    K = rng.standard_normal((512, 128)) * 2.0
    K[:, :8] *= 8
    out['kq'] = run('K*Q decode, head_dim 128, q/k rms ~5', K, q)
    s = (K.astype(np.float16).astype(np.float64) @ q.astype(np.float16).astype(np.float64).T)[:, 0] / math.sqrt(128)
    p = np.exp(s - s.max())
    p /= p.sum()
    V = rng.standard_normal((128, 512))  # transposed V cache: rows = head_dim, k = n_kv
    out['kqv'] = run('(KQ)*V decode, n_kv 512, softmax probs', V, p[None, :])
    return out


def main():
    t0 = time.time()
    _self_test()
    a = part_a()
    part_b()
    print('\nsummary:')
    for b in range(2):
        print('  image %d: features rel err f32-acc %.2e, fp16-acc %.2e (tolerance 2e-3); inf/nan with fp16-acc: %s'
              % (b, a[('f32-acc', b)][0], a[('fp16-acc', b)][0], a[('fp16-acc', b)][2]))
    print('  (%.0f s)' % (time.time() - t0))


if __name__ == '__main__':
    main()
