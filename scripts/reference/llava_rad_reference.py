"""A PyTorch reference of LLaVA-Rad's image path, written from the official code's structure:

- the vision tower is open_clip's BiomedCLIP-CXR trunk, timm's `vit_base_patch14_dinov2` at 518 px:
  patch embedding (conv 14x14 stride 14, bias), CLS token first, learned position embeddings, pre-norm
  blocks  x = x + ls1 * attn(norm1(x));  x = x + ls2 * mlp(norm2(x))  with LayerNorm eps 1e-6, fused qkv
  with bias (rows q, k, v), scale 1/sqrt(head_dim), exact (erf) GELU in the MLP, LayerScale gammas;
- LLaVA-Rad keeps every block's output and takes hidden_states[-2] (the output of the second-to-last
  block), drops CLS;
- the projector is mlp2x_gelu: Linear -> GELU (erf) -> Linear.

State-dict keys follow timm / open_clip (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.N.norm1.*`,
`blocks.N.attn.qkv.*`, `blocks.N.attn.proj.*`, `blocks.N.ls1.gamma`, `blocks.N.mlp.fc1.*`, ...) and LLaVA's
projector (`0.weight`, `2.weight`, ...), so the same weights can be saved in the official release layout.

Used by scripts/reference/make_vision_fixture.py to write the test goldens; CI never runs Python.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                      # [b, heads, n, head_dim]
        attn = (q * self.scale) @ k.transpose(-2, -1)         # [b, heads, n, n]
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact GELU (timm's nn.GELU default)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden)
        self.ls2 = LayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return x


class VisionTower(nn.Module):
    """timm VisionTransformer as DINOv2 configures it (no pre-norm, no registers, CLS first)."""

    def __init__(self, image_size=518, patch=14, dim=768, depth=12, heads=12, hidden=3072, eps=1e-6):
        super().__init__()
        self.grid = image_size // patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, bias=True)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, hidden, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)  # present in the checkpoint, unused by LLaVA-Rad

    def hidden_states(self, pixels):
        """every block's output, [b, 1 + grid^2, dim] each"""
        x = self.patch_embed.proj(pixels).flatten(2).transpose(1, 2)  # [b, grid^2, dim]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        out = []
        for blk in self.blocks:
            x = blk(x)
            out.append(x)
        return out


class Projector(nn.Sequential):
    """mlp2x_gelu: Linear(mm_hidden, hidden) -> GELU -> Linear(hidden, hidden); keys 0.* and 2.*"""

    def __init__(self, vision_dim, text_dim):
        super().__init__(nn.Linear(vision_dim, text_dim), nn.GELU(), nn.Linear(text_dim, text_dim))


def image_features(tower, pixels, select_layer=-2):
    """LLaVA-Rad's features: hidden_states[select_layer] without CLS, [b, grid^2, dim]"""
    return tower.hidden_states(pixels)[select_layer][:, 1:]


def randomize_(module, generator, std=0.05, layer_scale=(0.05, 0.5)):
    """deterministic random weights with the real structure (LayerScale gammas small and positive)"""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('gamma'):
                p.uniform_(layer_scale[0], layer_scale[1], generator=generator)
            elif 'norm' in name and name.endswith('weight'):
                p.normal_(1.0, 0.1, generator=generator)
            elif 'norm' in name and name.endswith('bias'):
                p.normal_(0.0, 0.05, generator=generator)
            elif name.endswith('bias'):
                p.normal_(0.0, 0.02, generator=generator)
            elif name in ('cls_token', 'pos_embed'):
                p.normal_(0.0, 0.5, generator=generator)
            else:
                fan_in = p[0].numel()
                p.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)


def synthetic_pixels(size=518):
    """a deterministic uint8 RGB image [3, size, size] both this script and the tests can compute"""
    c = torch.arange(3).view(3, 1, 1)
    y = torch.arange(size).view(1, size, 1)
    x = torch.arange(size).view(1, 1, size)
    return ((x * 7 + y * 13 + c * 29 + (x * y) // 97) % 256).to(torch.uint8)


def normalize(u8, mean=OPENAI_MEAN, std=OPENAI_STD):
    """ToTensor + Normalize in float32, as torchvision computes them"""
    x = u8.to(torch.float32) / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s
