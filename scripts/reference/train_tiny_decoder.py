#!/usr/bin/python3
"""Trains the decoder of a tiny release a little, so that it is conditioned like a trained model.

Random weights make a chaotic tiny decoder: the greedy text only varies from step to step because tiny
perturbations are amplified, so rounding the weights to q8_0 (0.5% per weight) moves logits by whole units,
and no q8_0 implementation can meet issue #4's 0.4 teacher-forcing criterion on it (scripts/reference/
ideal_q8_0.py shows it with the weights alone). A trained model varies its text because of what it has
learned, and tolerates rounding. This module gives make-tiny-release.py's `--profile trained`: starting from
the random decoder it trains every decoder weight (the vision tower and the projector stay random and fixed)
to write a findings text chosen by the image, in the official prompt, after the image rows of a few
synthetic radiographs. Everything is seeded; float32 autograd on the CPU, a few minutes.

The forward here is a float32 autograd copy of scripts/reference/hf_llama_reference.py (HF LLaMA: RMSNorm,
rotate_half RoPE on unpermuted q/k, grouped KV heads, SwiGLU, untied lm head); the reference checks the
result with its own float64 code, so a mistake here could only make the release worse trained, never make
the check pass wrongly.
"""
import math
import os
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from llava_rad_reference import image_features
from make_findings_golden import _radiograph, preprocess, prompt_text

BOS, EOS = 1, 2

# sentences of chest X-ray findings; each training image gets its own selection and order
SENTENCES = [
    'The lungs are clear.',
    'There is no focal consolidation, pleural effusion, or pneumothorax.',
    'The cardiomediastinal silhouette is within normal limits.',
    'Heart size is mildly enlarged.',
    'There is mild pulmonary vascular congestion.',
    'Small bilateral pleural effusions are present.',
    'There is a left lower lobe opacity concerning for pneumonia.',
    'Right basilar atelectasis is noted.',
    'No acute osseous abnormality is seen.',
    'A right internal jugular central venous catheter terminates in the mid superior vena cava.',
    'Median sternotomy wires are intact.',
    'There is no pneumothorax.',
    'Degenerative changes of the thoracic spine are seen.',
    'The hila are unremarkable.',
    'Patchy opacities in both lung bases may reflect atelectasis or aspiration.',
    'An endotracheal tube terminates 4 cm above the carina.',
]
REASONS = [None, 'Cough and fever for three days, evaluate for pneumonia.', 'Shortness of breath.']


class TinyLlama32:
    """float32 autograd HF LLaMA over a dict of leaf tensors"""

    def __init__(self, w, cfg):
        self.w = w
        self.h, self.nh, self.nkv, self.L = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_key_value_heads'], cfg['num_hidden_layers']
        self.eps = cfg['rms_norm_eps']
        self.hd = self.h // self.nh

    def rms(self, x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):
        d = self.hd
        inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        ang = pos.float()[:, None] * inv[None, :]
        emb = torch.cat([ang, ang], -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def hidden(self, x):
        """x: [n, hidden] input embeddings -> final hidden states [n, hidden] (before the final norm)"""
        n = x.shape[0]
        pos = torch.arange(n)
        mask = torch.full((n, n), float('-inf')).triu(1)
        h = x
        for i in range(self.L):
            p = f'model.layers.{i}.'
            a = self.rms(h, self.w[p + 'input_layernorm.weight'])
            q = (a @ self.w[p + 'self_attn.q_proj.weight'].T).view(n, self.nh, self.hd)
            k = (a @ self.w[p + 'self_attn.k_proj.weight'].T).view(n, self.nkv, self.hd)
            v = (a @ self.w[p + 'self_attn.v_proj.weight'].T).view(n, self.nkv, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            rep = self.nh // self.nkv
            q = q.transpose(0, 1)                                               # [nh, n, hd]
            k = k.repeat_interleave(rep, 1).permute(1, 2, 0)                    # [nh, hd, n]
            v = v.repeat_interleave(rep, 1).transpose(0, 1)                    # [nh, n, hd]
            att = torch.baddbmm(mask, q, k, alpha=1 / math.sqrt(self.hd)).softmax(-1)   # [nh, n, n]
            o = torch.bmm(att, v).transpose(0, 1).reshape(n, self.h)
            h = h + o @ self.w[p + 'self_attn.o_proj.weight'].T
            a = self.rms(h, self.w[p + 'post_attention_layernorm.weight'])
            h = h + (F.silu(a @ self.w[p + 'mlp.gate_proj.weight'].T) * (a @ self.w[p + 'mlp.up_proj.weight'].T)) @ self.w[p + 'mlp.down_proj.weight'].T
        return h

    def logits(self, h):
        return self.rms(h, self.w['model.norm.weight']) @ self.w['lm_head.weight'].T


def training_images(seed, n):
    """n synthetic radiographs of varied sizes (PNG files in a temporary folder, as the reference reads them)"""
    d = tempfile.mkdtemp(prefix='llava-rad-train-')
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        w, h = int(rng.integers(600, 1100)), int(rng.integers(600, 1100))
        p = os.path.join(d, f'train-{i}.png')
        Image.fromarray(np.round(_radiograph(w, h, seed * 100 + i) * 255).astype(np.uint8), 'L').save(p)
        paths.append(p)
    return paths


def findings_for(rng):
    k = int(rng.integers(3, 6))
    return ' '.join(SENTENCES[j] for j in rng.choice(len(SENTENCES), size=k, replace=False))


def train_decoder(base, cfg, tower, proj, tower_cfg, sp, seed, delta=None, steps=120, n_images=8, batch=2, lr=3e-3, log=print):
    """base: the fp16 HF decoder state dict -> a trained fp16 state dict with the same keys and shapes.
    tower, proj: the release's (fp16) vision tower and projector; sp: a SentencePiece processor of tokenizer.model;
    delta: fixed float32 additions to some weights (the merged LoRA), so that base + delta is what gets trained"""
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(seed)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    tower32, proj32 = tower.float().eval(), proj.float().eval()
    examples = []
    with torch.no_grad():
        for path in training_images(seed, n_images):
            px = preprocess(path, tower_cfg['image_size'], mean, std)
            rows = proj32(image_features(tower32, px[None], -2))[0]          # [patches, hidden]
            text = findings_for(rng)
            for reason in REASONS:
                t0, t1 = prompt_text(reason).split('<image>')
                before, after = [BOS] + sp.encode(t0), sp.encode(t1)
                target = sp.encode(text) + [EOS]
                examples.append((before, rows, after, target))
    tower.half(), proj.half()
    w = {k: v.float().clone().requires_grad_(True) for k, v in base.items()}
    delta = delta or {}
    eff = {}
    model = TinyLlama32(eff, cfg)
    opt = torch.optim.Adam(list(w.values()), lr=lr)
    order = rng.permutation(len(examples))
    for step in range(steps):
        opt.zero_grad()
        eff.update({k: w[k] + delta[k] if k in delta else w[k] for k in w})
        total = 0.0
        for j in range(batch):
            before, rows, after, target = examples[order[(step * batch + j) % len(order)]]
            emb = w['model.embed_tokens.weight']
            ids_after = torch.tensor(after + target[:-1])
            x = torch.cat([emb[torch.tensor(before)], rows, emb[ids_after]], 0)
            n_prompt = len(before) + rows.shape[0] + len(after)
            h = model.hidden(x)[n_prompt - 1:]                                   # positions predicting the target
            loss = F.cross_entropy(model.logits(h), torch.tensor(target)) / batch
            loss.backward()
            total += float(loss)
        opt.step()
        if step % 20 == 0 or step == steps - 1:
            log(f'train step {step}: loss {total:.3f}', flush=True)
    return {k: v.detach().to(torch.float16) for k, v in w.items()}
