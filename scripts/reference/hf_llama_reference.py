"""A float64 PyTorch reference of the LLaMA decoder as Hugging Face's LlamaForCausalLM computes it, on the
weights the official release holds (HF names, q/k rows NOT permuted for llama.cpp's RoPE): RMSNorm, HF
LlamaRotaryEmbedding with rotate_half (dims i and i + d/2 form a pair), causal attention with grouped KV
heads, SwiGLU MLP, untied lm head. Because the q/k rows are the HF ones, agreement with our engine also checks
the converter's permutation independently.

Used by scripts/make-tiny-release.py (greedy goldens) and scripts/reference/teacher_force.py (teacher forcing);
CI never runs Python.
"""
import math

import torch
import torch.nn.functional as F


class HfLlama:
    def __init__(self, sd, cfg, act=None):
        """sd: HF state dict (model.embed_tokens.weight, model.layers.N.*, model.norm.weight, lm_head.weight);
        cfg: the HF config.json dict; act: applied to the activations that enter every matrix product (None:
        exact; scripts/reference/ideal_q8_0.py --activations rounds them as ggml's q8_0 products do)"""
        self.w = {k: v.to(torch.float64) for k, v in sd.items()}
        self.act = act or (lambda x: x)
        self.h, self.nh = cfg['hidden_size'], cfg['num_attention_heads']
        self.nkv = cfg.get('num_key_value_heads') or self.nh
        self.L = cfg['num_hidden_layers']
        self.eps = cfg.get('rms_norm_eps', 1e-6)
        self.hd = self.h // self.nh
        self.base = float(cfg.get('rope_theta') or 10000.0)
        self.eos = cfg.get('eos_token_id', 2)

    def rms(self, x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):
        """x: [n, heads, head_dim]; HF rotate_half on pairs (i, i + d/2)"""
        d = self.hd
        inv = 1.0 / (self.base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        ang = pos.to(torch.float64)[:, None] * inv[None, :]
        emb = torch.cat([ang, ang], -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def embed(self, ids):
        return self.w['model.embed_tokens.weight'][torch.as_tensor(ids, dtype=torch.long)]

    def hidden(self, x, cache):
        """x: [n, hidden] input embeddings after the cached positions -> final hidden states [n, hidden]
        (before the final norm); cache: a list of per-layer (k, v), extended in place"""
        n = x.shape[0]
        past = cache[0][0].shape[0] if cache else 0
        pos = torch.arange(past, past + n)
        mask = torch.full((n, past + n), float('-inf'), dtype=torch.float64).triu(past + 1)
        h = x.to(torch.float64)
        for i in range(self.L):
            p = f'model.layers.{i}.'
            a = self.rms(h, self.w[p + 'input_layernorm.weight'])
            q = (self.act(a) @ self.w[p + 'self_attn.q_proj.weight'].T).view(n, self.nh, self.hd)       # [n, nh, hd]
            k = (self.act(a) @ self.w[p + 'self_attn.k_proj.weight'].T).view(n, self.nkv, self.hd)      # [n, nkv, hd]
            v = (self.act(a) @ self.w[p + 'self_attn.v_proj.weight'].T).view(n, self.nkv, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if len(cache) <= i:
                cache.append((k, v))
            else:
                k, v = torch.cat([cache[i][0], k]), torch.cat([cache[i][1], v])
                cache[i] = (k, v)
            rep = self.nh // self.nkv
            kk, vv = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)                # [past+n, nh, hd]
            att = (torch.einsum('qhd,khd->hqk', q, kk) / math.sqrt(self.hd) + mask).softmax(-1)
            o = torch.einsum('hqk,khd->qhd', att, vv).reshape(n, self.h)
            h = h + self.act(o) @ self.w[p + 'self_attn.o_proj.weight'].T
            a = self.rms(h, self.w[p + 'post_attention_layernorm.weight'])
            g = self.act(a) @ self.w[p + 'mlp.gate_proj.weight'].T
            u = self.act(a) @ self.w[p + 'mlp.up_proj.weight'].T
            h = h + self.act(F.silu(g) * u) @ self.w[p + 'mlp.down_proj.weight'].T
        return h

    def logits(self, h):
        """final norm + lm head: [n, hidden] -> [n, vocab]"""
        return self.act(self.rms(h, self.w['model.norm.weight'])) @ self.w['lm_head.weight'].T

    def forward(self, x, cache):
        """the next-token logits after x (the last position only), extending cache"""
        return self.logits(self.hidden(x, cache)[-1:])[-1]

    def logits_from(self, x, first):
        """one causal pass over the whole sequence x [n, hidden]; logits of positions first..n-1"""
        return self.logits(self.hidden(x, [])[first:])

    def greedy(self, emb, max_new):
        cache = []
        logits = self.forward(emb, cache)
        toks, steps = [], []
        for i in range(max_new):
            top = torch.topk(logits, 2)
            t1, t2 = int(top.indices[0]), int(top.indices[1])
            l1, l2 = float(top.values[0]), float(top.values[1])
            steps.append(dict(token=t1, logit=round(l1, 6), top2_token=t2, top2_logit=round(l2, 6),
                              margin=round(l1 - l2, 6)))
            toks.append(t1)
            if t1 == self.eos or i + 1 == max_new:
                break
            logits = self.forward(self.embed([t1]), cache)
        return toks, steps
