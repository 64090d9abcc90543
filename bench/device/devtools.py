#!/usr/bin/env python3
"""Helpers of bench/device/cuda.sh (standard library; numpy only for `dumps`).

  devtools.py record RESULTS.jsonl STEP STATUS [key=value ...] [--json FILE]   append one record
  devtools.py tokens A.json B.json          compare two `llava-rad-cli generate --json` outputs
  devtools.py dumps A.f32 B.f32             compare two raw float32 dumps (`llava-rad-cli vision --dump`)
  devtools.py llama-bench FILE.json         the figures of a `llama-bench -o json` run
  devtools.py decode FILE.json              pp / decode tok/s of a `llava-rad-cli generate --json` run
  devtools.py prompt N                      a radiology text of about N tokens (LLaMA-2 vocabulary)
  devtools.py summary RESULTS.jsonl         the final table

Each command but `record` and `summary` prints one JSON object.
"""
import json
import math
import os
import sys
import time


def _value(s):
    try:
        return json.loads(s)
    except ValueError:
        return s


def cmd_record(args):
    path, step, status = args[0], args[1], args[2]
    rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "step": step, "status": status}
    start = os.environ.get("DEVICE_START")
    if start:
        rec["elapsed_s"] = int(time.time()) - int(start)
    rest = args[3:]
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--json":
            f = rest[i + 1]
            i += 2
            try:
                with open(f) as fh:
                    text = fh.read().strip()
                rec["data"] = json.loads(text.splitlines()[-1]) if text else None
            except (OSError, ValueError, IndexError) as e:
                rec["data_error"] = f"{f}: {e}"
            continue
        k, _, v = a.partition("=")
        rec[k] = _value(v)
        i += 1
    with open(path, "a") as fh:
        fh.write(json.dumps(rec, sort_keys=False) + "\n")
    print(json.dumps(rec))


def _load_last_json(path):
    with open(path) as fh:
        lines = [l for l in fh.read().splitlines() if l.strip()]
    return json.loads(lines[-1])


def cmd_tokens(args):
    a, b = _load_last_json(args[0]), _load_last_json(args[1])
    ta, tb = a.get("tokens", []), b.get("tokens", [])
    n = max(len(ta), len(tb))
    prefix = 0
    while prefix < min(len(ta), len(tb)) and ta[prefix] == tb[prefix]:
        prefix += 1
    out = {
        "n": n,
        "equal_prefix": prefix,
        "equal": sum(1 for x, y in zip(ta, tb) if x == y),
        "identical": ta == tb,
        "prompt_identical": a.get("prompt_tokens") == b.get("prompt_tokens"),
        "backends": [a.get("model", {}).get("backend"), b.get("model", {}).get("backend")],
    }
    if not out["identical"]:
        out["first_divergence"] = {
            "index": prefix,
            "a": ta[prefix] if prefix < len(ta) else None,
            "b": tb[prefix] if prefix < len(tb) else None,
        }
    print(json.dumps(out))


def cmd_dumps(args):
    import numpy as np

    a = np.fromfile(args[0], dtype=np.float32).astype(np.float64)
    b = np.fromfile(args[1], dtype=np.float32).astype(np.float64)
    out = {"n": int(a.size), "n_b": int(b.size)}
    if a.size != b.size or a.size == 0:
        out["error"] = "sizes differ or empty"
        print(json.dumps(out))
        return
    d = np.abs(a - b)
    ref = float(np.max(np.abs(a)))
    out.update(
        nan_a=int(np.isnan(a).sum()),
        nan_b=int(np.isnan(b).sum()),
        max_abs=float(np.nanmax(d)),
        max_abs_ref=ref,
        rel_max=float(np.nanmax(d) / ref) if ref > 0 else None,
        rel_l2=float(np.linalg.norm(a - b) / np.linalg.norm(a)) if np.linalg.norm(a) > 0 else None,
        mean_abs=float(np.nanmean(d)),
    )
    print(json.dumps(out))


def cmd_llama_bench(args):
    with open(args[0]) as fh:
        text = fh.read()
    start = text.find("[")
    rows = json.loads(text[start:]) if start >= 0 else []
    out = []
    for r in rows:
        test = f"pp{r['n_prompt']}" if r.get("n_gen", 0) == 0 else f"tg{r['n_gen']}"
        out.append({
            "test": test,
            "fa": int(r.get("flash_attn", 0)) if not isinstance(r.get("flash_attn"), str) else r.get("flash_attn"),
            "avg_ts": r.get("avg_ts"),
            "stddev_ts": r.get("stddev_ts"),
            "n_gpu_layers": r.get("n_gpu_layers"),
            "backends": r.get("backends"),
            "gpu_info": r.get("gpu_info"),
            "model_type": r.get("model_type"),
            "model_size": r.get("model_size"),
            "build_commit": r.get("build_commit"),
        })
    print(json.dumps({"tests": out}))


def cmd_decode(args):
    j = _load_last_json(args[0])
    n_gen = j.get("n_generated", 0)
    out = {
        "n_prompt": j.get("n_prompt"),
        "n_generated": n_gen,
        "prompt_ms": j.get("prompt_ms"),
        "decode_ms": j.get("decode_ms"),
        "pp_tok_s": j["n_prompt"] / j["prompt_ms"] * 1000 if j.get("prompt_ms") else None,
        "tg_tok_s": (n_gen - 1) / j["decode_ms"] * 1000 if j.get("decode_ms") and n_gen > 1 else None,
        "backend": j.get("model", {}).get("backend"),
        "stop_reason": j.get("stop_reason"),
        "complete": j.get("stop_reason") == "max_tokens",
    }
    print(json.dumps(out))


def cmd_prompt(args):
    n = int(args[0])
    sentence = "The lungs are clear bilaterally without focal consolidation, pleural effusion, or pneumothorax. "
    # 27 tokens per sentence in the LLaMA-2 vocabulary (measured): n = 512 gives BOS + 19 x 27 = 514 tokens
    reps = max(1, round((n - 1) / 27))
    sys.stdout.write((sentence * reps).strip())


# ---- summary -------------------------------------------------------------------------------------

def _fmt(v, nd=1):
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def cmd_summary(args):
    recs = []
    try:
        with open(args[0]) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    by = lambda s: [r for r in recs if r.get("step") == s]
    out = []
    p = out.append
    env = by("env")
    if env:
        e = env[-1]
        p(f"device: {e.get('gpu', '-')} | driver {e.get('driver', '-')} | nvcc {e.get('nvcc', '-')} | cmake {e.get('cmake', '-')} | mode {e.get('mode', '-')}")
    p("")
    p("STEPS")
    for r in recs:
        if r.get("step", "").startswith(("correct", "perf", "study", "official")):
            continue
        extra = f" {r['seconds']}s" if "seconds" in r else ""
        note = f" ({r['note']})" if r.get("note") else ""
        p(f"  {r.get('step'):<24} {r.get('status'):<8}{extra}{note}")

    dec = by("correct-decoder")
    if dec:
        p("")
        p("CORRECTNESS decoder, greedy tokens cpu vs gpu (equal prefix / n per prompt)")
        types = []
        for r in dec:
            if r.get("type") not in types:
                types.append(r.get("type"))
        for t in types:
            rows = [r for r in dec if r.get("type") == t]
            cells = []
            for r in rows:
                d = r.get("data") or {}
                if r.get("status") != "ok":
                    cells.append(r.get("status"))
                else:
                    cells.append(f"{d.get('equal_prefix')}/{d.get('n')}")
            same = sum(1 for r in rows if (r.get("data") or {}).get("identical"))
            p(f"  {t:<6} identical {same}/{len(rows)}   " + "  ".join(cells))
    def dump_rows(step, title, label):
        rows = by(step)
        if not rows:
            return
        p("")
        p(title)
        for r in rows:
            d = r.get("data") or {}
            name = f"{label} {r.get(label, '-')}".strip() if label != "model" else str(r.get("model", "-"))
            p(f"  {name:<22} {r.get('status'):<6} rel_l2 {_fmt(d.get('rel_l2'), 6)}  max_abs {_fmt(d.get('max_abs'), 6)}  rel_max {_fmt(d.get('rel_max'), 6)}")

    dump_rows("correct-vision", "CORRECTNESS vision, cpu vs gpu (projected rows of 2 synthetic images)", "model")
    dump_rows("correct-bert", "CORRECTNESS BERT encoder, cpu vs gpu ([CLS] states and logits of the tiny CheXbert, 20 sequences)", "batch")

    perf = by("perf-llama-bench") + by("perf-ours")
    if perf:
        p("")
        p("DECODE / PREFILL tok/s (llama-bench: -ngl 99 -p 512 -n 128 -r 3; ours: generate ~512-token prompt, 128 tokens, warmed up)")
        p(f"  {'model':<12} {'fa':>2} {'lb pp512':>9} {'ours pp':>9} {'lb tg128':>9} {'ours tg':>9} {'tg ours/lb':>10}")
        models = []
        for r in perf:
            if r.get("model") not in models:
                models.append(r.get("model"))
        for m in models:
            for fa in (0, 1):
                lb = [r for r in by("perf-llama-bench") if r.get("model") == m and r.get("status") == "ok"]
                lpp = ltg = None
                for r in lb:
                    for t in (r.get("data") or {}).get("tests", []):
                        if str(t.get("fa")) in (str(fa), "on" if fa else "off"):
                            if t["test"].startswith("pp"):
                                lpp = t.get("avg_ts")
                            else:
                                ltg = t.get("avg_ts")
                ours = [r for r in by("perf-ours") if r.get("model") == m and r.get("fa") == fa and r.get("status") == "ok"]
                opp = otg = None
                if ours:
                    d = ours[-1].get("data") or {}
                    opp, otg = d.get("pp_tok_s"), d.get("tg_tok_s")
                ratio = otg / ltg if otg and ltg else None
                p(f"  {m:<12} {fa:>2} {_fmt(lpp):>9} {_fmt(opp):>9} {_fmt(ltg):>9} {_fmt(otg):>9} {_fmt(ratio, 2):>10}")
    st = by("study")
    if st:
        p("")
        p("STUDY (llava-rad-cli study: 7B-shaped decoder + ViT-B/14 518 tower, K=60 prompt tokens, T=100 tokens)")
        p(f"  {'P':>3} {'N':>4} {'fa':>2} {'ov':>2} {'vis b1':>7} {'vis bP':>7} {'ttft':>7} {'study1':>7} {'wall s':>7} {'ms/study':>8} {'studies/h':>9} {'dec tok/s':>9} {'tokens':>11}")
        for r in st:
            d = r.get("data") or {}
            if r.get("status") != "ok":
                p(f"  {r.get('parallel', '-'):>3} {'':>4} {'':>2} {'':>2} {r.get('status')} {r.get('note', '')}")
                continue
            toks = f"{d.get('generated_tokens')}/{d.get('expected_tokens')}"
            p(f"  {d.get('parallel'):>3} {d.get('studies'):>4} {d.get('flash_attn'):>2} {d.get('overlap'):>2} "
              f"{_fmt(d.get('vision_ms_per_image_b1')):>7} {_fmt(d.get('vision_ms_per_image_bp')):>7} {_fmt(d.get('ttft_ms')):>7} "
              f"{_fmt(d.get('study_ms_p1')):>7} {_fmt((d.get('wall_ms') or 0) / 1000, 2):>7} {_fmt(d.get('ms_per_study')):>8} "
              f"{_fmt(d.get('studies_per_hour'), 0):>9} {_fmt(d.get('decode_tok_s_aggregate')):>9} {toks:>11}")
    off = by("official")
    if off:
        p("")
        p("OFFICIAL STACK (HF generate, greedy, min_new_tokens = max_new_tokens; one study = tower + projector + generate)")
        for r in off:
            d = r.get("data") or {}
            if r.get("status") != "ok":
                p(f"  {r.get('status')} {r.get('note', '')}")
                continue
            p(f"  {d.get('stack')} | {d.get('device')} {d.get('dtype')} | init {_fmt(d.get('init_s'))} s"
              + (" | TINY" if d.get("tiny") else ""))
            for b in d.get("batches", []):
                p(f"  batch {b.get('batch'):>2}: vision {_fmt(b.get('vision_ms_per_image'))} ms/image, ttft {_fmt(b.get('ttft_ms'))} ms, "
                  f"{_fmt(b.get('ms_per_study'))} ms/study, {_fmt(b.get('studies_per_hour'), 0)} studies/h, {b.get('generated_tokens')} tokens/study")
    bad = [r for r in recs if r.get("status") not in ("ok", "info")]
    p("")
    names = sorted({"%s=%s" % (r.get("step"), r.get("status")) for r in bad})
    p(f"{len(recs)} records, {len(bad)} not ok" + (": " + ", ".join(names) if bad else ""))
    print("\n".join(out))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {
        "record": cmd_record,
        "tokens": cmd_tokens,
        "dumps": cmd_dumps,
        "llama-bench": cmd_llama_bench,
        "decode": cmd_decode,
        "prompt": cmd_prompt,
        "summary": cmd_summary,
    }.get(cmd)
    if fn is None:
        print(__doc__)
        return 2
    fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
