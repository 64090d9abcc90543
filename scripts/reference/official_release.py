"""Loads the OFFICIAL LLaVA-Rad release layout (lmsys/vicuna-7b-v1.5 + microsoft/llava-rad, or a tiny random
release written in the same layout) into the PyTorch reference, the way the official code holds it:

- Vicuna: config.json, pytorch_model*.bin shards (torch.load), tokenizer.model (SentencePiece itself);
- the LoRA adapter merged as llava/model/builder.py's merge_and_unload leaves it: W = fp16(float(W) + alpha/r * B@A);
- the projector from non_lora_trainables.bin (keys ending in mm_projector.{0,2}.{weight,bias});
- the tower from the open_clip checkpoint (`state_dict` or not, `module.` prefix or not; `visual.trunk.*`),
  its width/depth/patch/MLP width read from the tensors, heads from the open_clip JSON (`head_width`,
  timm's 64 when absent), LayerNorm eps 1e-6 (timm DINOv2), mean/std OpenAI's (open_clip's default);
- select layer from llava-rad/config.json (mm_vision_select_layer).

Nothing here reads our GGUF files or our code: it is the independent side of the checks. CI never runs Python.
"""
import json
import os

import sentencepiece as spm
import torch

from hf_llama_reference import HfLlama
from llava_rad_reference import OPENAI_MEAN, OPENAI_STD, Projector, VisionTower

TOWER_EPS = 1e-6


def _json(path):
    with open(path) as f:
        return json.load(f)


def _load(path):
    return torch.load(path, map_location='cpu')


def vicuna_state_dict(d):
    index = os.path.join(d, 'pytorch_model.bin.index.json')
    if os.path.exists(index):
        sd = {}
        for shard in sorted(set(_json(index)['weight_map'].values())):
            sd.update(_load(os.path.join(d, shard)))
        return sd
    single = os.path.join(d, 'pytorch_model.bin')
    if os.path.exists(single):
        return _load(single)
    raise FileNotFoundError(f'{d}: no pytorch_model.bin.index.json or pytorch_model.bin')


def merge_lora(base, adapter, scale):
    """fp16(float(W) + scale * B @ A) for every base weight the adapter targets"""
    out = dict(base)
    merged = 0
    for k in base:
        p = 'base_model.model.' + k[:-len('weight')]
        if p + 'lora_A.weight' in adapter:
            a, b = adapter[p + 'lora_A.weight'].float(), adapter[p + 'lora_B.weight'].float()
            out[k] = (base[k].float() + scale * (b @ a)).to(torch.float16)
            merged += 1
    return out, merged


def strip_to(sd, marker):
    """keys containing marker, with everything up to and including it removed"""
    return {k[k.index(marker) + len(marker):]: v for k, v in sd.items() if marker in k}


class Release:
    def __init__(self, vicuna_dir, rad_dir):
        cfg = _json(os.path.join(vicuna_dir, 'config.json'))
        rad_cfg = _json(os.path.join(rad_dir, 'config.json'))
        lora_cfg = _json(os.path.join(rad_dir, 'adapter_config.json'))
        base = {k: v.to(torch.float16) for k, v in vicuna_state_dict(vicuna_dir).items()}
        adapter = _load(os.path.join(rad_dir, 'adapter_model.bin'))
        scale = lora_cfg['lora_alpha'] / lora_cfg['r']
        weights, self.lora_merged = merge_lora(base, adapter, scale)
        self.llm = HfLlama(weights, cfg)
        self.sp = spm.SentencePieceProcessor(model_file=os.path.join(vicuna_dir, 'tokenizer.model'))

        clip_cfg = _json(os.path.join(rad_dir, rad_cfg.get('vision_tower_config', 'biomedclipcxr_518.json')))
        vcfg = clip_cfg['vision_cfg']
        ck = _load(os.path.join(rad_dir, rad_cfg.get('vision_tower_checkpoint', 'biomedclipcxr_518_checkpoint.pt')))
        trunk = strip_to(ck.get('state_dict', ck), 'visual.trunk.')
        dim = trunk['cls_token'].shape[-1]
        depth = len({k.split('.')[1] for k in trunk if k.startswith('blocks.')})
        self.image_size = vcfg.get('image_size', 518)
        tower = VisionTower(image_size=self.image_size, patch=trunk['patch_embed.proj.weight'].shape[-1], dim=dim,
                            depth=depth, heads=dim // vcfg.get('head_width', 64),
                            hidden=trunk['blocks.0.mlp.fc1.weight'].shape[0], eps=TOWER_EPS)
        tower.load_state_dict({k: v for k, v in trunk.items() if not k.startswith('head')}, strict=True)
        proj_sd = strip_to(_load(os.path.join(rad_dir, 'non_lora_trainables.bin')), 'mm_projector.')
        proj = Projector(dim, proj_sd['2.weight'].shape[0])
        proj.load_state_dict(proj_sd)
        self.tower, self.proj = tower.double().eval(), proj.double().eval()
        self.select_layer = rad_cfg.get('mm_vision_select_layer', -2)
        self.mean = tuple(vcfg.get('image_mean', OPENAI_MEAN))
        self.std = tuple(vcfg.get('image_std', OPENAI_STD))
