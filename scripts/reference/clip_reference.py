"""BiomedCLIP-CXR as open_clip 2.23 runs it (see ../shared/LLAVA_RAD.md, "BiomedCLIP-CXR as a CLIP model"),
written from open_clip's semantics in plain PyTorch, float64, on the checkpoint's own state dict:

- image: timm trunk (llava_rad_reference.VisionTower) -> every block -> trunk.norm (eps 1e-6) -> CLS ->
  head.proj (Linear, no bias) -> L2-normalized;
- text: HF BertModel (post-LN, exact GELU, word + position + token-type-0 embeddings, padding masked) ->
  last_hidden_state[:, 0] (cls_last_hidden_state_pooler) -> proj.0 (no bias) -> GELU -> proj.2 (no bias) ->
  L2-normalized;
- logits = exp(logit_scale) * image . text.

Nothing here reads our GGUF files or our code. CI never runs Python.
"""
import math

import torch
import torch.nn.functional as F

from llava_rad_reference import VisionTower

TEXT_EPS = 1e-12
TRUNK_EPS = 1e-6


def strip_prefix(sd):
    """the checkpoint's tensors without `state_dict` nesting or the DDP `module.` prefix"""
    if 'state_dict' in sd:
        sd = sd['state_dict']
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in sd.items()}


# ---- the text tower ----------------------------------------------------------------------------------
def random_text_tower(g, vocab, dim, layers, ff, positions, embed_dim):
    """HF BertModel tensors (module.text.transformer.*) and open_clip's mlp projection (module.text.proj.*)"""
    def n(*shape, std=None, mean=0.0):
        s = std if std is not None else 1.0 / math.sqrt(shape[-1])
        return torch.randn(*shape, generator=g, dtype=torch.float32) * s + mean
    t = 'text.transformer.'
    sd = {t + 'embeddings.word_embeddings.weight': n(vocab, dim, std=0.5),
          t + 'embeddings.position_embeddings.weight': n(positions, dim, std=0.2),
          t + 'embeddings.token_type_embeddings.weight': n(2, dim, std=0.2),
          t + 'embeddings.LayerNorm.weight': n(dim, std=0.1, mean=1.0),
          t + 'embeddings.LayerNorm.bias': n(dim, std=0.05)}
    for i in range(layers):
        p = f'{t}encoder.layer.{i}.'
        for m in ('query', 'key', 'value'):
            sd[f'{p}attention.self.{m}.weight'] = n(dim, dim, std=0.4 if m != 'value' else None)
            sd[f'{p}attention.self.{m}.bias'] = n(dim, std=0.05)
        sd[p + 'attention.output.dense.weight'] = n(dim, dim)
        sd[p + 'attention.output.dense.bias'] = n(dim, std=0.05)
        sd[p + 'attention.output.LayerNorm.weight'] = n(dim, std=0.1, mean=1.0)
        sd[p + 'attention.output.LayerNorm.bias'] = n(dim, std=0.05)
        sd[p + 'intermediate.dense.weight'] = n(ff, dim)
        sd[p + 'intermediate.dense.bias'] = n(ff, std=0.05)
        sd[p + 'output.dense.weight'] = n(dim, ff)
        sd[p + 'output.dense.bias'] = n(dim, std=0.05)
        sd[p + 'output.LayerNorm.weight'] = n(dim, std=0.1, mean=1.0)
        sd[p + 'output.LayerNorm.bias'] = n(dim, std=0.05)
    sd[t + 'pooler.dense.weight'] = n(dim, dim)  # present in the release, unused by the CLS pooler
    sd[t + 'pooler.dense.bias'] = n(dim, std=0.05)
    hidden = (dim + embed_dim) // 2
    sd['text.proj.0.weight'] = n(hidden, dim)
    sd['text.proj.2.weight'] = n(embed_dim, hidden)
    return sd


def text_embeddings(sd, ids_batch, heads, pad_id=0):
    """ids_batch: lists of ids ([CLS] ... [SEP]); padded with pad_id to the longest and masked, as open_clip's
    HFTextEncoder does (attention_mask = ids != pad_token_id)"""
    w = {k: v.double() for k, v in sd.items()}
    t = 'text.transformer.'
    T = max(len(x) for x in ids_batch)
    ids = torch.tensor([x + [pad_id] * (T - len(x)) for x in ids_batch])
    mask = ids != pad_id
    D = w[t + 'embeddings.word_embeddings.weight'].shape[1]
    hd = D // heads

    def ln(x, p):
        return F.layer_norm(x, (D,), w[p + '.weight'], w[p + '.bias'], TEXT_EPS)

    def lin(x, p):
        return x @ w[p + '.weight'].T + w[p + '.bias']

    x = (w[t + 'embeddings.word_embeddings.weight'][ids] + w[t + 'embeddings.position_embeddings.weight'][:T][None]
         + w[t + 'embeddings.token_type_embeddings.weight'][0])
    x = ln(x, t + 'embeddings.LayerNorm')
    bias = torch.zeros(ids.shape, dtype=torch.float64).masked_fill(~mask, torch.finfo(torch.float64).min)[:, None, None, :]
    i = 0
    while f'{t}encoder.layer.{i}.attention.self.query.weight' in w:
        p = f'{t}encoder.layer.{i}.'
        B = x.shape[0]
        q, k, v = (lin(x, p + 'attention.self.' + m).view(B, T, heads, hd).transpose(1, 2) for m in ('query', 'key', 'value'))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, -1) @ v
        a = lin(a.transpose(1, 2).reshape(B, T, D), p + 'attention.output.dense')
        x = ln(x + a, p + 'attention.output.LayerNorm')
        f = lin(F.gelu(lin(x, p + 'intermediate.dense')), p + 'output.dense')
        x = ln(x + f, p + 'output.LayerNorm')
        i += 1
    cls = x[:, 0]
    e = F.gelu(cls @ w['text.proj.0.weight'].T) @ w['text.proj.2.weight'].T
    return F.normalize(e, dim=-1)


# ---- the image tower ---------------------------------------------------------------------------------
def image_embeddings(sd, pixels, heads):
    """pixels: [B, 3, S, S] normalized; the trunk's tensors (visual.trunk.*) loaded into VisionTower"""
    trunk = {k[len('visual.trunk.'):]: v.double() for k, v in sd.items() if k.startswith('visual.trunk.')}
    dim = trunk['cls_token'].shape[2]
    patch = trunk['patch_embed.proj.weight'].shape[2]
    grid = int(round(math.sqrt(trunk['pos_embed'].shape[1] - 1)))
    depth = 0
    while f'blocks.{depth}.attn.qkv.weight' in trunk:
        depth += 1
    hidden = trunk['blocks.0.mlp.fc1.weight'].shape[0]
    tower = VisionTower(image_size=grid * patch, patch=patch, dim=dim, depth=depth, heads=heads, hidden=hidden, eps=TRUNK_EPS).double()
    tower.load_state_dict(trunk)
    with torch.no_grad():
        x = tower.hidden_states(pixels.double())[-1]
        cls = tower.norm(x)[:, 0]
        e = cls @ sd['visual.head.proj.weight'].double().T
    return F.normalize(e, dim=-1)


def zero_shot(image_emb, label_embs, logit_scale):
    """softmax over the labels of exp(logit_scale) * image . label (label_embs: one normalized row a label)"""
    return torch.softmax(math.exp(float(logit_scale)) * image_emb @ label_embs.T, -1)


def label_embedding(template_embs):
    """open_clip's build_zero_shot_classifier: the mean of the templates' normalized embeddings, renormalized"""
    return F.normalize(template_embs.mean(0), dim=-1)
