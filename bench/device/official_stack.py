#!/usr/bin/env python3
"""The official LLaVA-Rad stack's cost per study on a GPU, for comparison with `llava-rad-cli study`.

What LLaVA-Rad's own code runs (microsoft/LLaVA-Rad; /work/shared/LLAVA_RAD.md), with random weights of
the real shapes (random weights compute exactly as fast as trained ones):
  - the image tower: timm `vit_base_patch14_dinov2` at 518 px in fp16; every block runs and
    hidden_states[-2] (the output of block 11 of 12) without CLS is kept: 1369 x 768
  - the projector mlp2x_gelu: Linear(768, 4096) - GELU - Linear(4096, 4096), fp16
  - the decoder: transformers LlamaForCausalLM with Vicuna-7B v1.5's config (LLaMA-2-7B), fp16
  - a study: image -> tower -> projector -> inputs_embeds = [BOS + ~35 prompt tokens, 1369 image rows,
    ~25 prompt tokens] -> model.generate(max_new_tokens=T, min_new_tokens=T, do_sample=False)
Batch b runs b studies at once (one tower batch, one generate call with b rows).

  python3 official_stack.py [--batches 1,8] [--rounds 2] [--max-new-tokens 100] [--prompt-tokens 60]
                            [--device cuda|cpu] [--tiny] [--allow-fallback] [--json-out FILE]

--tiny: tiny shapes (a check of this script on a CPU). --allow-fallback (with --tiny only): when
transformers or timm is not installed, small stand-ins written here replace them, so the harness still
runs (the transformers / timm calls themselves are then not exercised).
Prints one JSON object (last line); --json-out writes it to a file too.
"""
import argparse
import contextlib
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn

# the official prompt's token ids (LLaMA-2 vocabulary): [BOS] + the text before <image>, and the text after
# it ("\nProvide a description of the findings in the radiology image. ASSISTANT:"), as llava-rad-cli study
# and the library tokenize them
PROMPT_BEFORE = [1, 319, 13563, 1546, 263, 12758, 1404, 322, 385, 23116, 21082, 20255, 29889, 450, 20255, 4076,
                 8444, 29892, 13173, 29892, 322, 1248, 568, 6089, 304, 278, 1404, 29915, 29879, 5155, 29889, 3148,
                 1001, 29901, 29871]
PROMPT_AFTER = [29871, 13, 1184, 29894, 680, 263, 6139, 310, 278, 1284, 886, 297, 278, 17937, 3002, 1967, 29889,
                319, 1799, 9047, 13566, 29901]

FULL = dict(vocab=32000, hidden=4096, ffn=11008, layers=32, heads=32, ctx=4096,
            vit="vit_base_patch14_dinov2", img=518, patch=14, width=768, depth=12, vit_heads=12)
TINY = dict(vocab=1000, hidden=64, ffn=128, layers=2, heads=4, ctx=2048,
            vit=None, img=56, patch=14, width=32, depth=3, vit_heads=2)


def fit_prompt(k):
    """The same fitting as llava-rad-cli study: keep the halves' proportions, cycle the text when longer."""
    body = PROMPT_BEFORE[1:] + PROMPT_AFTER
    total = len(PROMPT_BEFORE) + len(PROMPT_AFTER)
    kb = max(1, min(k, round(k * len(PROMPT_BEFORE) / total)))
    ka = k - kb

    def fill(natural, n):
        out = natural[:n]
        i = 0
        while len(out) < n:
            out.append(body[i % len(body)])
            i += 1
        return out

    return fill(PROMPT_BEFORE, kb), fill(PROMPT_AFTER, ka)


def on_device(dev):
    """`with torch.device(...)` (PyTorch >= 2.0) so parameters are created there; a no-op before."""
    return dev if hasattr(dev, "__enter__") else contextlib.nullcontext()


@contextlib.contextmanager
def default_dtype(dtype):
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(prev)


# ---- stand-ins (only with --tiny --allow-fallback, when transformers / timm are missing) -------------

class _PatchEmbed(nn.Module):
    def __init__(self, patch, width):
        super().__init__()
        self.proj = nn.Conv2d(3, width, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class FallbackViT(nn.Module):
    """timm VisionTransformer's attribute names (patch_embed, _pos_embed, norm_pre, blocks, num_prefix_tokens)."""

    def __init__(self, c):
        super().__init__()
        n = (c["img"] // c["patch"]) ** 2
        self.patch_embed = _PatchEmbed(c["patch"], c["width"])
        self.cls_token = nn.Parameter(torch.randn(1, 1, c["width"]) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, c["width"]) * 0.02)
        self.norm_pre = nn.Identity()
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(c["width"], c["vit_heads"], 4 * c["width"], dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(c["depth"]))
        self.num_prefix_tokens = 1

    def _pos_embed(self, x):
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed


class FallbackDecoder(nn.Module):
    """get_input_embeddings() and a greedy generate(inputs_embeds=..., max_new_tokens=...) returning new ids."""

    def __init__(self, c):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(c["hidden"], c["heads"], c["ffn"], dropout=0.0, batch_first=True, norm_first=True),
            c["layers"])
        self.head = nn.Linear(c["hidden"], c["vocab"], bias=False)

    def get_input_embeddings(self):
        return self.embed

    @torch.no_grad()
    def generate(self, inputs_embeds, attention_mask=None, max_new_tokens=1, min_new_tokens=0, **kw):
        x = inputs_embeds
        new = []
        for _ in range(max_new_tokens):
            n = x.shape[1]
            mask = torch.triu(torch.full((n, n), float("-inf"), device=x.device), diagonal=1)
            h = self.layers(x, mask=mask)
            tok = self.head(h[:, -1]).argmax(-1)
            new.append(tok)
            x = torch.cat([x, self.embed(tok)[:, None, :]], dim=1)
        return torch.stack(new, dim=1)


# ---- the official stack ---------------------------------------------------------------------------------

def make_tower(c, dev, dtype, allow_fallback):
    try:
        import timm
        if c["vit"]:
            m = timm.create_model(c["vit"], pretrained=False, img_size=c["img"], num_classes=0)
        else:
            from timm.models.vision_transformer import VisionTransformer
            m = VisionTransformer(img_size=c["img"], patch_size=c["patch"], embed_dim=c["width"], depth=c["depth"],
                                  num_heads=c["vit_heads"], num_classes=0, init_values=1e-5)
        name = f"timm {timm.__version__} {c['vit'] or 'VisionTransformer(tiny)'}"
    except ImportError:
        if not allow_fallback:
            raise
        m = FallbackViT(c)
        name = "fallback ViT (timm not installed)"
    return m.to(dev, dtype).eval(), name


def tower_features(tower, x):
    """hidden_states[-2] without the prefix (CLS) tokens, every block run (as LLaVA-Rad's encoder does)."""
    x = tower.patch_embed(x)
    x = tower._pos_embed(x)
    if hasattr(tower, "patch_drop"):
        x = tower.patch_drop(x)
    x = tower.norm_pre(x)
    hidden = []
    for blk in tower.blocks:
        x = blk(x)
        hidden.append(x)
    return hidden[-2][:, tower.num_prefix_tokens:, :]


def make_decoder(c, dev, dtype, allow_fallback):
    try:
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig(vocab_size=c["vocab"], hidden_size=c["hidden"], intermediate_size=c["ffn"],
                          num_hidden_layers=c["layers"], num_attention_heads=c["heads"], num_key_value_heads=c["heads"],
                          max_position_embeddings=c["ctx"], rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                          pad_token_id=0, tie_word_embeddings=False)
        # parameters created on the device, in the target dtype (a random 7B in fp32 on the CPU takes minutes)
        with default_dtype(dtype), on_device(dev):
            m = LlamaForCausalLM(cfg)
        name = f"transformers {transformers.__version__} LlamaForCausalLM"
    except ImportError:
        if not allow_fallback:
            raise
        with default_dtype(dtype):
            m = FallbackDecoder(c)
        name = "fallback decoder (transformers not installed)"
    return m.to(dev, dtype).eval(), name


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=100)
    ap.add_argument("--prompt-tokens", type=int, default=60)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--allow-fallback", action="store_true")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    if args.allow_fallback and not args.tiny:
        ap.error("--allow-fallback is only for --tiny")
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if not batches or min(batches) < 1 or args.rounds < 1 or args.max_new_tokens < 1 or args.prompt_tokens < 1:
        ap.error("batches, rounds, max-new-tokens and prompt-tokens must be positive")

    c = TINY if args.tiny else FULL
    dev = torch.device(args.device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    torch.manual_seed(0)
    t0 = time.perf_counter()
    tower, tower_name = make_tower(c, dev, dtype, args.allow_fallback)
    with default_dtype(dtype), on_device(dev):
        projector = nn.Sequential(nn.Linear(c["width"], c["hidden"]), nn.GELU(), nn.Linear(c["hidden"], c["hidden"]))
    projector = projector.to(dev, dtype).eval()
    decoder, decoder_name = make_decoder(c, dev, dtype, args.allow_fallback)
    sync(dev)
    init_s = time.perf_counter() - t0

    before, after = fit_prompt(args.prompt_tokens)
    ids_before = torch.tensor([t % c["vocab"] for t in before], device=dev)
    ids_after = torch.tensor([t % c["vocab"] for t in after], device=dev)
    embed = decoder.get_input_embeddings()
    n_patches = (c["img"] // c["patch"]) ** 2

    def images(b):
        return torch.randn(b, 3, c["img"], c["img"], device=dev, dtype=dtype)

    @torch.no_grad()
    def study(b, max_new, timings):
        """b studies at once; returns the generated ids; timings gets vision / generate ms."""
        sync(dev)
        t_a = time.perf_counter()
        rows = projector(tower_features(tower, images(b)))
        sync(dev)
        t_b = time.perf_counter()
        parts = [embed(ids_before)[None].expand(b, -1, -1), rows]
        if len(after):
            parts.append(embed(ids_after)[None].expand(b, -1, -1))
        emb = torch.cat(parts, dim=1)
        mask = torch.ones(emb.shape[:2], dtype=torch.long, device=dev)
        out = decoder.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=max_new, min_new_tokens=max_new,
                               do_sample=False, num_beams=1, eos_token_id=2, pad_token_id=0, use_cache=True)
        sync(dev)
        t_c = time.perf_counter()
        timings.append({"vision_ms": (t_b - t_a) * 1000, "generate_ms": (t_c - t_b) * 1000, "total_ms": (t_c - t_a) * 1000})
        return out

    result = {
        "stack": f"{decoder_name} + {tower_name} + mlp2x_gelu",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "tiny": args.tiny,
        "init_s": init_s,
        "prompt_tokens": len(before) + len(after),
        "image_rows": n_patches,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "batches": [],
    }
    for b in batches:
        warm = []
        study(b, 2, warm)  # untimed: kernels, allocator, cuBLAS handles
        ttft = None
        if b == 1:
            first = []
            study(1, 1, first)
            ttft = first[0]["total_ms"]
        runs = []
        generated = None
        for _ in range(args.rounds):
            out = study(b, args.max_new_tokens, runs)
            generated = int(out.shape[1])
        total = statistics.median(r["total_ms"] for r in runs)
        gen = statistics.median(r["generate_ms"] for r in runs)
        vis = statistics.median(r["vision_ms"] for r in runs)
        per = total / b
        result["batches"].append({
            "batch": b,
            "vision_ms_per_image": vis / b,
            "ttft_ms": ttft,
            "round_ms": total,
            "generate_ms": gen,
            "ms_per_study": per,
            "studies_per_hour": 3_600_000 / per if per > 0 else None,
            "generated_tokens": generated,
            "tokens_per_s": b * generated / (gen / 1000) if gen > 0 and generated else None,
            "runs": runs,
        })
        print(f"batch {b}: {per:.1f} ms per study, {3_600_000 / per:.0f} studies/hour, vision {vis / b:.1f} ms/image, "
              f"{generated} tokens per study", file=sys.stderr, flush=True)
    if dev.type == "cuda":
        result["max_memory_gb"] = torch.cuda.max_memory_allocated(dev) / 2**30
    line = json.dumps(result)
    if args.json_out:
        with open(args.json_out, "w") as fh:
            fh.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
