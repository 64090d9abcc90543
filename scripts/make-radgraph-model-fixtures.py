#!/usr/bin/env python3
"""Makes the tiny RadGraph model archive and its float64 goldens (test/fixtures/radgraph/model/).

Run with Debian's torch: /usr/bin/python3 scripts/make-radgraph-model-fixtures.py
(RADGRAPH_FIXTURE_SEED picks another seed; the script refuses a seed whose decisions are too close to call.
The output is byte-identical on every run.)

1. radgraph-tiny.tar.gz: an allennlp model archive in the layout of StanfordAIMI/RRG_scorers radgraph.tar.gz
   as the radgraph package reads it (radgraph/radgraph.py: config.json, weights.th and vocabulary/ at the top
   of the tarball): config.json (a DyGIE config, tiny sizes), weights.th (torch.save of the DyGIE state
   dict: the BERT under _embedder.token_embedder_bert._matched_embedder.transformer_model, the span width
   embedding, the NER scorer, the relation pruner / feedforward / scorer, and unused coref tensors),
   vocabulary/radgraph__ner_labels.txt ("" first: the null label), radgraph__relation_labels.txt,
   non_padded_namespaces.txt. Weights random (seeded), float32. vocab.txt beside it: the WordPiece
   vocabulary the converter is given with --vocab (the real archive names a Hub tokenizer instead).
2. goldens.json: for each report text, a float64 implementation of what radgraph's RadGraph(...)(text)
   computes, written from the radgraph / DyGIE / allennlp code (see lib/radgraph/radgraph.ts for the facts
   and their files): words, WordPiece segments, pooled word vectors, NER scores, mention scores, pruned
   spans, relation scores, and the final annotation dict. Decision margins (argmax gaps, top-k gap) are
   recorded so that a float32 engine cannot flip a decision.
"""

import gzip
import io
import json
import math
import os
import re
import tarfile
import unicodedata
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'radgraph', 'model')
SEED = int(os.environ.get('RADGRAPH_FIXTURE_SEED', '1616'))

# tiny sizes in the real structure
HIDDEN, LAYERS, HEADS, FF, POSITIONS = 32, 2, 4, 64, 32
MAX_LENGTH = 16          # allennlp's max_length: longer inputs are folded into segments of 16 ids
MAX_SPAN_WIDTH = 4
FEATURE_SIZE = 8
FF_LAYERS, FF_HIDDEN = 2, 16
SPANS_PER_WORD = 0.5
NER_LABELS = ['', 'ANAT-DP', 'OBS-DP', 'OBS-U', 'OBS-DA']
RELATION_LABELS = ['located_at', 'modify', 'suggestive_of']
DATASET = 'radgraph'

WORDS = ('no there is pleural effusion pneumothorax lung lungs left right lower upper lobe heart size normal '
         'mild mildly enlarged cardiac silhouette opacity consolidation atelectasis bibasilar the of and a with '
         'stable clear edema pulmonary vascular likely small moderate unchanged tube in at seen focal or than '
         'greater').split()
VOCAB = (['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + list('.,:/()!?-;') + WORDS
         + [chr(c) for c in range(ord('a'), ord('z') + 1)] + ['##' + chr(c) for c in range(ord('a'), ord('z') + 1)]
         + ['##s', '##ed', '##al', '##ly'])
VOCAB = list(dict.fromkeys(VOCAB))  # one id a piece ("a" is a word and a letter)

TEXTS = [
    '',
    'No pleural effusion or pneumothorax.',
    'Mild cardiomegaly. Bibasilar opacities, likely atelectasis (left greater than right).',
    'Heart size is normal/stable: lungs clear!',
    'Small 5 cm nodule in the RUL; ETT 3.2cm above carina?',
    'Élevated LEFT hemidiaphragm,  unchanged\tsince\nprior.',
    'effusion',
    'Lungs: clear. Heart: normal. Mediastinum: unremarkable. No acute cardiopulmonary process. '
    'Stable moderate left pleural effusion with adjacent atelectasis, unchanged from prior study. '
    'Pulmonary vascular congestion and mild edema.',
    'a , b . c / d ( e ) f ! g ? h : i',
    '/. /? ...',
]

# (reference, prediction) pairs scored through evaluate(): shared, partly shared and disjoint findings, case
# variants, an empty prediction
EVAL_PAIRS = [
    ('No pleural effusion or pneumothorax.', 'No pleural effusion or pneumothorax.'),
    ('Mild cardiomegaly. Bibasilar opacities, likely atelectasis (left greater than right).',
     'Bibasilar opacities, likely atelectasis. Mild cardiomegaly.'),
    ('Heart size is normal/stable: lungs clear!', 'HEART SIZE IS NORMAL. Lungs clear.'),
    ('Stable moderate left pleural effusion with adjacent atelectasis.', ''),
    ('Pulmonary vascular congestion and mild edema.', 'Small left pleural effusion, unchanged.'),
    ('Lungs: clear. Heart: normal. Mediastinum: unremarkable.', 'Lungs clear. Heart normal.'),
]


def reward(hyp, ref, level, lowercase):
    """the per-report (F1, precision, recall) of the official F1RadGraphv2 compute_reward, from its semantics"""
    if hyp is None or ref is None or not hyp['entities'] or not ref['entities']:
        return (0.0, 0.0, 0.0)

    def tuples(ann):
        out = set()
        low = (lambda t: t.lower()) if lowercase else (lambda t: t)
        for e in ann['entities'].values():
            if level == 'simple' or not e['relations']:
                out.add((low(e['tokens']), e['label']))
            elif level == 'partial':
                out.add((low(e['tokens']), e['label'], True))
            else:
                for rel, target in e['relations']:
                    out.add((e['tokens'].lower(), e['label'], rel, ann['entities'][target]['tokens'].lower()))
        return out
    h, r = tuples(hyp), tuples(ref)
    p = len(h & r) / len(h) if h else 0.0
    q = len(r & h) / len(r) if r else 0.0
    f = 2 * p * q / (p + q) if p + q > 0 else 0.0
    return (f, p, q)


# ---- WordPiece, as transformers' BertTokenizer (uncased) does per word --------------------------------------

def is_control(ch):
    if ch in '\t\n\r':
        return False
    return unicodedata.category(ch) in ('Cc', 'Cf')


def is_whitespace(ch):
    return ch in ' \t\n\r' or unicodedata.category(ch) == 'Zs'


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith('P')


def basic_tokens(text):
    cleaned = ''.join(' ' if is_whitespace(c) else c for c in text if ord(c) not in (0, 0xFFFD) and not is_control(c))
    out = []
    for tok in cleaned.split():
        tok = ''.join(c for c in unicodedata.normalize('NFD', tok.lower()) if unicodedata.category(c) != 'Mn')
        cur = ''
        for c in tok:
            if is_punct(c):
                if cur:
                    out.append(cur)
                out.append(c)
                cur = ''
            else:
                cur += c
        if cur:
            out.append(cur)
    return out


def wordpiece_ids(word_text, ids):
    out = []
    for tok in basic_tokens(word_text):
        if len(tok) > 100:
            out.append(ids['[UNK]'])
            continue
        pieces, start = [], 0
        while start < len(tok):
            end, found = len(tok), None
            while end > start:
                piece = ('##' if start > 0 else '') + tok[start:end]
                if piece in ids:
                    found = ids[piece]
                    break
                end -= 1
            if found is None:
                pieces = [ids['[UNK]']]
                break
            pieces.append(found)
            start = end
        out.extend(pieces)
    return out


# ---- the model ------------------------------------------------------------------------------------------

class Bert(torch.nn.Module):
    """transformers' BertModel (eval), keys as its state dict names them"""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(len(VOCAB), HIDDEN)
        self.embeddings.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.embeddings.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.embeddings.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.embeddings.register_buffer('position_ids', torch.arange(POSITIONS).unsqueeze(0))
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList()
        for _ in range(LAYERS):
            layer = nn.Module()
            layer.attention = nn.Module()
            layer.attention.self = nn.Module()
            layer.attention.self.query = nn.Linear(HIDDEN, HIDDEN)
            layer.attention.self.key = nn.Linear(HIDDEN, HIDDEN)
            layer.attention.self.value = nn.Linear(HIDDEN, HIDDEN)
            layer.attention.output = nn.Module()
            layer.attention.output.dense = nn.Linear(HIDDEN, HIDDEN)
            layer.attention.output.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
            layer.intermediate = nn.Module()
            layer.intermediate.dense = nn.Linear(HIDDEN, FF)
            layer.output = nn.Module()
            layer.output.dense = nn.Linear(FF, HIDDEN)
            layer.output.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
            self.encoder.layer.append(layer)
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, ids):  # ids: (T,) one segment -> (T, HIDDEN)
        e = self.embeddings
        T = ids.shape[0]
        x = e.word_embeddings(ids) + e.position_embeddings(torch.arange(T)) + e.token_type_embeddings(torch.zeros(T, dtype=torch.long))
        x = e.LayerNorm(x)
        hd = HIDDEN // HEADS
        for layer in self.encoder.layer:
            s = layer.attention.self
            q = s.query(x).view(T, HEADS, hd).transpose(0, 1)
            k = s.key(x).view(T, HEADS, hd).transpose(0, 1)
            v = s.value(x).view(T, HEADS, hd).transpose(0, 1)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), dim=-1) @ v
            a = a.transpose(0, 1).reshape(T, HIDDEN)
            x = layer.attention.output.LayerNorm(x + layer.attention.output.dense(a))
            f = layer.output.dense(torch.nn.functional.gelu(layer.intermediate.dense(x)))
            x = layer.output.LayerNorm(x + f)
        return x


class FeedForward(torch.nn.Module):
    """allennlp FeedForward with ReLU (DyGIE's make_feedforward); dropout is the identity at inference"""

    def __init__(self, d_in):
        super().__init__()
        dims = [d_in] + [FF_HIDDEN] * FF_LAYERS
        self._linear_layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for lin in self._linear_layers:
            x = torch.relu(lin(x))
        return x


class TimeDistributed(torch.nn.Module):
    def __init__(self, module):
        super().__init__()
        self._module = module

    def forward(self, x):
        return self._module(x)


class DyGIE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        span_dim = 2 * HIDDEN + FEATURE_SIZE
        self._embedder = nn.Module()
        self._embedder.token_embedder_bert = nn.Module()
        self._embedder.token_embedder_bert._matched_embedder = nn.Module()
        self._embedder.token_embedder_bert._matched_embedder.transformer_model = Bert()
        self._endpoint_span_extractor = nn.Module()
        self._endpoint_span_extractor._span_width_embedding = nn.Embedding(MAX_SPAN_WIDTH, FEATURE_SIZE)
        self._ner = nn.Module()
        self._ner._ner_scorers = nn.ModuleDict({f'{DATASET}__ner_labels': nn.Sequential(
            TimeDistributed(FeedForward(span_dim)), TimeDistributed(nn.Linear(FF_HIDDEN, len(NER_LABELS) - 1)))})
        self._relation = nn.Module()
        pruner = nn.Module()
        pruner._scorer = nn.Sequential(TimeDistributed(FeedForward(span_dim)), TimeDistributed(nn.Linear(FF_HIDDEN, 1)))
        self._relation._mention_pruners = nn.ModuleDict({f'{DATASET}__relation_labels': pruner})
        self._relation._relation_feedforwards = nn.ModuleDict({f'{DATASET}__relation_labels': FeedForward(3 * span_dim)})
        self._relation._relation_scorers = nn.ModuleDict({f'{DATASET}__relation_labels': nn.Linear(FF_HIDDEN, len(RELATION_LABELS))})
        # the coref module exists in DyGIE whatever its loss weight; it is not run (coref weight 0, coref_prop 0)
        self._coref = nn.Module()
        self._coref._distance_embedding = nn.Embedding(10, FEATURE_SIZE)


def randomize(model, gen):
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith('LayerNorm.weight'):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
    with torch.no_grad():
        # enough entities and relations to decode: the NER and relation classes a little favoured
        model._ner._ner_scorers[f'{DATASET}__ner_labels'][1]._module.bias.add_(-0.9)
        model._relation._relation_scorers[f'{DATASET}__relation_labels'].bias.add_(-0.6)


# ---- the reference forward (float64) ------------------------------------------------------------------

def radgraph_words(text):
    """radgraph/utils.py preprocess_reports for model_type "radgraph", then DyGIEReader._normalize_word"""
    text = text if text else 'None'  # RadGraph.forward: empty reports become "None"
    words = re.sub('(?<! )(?=[/,-,:,.,!?()])|(?<=[/,-,:,.,!?()])(?! )', ' ', text).split()
    return [w[1:] if w in ('/.', '/?') else w for w in words]


def forward(m, text, ids):
    bert = m._embedder.token_embedder_bert._matched_embedder.transformer_model
    words = radgraph_words(text)
    cls_id, sep_id = ids['[CLS]'], ids['[SEP]']
    pieces, offsets = [], []
    word_pieces = []
    for w in words:
        wp = wordpiece_ids(w, ids)
        word_pieces.append(wp)
        offsets.append((len(pieces), len(pieces) + len(wp) - 1) if wp else None)
        pieces.extend(wp)
    # allennlp's max_length folding: segments of MAX_LENGTH - 2 pieces, each [CLS] ... [SEP], encoded alone
    eff = MAX_LENGTH - 2
    segments = [[cls_id] + pieces[i:i + eff] + [sep_id] for i in range(0, len(pieces), eff)]
    states = []
    for seg in segments:
        h = bert(torch.tensor(seg))
        states.append(h[1:-1])
    states = torch.cat(states, 0) if states else torch.zeros(0, HIDDEN, dtype=torch.float64)
    W = len(words)
    wv = torch.zeros(W, HIDDEN, dtype=torch.float64)
    for j, off in enumerate(offsets):
        if off is not None:
            wv[j] = states[off[0]:off[1] + 1].mean(0)
    spans = [(s, e) for s in range(W) for e in range(s, min(s + MAX_SPAN_WIDTH, W))]
    S = len(spans)
    st = torch.tensor([s for s, _ in spans])
    en = torch.tensor([e for _, e in spans])
    span_emb = torch.cat([wv[st], wv[en], m._endpoint_span_extractor._span_width_embedding(en - st)], -1)
    ner_scores = m._ner._ner_scorers[f'{DATASET}__ner_labels'](span_emb)              # (S, L-1)
    full = torch.cat([torch.zeros(S, 1, dtype=torch.float64), ner_scores], -1)
    ner_labels = full.argmax(-1)
    mention = m._relation._mention_pruners[f'{DATASET}__relation_labels']._scorer(span_emb).squeeze(-1)  # (S,)
    K = max(math.ceil(W * SPANS_PER_WORD), 1)
    order = sorted(range(S), key=lambda i: -mention[i].item())
    top = sorted(order[:K])
    top_emb = span_emb[top]
    e1 = top_emb.unsqueeze(1).expand(K, K, -1)
    e2 = top_emb.unsqueeze(0).expand(K, K, -1)
    pair = torch.cat([e1, e2, e1 * e2], -1)
    rel = m._relation._relation_scorers[f'{DATASET}__relation_labels'](
        m._relation._relation_feedforwards[f'{DATASET}__relation_labels'](pair))
    rel = rel + mention[top].view(K, 1, 1) + mention[top].view(1, K, 1)          # (K, K, R)
    rel_full = torch.cat([torch.zeros(K, K, 1, dtype=torch.float64), rel], -1)
    rel_labels = rel_full.argmax(-1) - 1

    ner = [(spans[i][0], spans[i][1], NER_LABELS[ner_labels[i].item()]) for i in range(S) if ner_labels[i].item() != 0]
    relations = [(spans[top[i]][0], spans[top[i]][1], spans[top[j]][0], spans[top[j]][1], RELATION_LABELS[rel_labels[i, j].item()])
                 for i in range(K) for j in range(K) if rel_labels[i, j].item() >= 0]
    # decision margins: NER / relation argmax gaps, the top-k boundary
    def gap(x):
        v = x.sort(-1, descending=True).values
        return (v[..., 0] - v[..., 1]).min().item()
    k_gap = (mention[order[K - 1]] - mention[order[K]]).item() if K < S else float('inf')
    margin = min(gap(full), gap(rel_full), k_gap)

    entities = OrderedDict()
    ner_spans = [[s, e] for s, e, _ in ner]
    for idx, (s, e, label) in enumerate(ner):
        rels = []
        for rl in relations:
            if [rl[0], rl[1]] == [s, e]:
                if [rl[2], rl[3]] in ner_spans:
                    rels.append([rl[4], str(ner_spans.index([rl[2], rl[3]]) + 1)])
        entities[str(idx + 1)] = {'tokens': ' '.join(words[s:e + 1]), 'label': label, 'start_ix': s, 'end_ix': e, 'relations': rels}
    annotation = {'text': ' '.join(words), 'entities': entities, 'data_source': None, 'data_split': 'inference'}
    return {
        'text': text, 'words': words, 'wordPieces': word_pieces, 'segments': segments,
        'wordVectors': rounded(wv), 'nerScores': rounded(ner_scores), 'mentionScores': rounded(mention),
        'top': top, 'relationScores': rounded(rel), 'margin': margin, 'annotation': annotation,
    }


def rounded(t):
    return [float('%.9g' % v) for v in t.detach().flatten().tolist()]


def main():
    gen = torch.Generator().manual_seed(SEED)
    model = DyGIE()
    randomize(model, gen)
    state = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    config = {
        'dataset_reader': {'type': 'dygie', 'max_span_width': MAX_SPAN_WIDTH, 'token_indexers': {'bert': {
            'type': 'pretrained_transformer_mismatched', 'model_name': 'tiny/bert_uncased_random', 'max_length': MAX_LENGTH}}},
        'model': {
            'type': 'dygie',
            'embedder': {'token_embedders': {'bert': {'type': 'pretrained_transformer_mismatched',
                                                      'model_name': 'tiny/bert_uncased_random', 'max_length': MAX_LENGTH}}},
            'feature_size': FEATURE_SIZE, 'max_span_width': MAX_SPAN_WIDTH, 'target_task': 'relation',
            'feedforward_params': {'num_layers': FF_LAYERS, 'hidden_dims': FF_HIDDEN, 'dropout': 0.4},
            'loss_weights': {'ner': 1.0, 'relation': 1.0, 'coref': 0.0, 'events': 0.0},
            'modules': {'coref': {'coref_prop': 0, 'max_antecedents': 100, 'spans_per_word': 0.3},
                        'ner': {}, 'relation': {'spans_per_word': SPANS_PER_WORD}, 'events': {}},
            'initializer': {'regexes': []}, 'module_initializer': {'regexes': []},
        },
        'trainer': {'num_epochs': 50},
    }
    os.makedirs(OUT, exist_ok=True)
    weights = io.BytesIO()
    torch.save(state, weights)
    files = [
        ('config.json', json.dumps(config, indent=2).encode()),
        ('weights.th', weights.getvalue()),
        ('vocabulary/radgraph__ner_labels.txt', ('\n'.join(NER_LABELS) + '\n').encode()),
        ('vocabulary/radgraph__relation_labels.txt', ('\n'.join(RELATION_LABELS) + '\n').encode()),
        ('vocabulary/non_padded_namespaces.txt', b'*tags\n*labels\n'),
    ]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.GNU_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    with open(os.path.join(OUT, 'radgraph-tiny.tar.gz'), 'wb') as f:
        f.write(gzip.compress(raw.getvalue(), mtime=0))  # the same bytes on every run
    with open(os.path.join(OUT, 'vocab.txt'), 'w') as f:
        f.write('\n'.join(VOCAB) + '\n')

    double = DyGIE().double()
    double.load_state_dict(OrderedDict((k, v.double() if v.is_floating_point() else v) for k, v in state.items()))
    double.eval()
    ids = {p: i for i, p in enumerate(VOCAB)}
    with torch.no_grad():
        cases = [forward(double, t, ids) for t in TEXTS]
        annotated = {}
        for ref, pred in EVAL_PAIRS:
            for t in (ref, pred):
                if t and t not in annotated:
                    annotated[t] = forward(double, t, ids)
    eval_golden = {'pairs': [{'reference': a, 'prediction': b} for a, b in EVAL_PAIRS], 'levels': {}}
    for level, lowercase in (('simple', False), ('partial', False), ('complete', False), ('partial', True)):
        rows = [reward(annotated[b]['annotation'] if b else None, annotated[a]['annotation'] if a else None, level, lowercase)
                for a, b in EVAL_PAIRS]
        n = len(rows)
        eval_golden['levels'][level + (' lowercase' if lowercase else '')] = {
            'rewards': [list(r) for r in rows],
            'mean': [sum(r[k] for r in rows) / n for k in range(3)],
        }
    eval_golden['annotations'] = [[annotated[a]['annotation'] if a else None, annotated[b]['annotation'] if b else None] for a, b in EVAL_PAIRS]
    for c in cases + list(annotated.values()):
        assert c['margin'] > 2e-4, f'a decision is too close to call in float32: {c["text"]!r} margin {c["margin"]}'
    golden = {
        'about': 'float64 reference of radgraph RadGraph(...) on radgraph-tiny.tar.gz (scripts/make-radgraph-model-fixtures.py)',
        'torch': torch.__version__, 'seed': SEED,
        'hparams': {'hidden': HIDDEN, 'maxLength': MAX_LENGTH, 'maxSpanWidth': MAX_SPAN_WIDTH, 'featureSize': FEATURE_SIZE,
                    'spansPerWord': SPANS_PER_WORD, 'nerLabels': NER_LABELS, 'relationLabels': RELATION_LABELS},
        'cases': cases,
        'eval': eval_golden,
    }
    with open(os.path.join(OUT, 'goldens.json'), 'w') as f:
        json.dump(golden, f, separators=(',', ':'))
        f.write('\n')
    for c in cases:
        print(len(c['words']), 'words', len(c['segments']), 'segments', len(c['annotation']['entities']), 'entities',
              sum(len(e['relations']) for e in c['annotation']['entities'].values()), 'relations', 'margin %.3g' % c['margin'])


if __name__ == '__main__':
    main()
