#!/usr/bin/env python3
"""Goldens of BiomedCLIP-CXR as a CLIP model (test/fixtures/clip/golden.json) on the tiny release
(scripts/make-tiny-release.py writes its checkpoint with a text tower, head and logit_scale, and biomedbert/).

The reference (scripts/reference/clip_reference.py) is open_clip 2.23's forward in float64 PyTorch from the
checkpoint's own (fp16) tensors. The text side uses open_clip's real pre-processing: ftfy.fix_text, html.unescape
twice, whitespace runs to one space, stripped; then Hugging Face `tokenizers`' BertWordPieceTokenizer(vocab.txt,
lowercase=True) (what BertTokenizerFast runs for PubMedBERT) with truncation to context_length (256) ids, [SEP]
kept; a batch is padded with id 0 and masked, as open_clip's HFTextEncoder does.

Records: per text its cleaned text, ids and embedding; per image (test/fixtures/findings/, open_clip's eval
transform in PIL / torchvision) its embedding; zero-shot probabilities for labels under the default template; and
`unpadded_max_abs`: the largest difference between a text embedded in a padded batch and alone (the engine
encodes each text unpadded).

    /usr/bin/python3 -m venv --system-site-packages /tmp/clipenv
    /tmp/clipenv/bin/pip install --no-index --find-links /opt/pypi/files tokenizers==0.22.2 ftfy==6.3.1
    /tmp/clipenv/bin/python scripts/make-clip-fixtures.py [--release DIR --out FILE]
"""
import argparse
import html
import json
import os
import re
import sys

import ftfy
import torch
from tokenizers import BertWordPieceTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..'))
sys.path.insert(0, os.path.join(HERE, 'reference'))

from clip_reference import image_embeddings, label_embedding, strip_prefix, text_embeddings, zero_shot  # noqa: E402
from llava_rad_reference import OPENAI_MEAN, OPENAI_STD  # noqa: E402
from make_findings_golden import preprocess  # noqa: E402

CONTEXT = 256
TEMPLATE = 'this is a photo of {}'
IMAGES = ['radiograph-grey-900x1100.png', 'radiograph-rgb-1100x900.jpg', 'square-rgb-600x600.png']
LABELS = ['pleural effusion', 'pneumothorax', 'cardiomegaly', 'no acute cardiopulmonary process']
TEXTS = [
    'No pleural effusion.',
    'Mild cardiomegaly; small left pleural effusions. No pneumothorax!',
    '  Bilateral   opacities,\tunchanged\ncompared with the prior study.  ',
    'Heart size is normal &amp;amp; lungs are clear',           # HTML entities, unescaped twice
    '\u201cStable\u201d atelectasis \u2014 right lung base',     # curly quotes, an em dash
    'Caf\u00e9 d\u00e9j\u00e0 vu: \u00c9DEMA, pneumonia 3.5 cm',  # accents stripped, upper case
    'Support devices in place \ufb01ndings',                     # the fi ligature (ftfy writes 'fi')
    'Lesion \uff11\uff12 mm',                                     # full-width digits
    'effusion ' * 300,                                           # more than 256 ids: cut, [SEP] kept
    '',
]

# cleaning and tokenization only (no embeddings): what ftfy / html / Python's \s do that the TypeScript reproduces
CLEAN_CASES = [
    '\x93Quoted\x94 by a C1 control \x96 read as Windows-1252',
    'ligatures: e\ufb00usion, \ufb02uid, \ufb03x',
    'FULL\uff37IDTH \uff21\uff22\uff23\u3000\uff11\uff10\uff05',
    '\u2018single\u2019 \u201bodd\u201b \u201cdouble\u201d \u201flow\u201e \u02bcmodifier',
    'line\r\nbreaks\rand\u2028separators\u2029\x85end',
    '\x1b[31mred\x1b[0m terminal escapes',
    'controls\x00\x07\x0b\x1c\x1f\x7f\u206a\ufeff\ufffa kept? \u200b\u200d zero width',
    'NFC: e\u0301 a\u030a \u212b',
    'a &lt; b &amp;amp; c',                      # '<' present: ftfy leaves entities, html.unescape twice
    'numeric &#233; &#x2014; &#150; &#0; &#xD800; &#1114112;',
    'nested &amp;amp;amp;lt; entities',
    'no semicolon &amp &lt &nbsp; &copy2 &eacute',
    'capitals P&EACUTE;REZ &AMP; &Eacute; &eAcute;',
    'python whitespace:\u2003em\u00a0nbsp\u1680ogham\u205fmath\u3000ideographic',
    '   \t\n  ',
    '[CLS] special [SEP] tokens [UNK] written [PAD]',
    'Sp\u00e9cial \u00c7h\u00e4r\u00e1ct\u00ebrs \u00df \u0130stanbul \u0131',
    'chinese \u80ba\u708e and emoji \U0001f600 \U0001f1ec\U0001f1e7',
    'x' * 120 + ' long word',
]


def clean(text):
    """open_clip 2.23 tokenizer.py: whitespace_clean(basic_clean(text))"""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r'\s+', ' ', text).strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--release', default=os.path.join(ROOT, 'test', 'fixtures', 'release'))
    ap.add_argument('--out', default=os.path.join(ROOT, 'test', 'fixtures', 'clip', 'golden.json'))
    args = ap.parse_args()
    rad, bert = os.path.join(args.release, 'llava-rad'), os.path.join(args.release, 'biomedbert')
    sd = strip_prefix(torch.load(os.path.join(rad, 'biomedclipcxr_518_checkpoint.pt'), map_location='cpu'))
    with open(os.path.join(rad, 'biomedclipcxr_518.json')) as f:
        clip_cfg = json.load(f)
    with open(os.path.join(bert, 'config.json')) as f:
        text_cfg = json.load(f)
    tok = BertWordPieceTokenizer(os.path.join(bert, 'vocab.txt'), lowercase=True)
    tok.enable_truncation(CONTEXT)
    text_heads = text_cfg['num_attention_heads']
    vcfg = clip_cfg['vision_cfg']
    image_heads = sd['visual.trunk.cls_token'].shape[2] // vcfg.get('head_width', 64)

    def embed_texts(texts):
        cleaned = [clean(t) for t in texts]
        ids = [tok.encode(c).ids for c in cleaned]
        with torch.no_grad():
            return cleaned, ids, text_embeddings(sd, ids, text_heads)

    cleaned, ids, emb = embed_texts(TEXTS)
    with torch.no_grad():
        alone = torch.cat([text_embeddings(sd, [x], text_heads) for x in ids])
    unpadded = float((alone - emb).abs().max())
    texts = [{'text': t, 'cleaned': c, 'ids': i, 'embedding': [float(x) for x in e]}
             for t, c, i, e in zip(TEXTS, cleaned, ids, emb)]
    cleaning = [{'text': t, 'cleaned': clean(t), 'ids': tok.encode(clean(t)).ids} for t in CLEAN_CASES]

    size = vcfg['image_size']
    px = torch.stack([preprocess(os.path.join(ROOT, 'test', 'fixtures', 'findings', n), size, OPENAI_MEAN, OPENAI_STD) for n in IMAGES])
    img = image_embeddings(sd, px, image_heads)
    images = [{'image': n, 'embedding': [float(x) for x in e]} for n, e in zip(IMAGES, img)]

    prompts = [TEMPLATE.format(label) for label in LABELS]
    _, _, label_emb = embed_texts(prompts)
    labels = torch.stack([label_embedding(label_emb[i:i + 1]) for i in range(len(LABELS))])
    probs = zero_shot(img, labels, sd['logit_scale'])
    out = {
        'about': 'open_clip 2.23 forward of BiomedCLIP-CXR in float64 PyTorch on the tiny release '
                 '(scripts/make-clip-fixtures.py, scripts/reference/clip_reference.py); ftfy and HF tokenizers for the text',
        'torch': torch.__version__, 'ftfy': ftfy.__version__, 'context_length': CONTEXT,
        'embed_dim': int(img.shape[1]), 'logit_scale': float(sd['logit_scale']),
        'unpadded_max_abs': unpadded,
        'texts': texts, 'images': images, 'cleaning': cleaning,
        'classify': {'template': TEMPLATE, 'labels': LABELS, 'prompts': prompts,
                     'probabilities': [[float(p) for p in row] for row in probs]},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    # the CLIP tensors alone, as a bare state dict: no 'state_dict' wrapper, no 'module.' prefix, no optimizer
    # (the converter must give the same GGUF from it as from the official layout)
    bare = {k: v for k, v in sd.items() if k.startswith(('text.', 'visual.trunk.norm.', 'visual.head.')) or k == 'logit_scale'}
    torch.save(bare, os.path.join(os.path.dirname(args.out), 'bare-checkpoint.pt'))
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'wrote {args.out}: {len(texts)} texts, {len(images)} images; padded vs alone max |diff| {unpadded:.3g}')
    print('probabilities', [[round(float(p), 4) for p in row] for row in probs])


if __name__ == '__main__':
    main()
