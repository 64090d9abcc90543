#!/usr/bin/env python3
"""Makes the goldens of the RadGraph reward (test/fixtures/radgraph/reward-golden.json).

No RadGraph model runs here: the annotations are synthetic, in the shape the radgraph package's
RadGraph(...)(reports) returns per report (radgraph/utils.py postprocess_reports / get_entity):

    {"text": "...", "entities": {"1": {"tokens": "left lung", "label": "ANAT-DP", "start_ix": 3,
     "end_ix": 4, "relations": [["modify", "2"]]}, ...}, "data_source": null, "data_split": "inference"}

and a report whose text is the empty string is recorded as null (F1RadGraph.forward never annotates it).
The pairs are seeded and varied: shared and perturbed entities, case variants, duplicate (tokens, label)
entities, entities with several relations, reports with no entities, empty reports.

The reward code is NOT part of this script: it is imported from the files given on the command line, so
that the goldens come from the official code itself:

  --llavarad PATH  microsoft/LLaVA-Rad llava/eval/rrg_eval/rrg_eval/f1radgraph.py (F1RadGraphv2.forward,
                   compute_reward and bootstrap_confidence_interval, the official evaluation's copy)
  --upstream PATH  Stanford-AIMI/radgraph radgraph/rewards.py after the 2026 case fix (b5ab8d0), for the
                   lowercase variant (its compute_reward returns the F1 only)

e.g. (the mirrors are git directories without a work tree; files go to /tmp, never into this repository):

    git --git-dir=<LLaVA-Rad>/.git show HEAD:llava/eval/rrg_eval/rrg_eval/f1radgraph.py > /tmp/rgsrc/llavarad/f1radgraph.py
    git --git-dir=<radgraph>/.git show HEAD:radgraph/rewards.py > /tmp/rgsrc/upstream/rewards.py
    /usr/bin/python3 -m venv /tmp/rgenv
    /tmp/rgenv/bin/pip install --no-index --find-links /opt/pypi/files "numpy==1.26.4" "scipy==1.11.1"
    /tmp/rgenv/bin/python scripts/make-radgraph-fixtures.py --llavarad /tmp/rgsrc/llavarad/f1radgraph.py \\
        --upstream /tmp/rgsrc/upstream/rewards.py --llavarad-commit <sha> --upstream-commit <sha>

f1radgraph.py imports radgraph (for F1RadGraph and CACHE_DIR) and huggingface_hub at module level; both are
replaced here by stubs (sys.modules) so that only its own code runs. F1RadGraphv2 is built without
__init__ (which would download and load the model) and given a stand-in `radgraph` that returns the
synthetic annotation of each report text, so its real forward() (empty-report handling, reward list,
np.mean(axis=0)) produces the values.
"""

import argparse
import copy
import importlib.util
import json
import os
import platform
import random
import sys
import types

import numpy as np
import scipy

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'radgraph')

N_PAIRS = 320
SEED = 20260516
LABELS = ['ANAT-DP', 'OBS-DP', 'OBS-U', 'OBS-DA']
RELATIONS = ['located_at', 'suggestive_of', 'modify']
WORDS = [
    'pleural', 'effusion', 'heart', 'size', 'normal', 'lung', 'left', 'right', 'lower', 'lobe', 'opacity',
    'atelectasis', 'edema', 'pulmonary', 'cardiomegaly', 'pneumothorax', 'consolidation', 'mild', 'basilar',
    'hemidiaphragm', 'costophrenic', 'angle', 'mediastinal', 'contours', 'tube', 'catheter', 'svc', 'stable',
    'increased', 'small', 'bilateral', 'hilar', 'vascular', 'congestion', 'pneumonia', 'nodule', 'mm', '3',
    # case-sensitive matters: these differ only by case from others, or carry non-ASCII case mappings
    'Pleural', 'EFFUSION', 'Heart', 'SVC', 'Lung', 'Ödem', 'ödem', 'ΟΔΟΣ', 'οδος', 'İ', 'straße', 'STRASSE',
]


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_llavarad(path):
    # stubs for f1radgraph.py's module-level imports; none of them is used by the code run here
    class F1RadGraph:  # what F1RadGraphv2 subclasses; only __call__ -> forward is needed
        def __call__(self, *args, **kwargs):
            return self.forward(*args, **kwargs)

    rg = types.ModuleType('radgraph')
    rg.F1RadGraph = F1RadGraph
    rg_rg = types.ModuleType('radgraph.radgraph')
    rg_rg.CACHE_DIR = '/nonexistent'
    rg.radgraph = rg_rg
    hf = types.ModuleType('huggingface_hub')
    hf.hf_hub_download = lambda *a, **k: (_ for _ in ()).throw(RuntimeError('no downloads here'))
    sys.modules.update({'radgraph': rg, 'radgraph.radgraph': rg_rg, 'huggingface_hub': hf})
    return load_module('llavarad_f1radgraph', path)


def random_phrase(rng):
    return ' '.join(rng.choice(WORDS) for _ in range(rng.choice([1, 1, 1, 2, 2, 3])))


def random_annotation(rng, n_entities):
    """entities "1".."n" (radgraph numbers them from 1), each with 0..3 relations to other entities"""
    entities = {}
    pos = 0
    for i in range(n_entities):
        tokens = random_phrase(rng)
        width = len(tokens.split(' '))
        entities[str(i + 1)] = {'tokens': tokens, 'label': rng.choice(LABELS), 'start_ix': pos, 'end_ix': pos + width - 1, 'relations': []}
        pos += width + rng.randint(0, 2)
    for key, ent in entities.items():
        if n_entities > 1 and rng.random() < 0.45:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                target = rng.choice([k for k in entities if k != key] or [key])
                ent['relations'].append([rng.choice(RELATIONS), target])
            if rng.random() < 0.08:  # an exact duplicate relation (radgraph can emit one per predicted pair)
                ent['relations'].append(list(ent['relations'][0]))
    return finish(entities)


def finish(entities):
    return {'text': ' '.join(e['tokens'] for e in entities.values()), 'entities': entities, 'data_source': None, 'data_split': 'inference'}


def flip_case(rng, s):
    choice = rng.random()
    if choice < 0.4:
        return s.upper()
    if choice < 0.7:
        return s[:1].upper() + s[1:]
    return s.lower()


def perturb(rng, ref):
    """a hypothesis near the reference: entities dropped, added, relabelled, recased, relations changed,
    entity keys renumbered (radgraph's numbering follows the hypothesis's own spans)"""
    src = copy.deepcopy(ref['entities'])
    keys = list(src.keys())
    kept = [k for k in keys if rng.random() > 0.2]
    rng.shuffle(kept)
    extra = rng.randint(0, 3)
    new_keys = {}
    out = {}
    for i, k in enumerate(kept):
        new_keys[k] = str(i + 1)
    for k in kept:
        e = copy.deepcopy(src[k])
        r = rng.random()
        if r < 0.1:
            e['label'] = rng.choice(LABELS)
        elif r < 0.2:
            e['tokens'] = flip_case(rng, e['tokens'])
        elif r < 0.25:
            e['tokens'] = random_phrase(rng)
        rels = []
        for lab, tgt in e['relations']:
            if tgt not in new_keys or rng.random() < 0.15:
                continue
            rels.append([rng.choice(RELATIONS) if rng.random() < 0.1 else lab, new_keys[tgt]])
        e['relations'] = rels
        out[new_keys[k]] = e
    n = len(out)
    for j in range(extra):
        key = str(n + j + 1)
        tokens = random_phrase(rng)
        out[key] = {'tokens': tokens, 'label': rng.choice(LABELS), 'start_ix': 100 + 5 * j, 'end_ix': 100 + 5 * j + len(tokens.split(' ')) - 1, 'relations': []}
    for key, e in out.items():
        if len(out) > 1 and rng.random() < 0.15:
            e['relations'].append([rng.choice(RELATIONS), rng.choice([k for k in out if k != key])])
    if out and rng.random() < 0.1:  # a duplicate (tokens, label) entity under another key
        src_key = rng.choice(list(out))
        dup = copy.deepcopy(out[src_key])
        dup['relations'] = [] if rng.random() < 0.5 else [[rng.choice(RELATIONS), src_key]]
        out[str(len(out) + 1)] = dup
    return finish(out)


def make_pairs(rng):
    pairs = []
    for i in range(N_PAIRS):
        kind = rng.random()
        if i < 6:
            # fixed corner cases first: both empty texts, one empty text, no entities on one side / both
            ref = [None, random_annotation(rng, 3), None, finish({}), random_annotation(rng, 2), finish({})][i]
            hyp = [None, None, random_annotation(rng, 3), random_annotation(rng, 2), finish({}), finish({})][i]
        elif kind < 0.03:
            ref, hyp = random_annotation(rng, rng.randint(1, 5)), None
        elif kind < 0.06:
            ref, hyp = finish({}), random_annotation(rng, rng.randint(1, 4))
        elif kind < 0.09:
            ref, hyp = random_annotation(rng, rng.randint(1, 4)), finish({})
        elif kind < 0.12:
            ref = random_annotation(rng, rng.randint(1, 6))
            hyp = copy.deepcopy(ref)  # identical
        elif kind < 0.2:
            ref, hyp = random_annotation(rng, rng.randint(1, 6)), random_annotation(rng, rng.randint(1, 6))
        else:
            ref = random_annotation(rng, rng.randint(1, 9))
            hyp = perturb(rng, ref)
        pairs.append({'ref': ref, 'hyp': hyp})
    return pairs


def lowercased(ann):
    if ann is None:
        return None
    ann = copy.deepcopy(ann)
    for e in ann['entities'].values():
        e['tokens'] = e['tokens'].lower()
    return ann


def run_forward(mod, level, refs, hyps):
    """the official F1RadGraphv2.forward on the annotations (each text maps to its annotation)"""
    table = {}
    ref_texts, hyp_texts = [], []
    for i, (r, h) in enumerate(zip(refs, hyps)):
        for ann, texts, tag in ((r, ref_texts, 'ref'), (h, hyp_texts, 'hyp')):
            if ann is None:
                texts.append('')
            else:
                key = f'{tag}-{i}'
                table[key] = ann
                texts.append(key)
    m = mod.F1RadGraphv2.__new__(mod.F1RadGraphv2)
    m.reward_level = level
    m.radgraph = lambda reports: {str(j): table[t] for j, t in enumerate(reports)}
    mean, rewards, _, _ = m(refs=ref_texts, hyps=hyp_texts)
    return mean, [list(map(float, r)) for r in rewards]


def level_golden(mod, level, refs, hyps):
    mean, rewards = run_forward(mod, level, refs, hyps)
    bs = mod.bootstrap_confidence_interval(rewards, n_resamples=500)
    return {
        'rewards': rewards,
        'mean': {'f1': float(mean['f1-radgraph']), 'precision': float(mean['precision-radgraph']), 'recall': float(mean['recall-radgraph'])},
        'bootstrap': {
            'median': float(np.median(bs.bootstrap_distribution)),
            'ci_l': float(bs.confidence_interval.low),
            'ci_h': float(bs.confidence_interval.high),
            'standard_error': float(bs.standard_error),
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--llavarad', required=True)
    ap.add_argument('--upstream', required=True)
    ap.add_argument('--llavarad-commit', default='unknown')
    ap.add_argument('--upstream-commit', default='unknown')
    args = ap.parse_args()

    mod = load_llavarad(args.llavarad)
    upstream = load_module('upstream_rewards', args.upstream)
    rng = random.Random(SEED)
    pairs = make_pairs(rng)
    refs = [p['ref'] for p in pairs]
    hyps = [p['hyp'] for p in pairs]

    levels = {level: level_golden(mod, level, refs, hyps) for level in ('simple', 'partial', 'complete')}

    # lowercase (upstream since b5ab8d0): every tuple's tokens lowercased. Its compute_reward returns the F1
    # only; precision / recall come from the official copy on lowercased tokens, which is the same tuple
    # sets (the copy already lowercases the relation tuples of "complete"); the F1s are checked to agree.
    lrefs = [lowercased(a) for a in refs]
    lhyps = [lowercased(a) for a in hyps]
    lower = {}
    for level in ('simple', 'partial', 'complete'):
        g = level_golden(mod, level, lrefs, lhyps)
        up = [0.0 if (r is None or h is None) else float(upstream.compute_reward(h, r, level)) for r, h in zip(refs, hyps)]
        for a, b in zip(up, g['rewards']):
            assert a == b[0], (level, a, b)
        g['upstream_f1'] = up
        g['upstream_mean'] = float(np.mean(up))  # upstream F1RadGraph.forward: np.mean of the F1 list
        lower[level] = g

    # the case-sensitive and lowercase sets must differ somewhere, else the lowercase test proves nothing
    assert any(a != b for level in lower for a, b in zip(lower[level]['rewards'], levels[level]['rewards']))

    golden = {
        'versions': {'python': platform.python_version(), 'numpy': np.__version__, 'scipy': scipy.__version__},
        'sources': {
            'llavarad': f'microsoft/LLaVA-Rad@{args.llavarad_commit} llava/eval/rrg_eval/rrg_eval/f1radgraph.py',
            'upstream': f'Stanford-AIMI/radgraph@{args.upstream_commit} radgraph/rewards.py',
        },
        'seed': SEED,
        'n_resamples': 500,
        'pairs': pairs,
        'levels': levels,
        'lowercase': lower,
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'reward-golden.json'), 'w', encoding='utf-8') as f:
        json.dump(golden, f, ensure_ascii=False, separators=(',', ':'))
        f.write('\n')
    counts = {
        'pairs': len(pairs),
        'empty text': sum(1 for p in pairs if p['ref'] is None or p['hyp'] is None),
        'no entities': sum(1 for p in pairs if p['ref'] is not None and p['hyp'] is not None and (not p['ref']['entities'] or not p['hyp']['entities'])),
    }
    print(counts, {k: v['mean'] for k, v in levels.items()}, {k: v['mean'] for k, v in lower.items()})


if __name__ == '__main__':
    main()
