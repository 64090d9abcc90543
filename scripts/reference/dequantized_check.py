#!/usr/bin/python3
"""Our engine on every CPU code path against the DEQUANTIZED float64 model of the same GGUF.

The reference is scripts/reference/llama_reference.py's float64 LLaMA with every tensor of the GGUF read as the
file stores it and dequantized exactly (gguf-py's dequantizers: q8_0, q4_K, q6_K, ...), so the weights are the
same numbers the engine multiplies with; what remains between the two is the engine's arithmetic (activations
quantized for the products as ggml and llama.cpp quantize them, the f16 KV cache, float32 sums in SIMD order).

For each CPU setting -- the ggml CPU modules this machine runs (LLAVA_RAD_CPU_VARIANT) with ggml's kernels and
with the engine's (LLAVA_RAD_CPU_KERNELS), and the default build under qemu-x86_64 -cpu Haswell / Nehalem -- it
runs `build/llava-rad-cli generate --json` on each prompt and scores the generated tokens by teacher forcing:
one causal float64 pass over prompt + our tokens, gap_i = max(reference logits at step i) - reference logit of
OUR token i. Prints one line per (setting, prompt) and a summary; exit 0 when every gap <= --tol.

--arm64 DIR adds the arm64 CLI of a cross build folder (docs/cpu.md, arm64), run under qemu-aarch64 with the
cross toolchain's libgomp; --arm64-cpu CPU passes qemu's -cpu (e.g. max,sve-default-vector-length=16 for 128-bit
SVE; qemu's own default is 512-bit).

usage: /usr/bin/python3 scripts/reference/dequantized_check.py MODEL.gguf [MODEL.gguf ...] [--tol 0.4]
           [--tokens 24] [--variants a,b,...] [--no-qemu] [--arm64 DIR ...] [--arm64-cpu CPU] [--json OUT.jsonl]
needs: Debian's python3-torch and python3-numpy; gguf-py from build/llama.cpp (the engine's build); qemu-user.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)

import llama_reference  # noqa: E402
from llama_reference import LlamaReference, gguf  # noqa: E402

CLI = os.path.join(ROOT, 'build', 'llava-rad-cli')
PROMPTS = [
    'The heart size is normal. There is no pleural effusion or pneumothorax',
    'No acute cardiopulmonary process.',
    'Findings:',
]


def read_any_tensor(t):
    """every GGUF tensor type as float64 torch: f32 / f16 as stored, quantized types dequantized by gguf-py"""
    if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        return read_f_tensor(t)
    a = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64)
    shape = tuple(int(x) for x in reversed(list(t.shape)))
    return torch.from_numpy(a.reshape(shape))


read_f_tensor = llama_reference.read_tensor
llama_reference.read_tensor = read_any_tensor


def cpu_settings(variants, qemu, arm64_dirs, arm64_cpu):
    """(label, environment, command prefix) for each way of running the engine"""
    info = json.loads(subprocess.run([CLI, 'info'], capture_output=True, text=True, check=True).stdout)['cpu']
    names = variants or info['variants']
    out = []
    for v in names:
        out.append((f'{v}/ggml', {'LLAVA_RAD_CPU_VARIANT': v, 'LLAVA_RAD_CPU_KERNELS': 'ggml'}, [CLI]))
        if info['kernels'] == 'vnni':
            out.append((f'{v}/vnni', {'LLAVA_RAD_CPU_VARIANT': v, 'LLAVA_RAD_CPU_KERNELS': 'vnni'}, [CLI]))
    if qemu:
        for cpu in ('Haswell', 'Nehalem'):
            out.append((f'qemu {cpu} (default)', {}, ['qemu-x86_64', '-cpu', cpu, CLI]))
    if arm64_dirs:
        if os.path.exists('/lib/ld-linux-aarch64.so.1'):
            # Debian's multiarch libc6:arm64: the cross toolchain's libgomp alone on the library path (qemu's -L
            # would pair the cross loader with the multiarch libc)
            libs = tempfile.mkdtemp(prefix='llava-rad-arm64-libs-')
            os.symlink('/usr/aarch64-linux-gnu/lib/libgomp.so.1', os.path.join(libs, 'libgomp.so.1'))
            env, prefix = {'LD_LIBRARY_PATH': libs}, []
        else:
            # no arm64 loader in /lib: the cross toolchain's whole sysroot, libgomp included
            env, prefix = {}, ['-L', '/usr/aarch64-linux-gnu']
        if arm64_cpu:
            prefix += ['-cpu', arm64_cpu]
        for d in arm64_dirs:
            out.append((f'arm64 qemu ({os.path.basename(os.path.normpath(d))}{", " + arm64_cpu if arm64_cpu else ""})',
                        env, ['qemu-aarch64'] + prefix + [os.path.join(d, 'llava-rad-cli')]))
    return out


def host_cpu():
    """the machine the settings ran on: /proc/cpuinfo's vendor, family, model and name (VMs often say only 'AMD EPYC')"""
    try:
        text = open('/proc/cpuinfo').read().split('\n\n')[0]
    except OSError:
        return None
    f = dict((k.strip(), v.strip()) for k, _, v in (l.partition(':') for l in text.splitlines()) if _)
    return {k: f.get(src) for k, src in (('vendor', 'vendor_id'), ('family', 'cpu family'), ('model', 'model'), ('name', 'model name'))}


def run_engine(model, prompt, n, env_extra, runner):
    env = {k: v for k, v in os.environ.items() if k not in ('LLAVA_RAD_CPU_VARIANT', 'LLAVA_RAD_CPU_KERNELS')}
    env.update(env_extra)
    cmd = runner + ['generate', '--model', model, '--prompt', prompt, '--max-tokens', str(n), '--json', '--threads', '2']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)}: {r.stderr}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def gaps(ref, prompt_tokens, tokens):
    """teacher forcing: one causal pass over prompt + tokens; gap_i for each generated token"""
    seq = list(prompt_tokens) + list(tokens)
    with torch.no_grad():
        logits = ref.forward(ref.embed(seq[:-1]))[len(prompt_tokens) - 1:]   # row i predicts tokens[i]
    return [float(logits[i].max() - logits[i, t]) for i, t in enumerate(tokens)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('models', nargs='+')
    ap.add_argument('--tol', type=float, default=0.4)
    ap.add_argument('--tokens', type=int, default=24)
    ap.add_argument('--variants', default='')
    ap.add_argument('--no-qemu', action='store_true')
    ap.add_argument('--arm64', action='append', default=[], metavar='DIR')
    ap.add_argument('--arm64-cpu', default='')
    ap.add_argument('--json', default='')
    a = ap.parse_args()
    settings = cpu_settings([v for v in a.variants.split(',') if v], not a.no_qemu, a.arm64, a.arm64_cpu)
    commit = subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    machine = host_cpu()
    worst = 0.0
    records = []
    for model in a.models:
        ref = LlamaReference(model)
        types = sorted({t.tensor_type.name for t in gguf.GGUFReader(model).tensors})
        print(f'== {os.path.basename(model)} ({", ".join(types)}), reference: float64 of the dequantized tensors', flush=True)
        for label, env, runner in settings:
            per = []
            for prompt in PROMPTS:
                out = run_engine(model, prompt, a.tokens, env, runner)
                g = gaps(ref, out['prompt_tokens'], out['tokens'])
                per.append(max(g) if g else 0.0)
                records.append(dict(commit=commit, machine=machine, model=os.path.basename(model), setting=label, prompt=prompt,
                                    cpu_variant=out['cpu']['variant'], cpu_kernels=out['cpu']['kernels'],
                                    vnni_matrices=out['model']['vnni_matrices'], tokens=out['tokens'], gaps=g))
            worst = max(worst, max(per))
            flag = 'ok  ' if max(per) <= a.tol else 'MISS'
            print(f'{flag} {label:28s} max gap per prompt: ' + ', '.join(f'{x:.3f}' for x in per)
                  + f'  ({len(PROMPTS)} prompts x {a.tokens} steps)', flush=True)
    if a.json:
        with open(a.json, 'a') as f:
            for r in records:
                f.write(json.dumps(r) + '\n')
    print(f'largest gap {worst:.3f} (tolerance {a.tol})')
    return 0 if worst <= a.tol else 1


if __name__ == '__main__':
    sys.exit(main())
