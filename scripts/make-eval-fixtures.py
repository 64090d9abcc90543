#!/usr/bin/env python3
"""Makes the fixtures and goldens of `llava-rad eval` (test/fixtures/eval/).

1. A synthetic set of chest X-ray findings (reference, prediction) pairs from phrase templates, with a
   seeded random module: sentence drops, negation flips, laterality / severity / number edits,
   hallucinated sentences, case changes, punctuation, unicode quotes, empty and very long predictions.
   dev.jsonl (the tests develop against it), dev-b.jsonl (a second system on the same studies, for
   --paired) and heldout.jsonl (>= 200 pairs, read only by the final equality test).
2. Goldens from the real scorers, following the procedure of the official evaluation
   (microsoft/LLaVA-Rad llava/eval/rrg_eval/run.py with bootstrap_ci=True; re-implemented here because
   run.py imports the whole model stack): numpy's global RNG seeded 3 at start; BLEU-1 and BLEU-4 by
   sacrebleu BLEU(max_ngram_order=1) / BLEU() corpus_score(n_bootstrap=500) reported as score and
   _mean -/+ _ci; ROUGE-L by rouge_score RougeScorer(["rougeL"]) score(reference, prediction) and
   BootstrapAggregator(confidence_interval=0.95, n_samples=500) reported as mid / low / high F-measure.
3. numpy RNG goldens: RandomState (MT19937, legacy seeding) randint / choice and default_rng (PCG64,
   SeedSequence) integers / choice over many bounds.

Run with the versions the goldens record (numpy 1.x: the official environment pins numpy==1.26.0, and
numpy 2 changes sacrebleu's bootstrap arithmetic to float32):

    /usr/bin/python3 -m venv --system-site-packages /tmp/evalenv1      # Debian's numpy 1.24
    /tmp/evalenv1/bin/pip install --no-index --find-links /opt/pypi/files --no-deps \
        sacrebleu portalocker regex tabulate colorama lxml six
    /tmp/evalenv1/bin/python scripts/make-eval-fixtures.py [--rouge-src DIR]

rouge_score: the pip package, or (--rouge-src DIR) a directory holding a `rouge_score` package made from
google-research/google-research rouge/ (rouge_scorer.py, scoring.py, tokenize.py).
"""

import argparse
import json
import os
import platform
import random
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'eval')

# ---------------------------------------------------------------------------------------------
# 1. the synthetic report set

# (positive sentence, negative sentence) pairs; {side}, {sev}, {num} are filled in
FINDINGS = [
    ('There is a {sev} {side} pleural effusion.', 'No pleural effusion.'),
    ('{Sev} pulmonary vascular congestion is present.', 'There is no pulmonary vascular congestion.'),
    ('Patchy opacity in the {side} lower lobe may reflect aspiration or pneumonia.', 'No focal consolidation to suggest pneumonia.'),
    ('The cardiac silhouette is {sev}ly enlarged.', 'Heart size is normal.'),
    ('There is a {side} apical pneumothorax measuring {num} cm.', 'There is no pneumothorax.'),
    ('Bibasilar atelectasis, {sev}.', 'No atelectasis.'),
    ('A {inum}-mm nodule projects over the {side} upper lobe.', 'No suspicious pulmonary nodule.'),
    ('Interstitial opacities suggest {sev} pulmonary edema.', 'No pulmonary edema.'),
    ('“Ground-glass” opacities in the {side} mid lung.', 'Lungs are clear.'),
    ('Hyperinflated lungs consistent with COPD.', 'Lung volumes are normal.'),
    ('Widened mediastinum, {num} cm at the level of the aortic knob.', 'Mediastinal and hilar contours are unremarkable.'),
    ('Displaced fracture of the {side} {ord} rib.', 'No acute osseous abnormality.'),
]
DEVICES = [
    'Endotracheal tube tip is {num} cm above the carina.',
    '{Side} internal jugular central venous catheter terminates in the mid SVC.',
    'Enteric tube courses below the diaphragm, tip not seen.',
    'Median sternotomy wires are intact.',
    'A {side}-sided pacemaker with leads in the right atrium & right ventricle.',
    'NG tube tip in the stomach; side port at the GE junction.',
    'PICC line (via the {side} arm) ends at the cavoatrial junction.',
]
EXTRAS = [
    'Compared to the prior study from ___, there is interval improvement.',
    'PA and lateral views of the chest were obtained.',
    'Degenerative changes of the thoracic spine.',
    "The patient's chin obscures the lung apices.",
    'Calcified granuloma in the {side} lung — unchanged.',
    'Mass measures {num} × {num2} cm (previously {num2} cm).',
    'Findings were discussed with Dr. ___ at 10:45 a.m. on ___.',
    'Cholecystectomy clips in the RUQ.',
    'Port-a-cath tip at the cavoatrial junction.',
    'Aortic knob calcification; tortuous aorta.',
    'Heart size ≈ upper limits of normal.',
    'Résumé: stable appearance of the chest ½ year after surgery.',
    'Possible small effusion vs. atelectasis?',
    'Lines/tubes: unchanged [see above].',
]
SEVERITY = ['mild', 'moderate', 'severe', 'small', 'large', 'trace']
SIDES = ['left', 'right', 'bilateral']
ORDINALS = ['third', 'fourth', 'fifth', 'sixth', '7th']


def fill(rnd, s):
    sev = rnd.choice(SEVERITY)
    side = rnd.choice(SIDES)
    return (s.replace('{sev}', sev).replace('{Sev}', sev.capitalize())
            .replace('{side}', side).replace('{Side}', side.capitalize())
            .replace('{num}', f'{rnd.randint(1, 9)}.{rnd.randint(0, 9)}')
            .replace('{num2}', f'{rnd.randint(1, 9)}.{rnd.randint(0, 9)}')
            .replace('{inum}', str(rnd.randint(3, 25)))
            .replace('{ord}', rnd.choice(ORDINALS)))


def make_reference(rnd):
    sents = []
    for pos, neg in rnd.sample(FINDINGS, rnd.randint(2, 6)):
        sents.append(fill(rnd, pos if rnd.random() < 0.45 else neg))
    for d in rnd.sample(DEVICES, rnd.randint(0, 2)):
        sents.append(fill(rnd, d))
    for e in rnd.sample(EXTRAS, rnd.randint(0, 2)):
        sents.append(fill(rnd, e))
    rnd.shuffle(sents)
    return sents


def edit_sentence(rnd, s, rate):
    r = rnd.random()
    if r < rate * 0.25:  # negation flip
        for pos, neg in FINDINGS:
            key = pos.split('{')[0][:12]
            if key and s.startswith(key):
                return neg
            if s == neg:
                return fill(rnd, pos)
        return 'No ' + s[0].lower() + s[1:] if s else s
    if r < rate * 0.45:  # laterality swap
        return s.replace('left', '\0').replace('right', 'left').replace('\0', 'right')
    if r < rate * 0.6:  # severity change
        for a in SEVERITY:
            if a in s:
                return s.replace(a, rnd.choice(SEVERITY), 1)
        return s
    if r < rate * 0.75:  # number change
        return ''.join(str(rnd.randint(0, 9)) if c.isdigit() and rnd.random() < 0.5 else c for c in s)
    if r < rate * 0.85:  # case change
        return s.upper() if rnd.random() < 0.3 else s.lower()
    if r < rate:  # punctuation / spacing noise
        return rnd.choice([s.rstrip('.') + ' .', s.replace(',', ' ,'), s + '  ', s.replace(' ', '\u00a0', 1), s.replace('.', '!')])
    return s


def make_prediction(rnd, ref_sents, rate):
    out = []
    for s in ref_sents:
        if rnd.random() < rate * 0.3:
            continue  # omission
        out.append(edit_sentence(rnd, s, rate))
    if rnd.random() < rate * 0.6:  # hallucinated finding
        pos, neg = rnd.choice(FINDINGS)
        out.insert(rnd.randint(0, len(out)), fill(rnd, rnd.choice([pos, neg])))
    if rnd.random() < 0.2:
        rnd.shuffle(out)
    return out


def join(rnd, sents):
    sep = rnd.choice([' ', ' ', ' ', '\n', '  '])
    return sep.join(sents)


def make_set(rnd, n, prefix, rate):
    rows = []
    for i in range(n):
        ref = make_reference(rnd)
        pred = make_prediction(rnd, ref, rate)
        reference = join(rnd, ref)
        prediction = join(rnd, pred)
        kind = i % 37
        if kind == 5:
            prediction = ''  # empty prediction
        elif kind == 11:
            prediction = reference  # perfect
        elif kind == 17:  # very long prediction (a rambling model)
            prediction = ' '.join(fill(rnd, rnd.choice(EXTRAS + DEVICES)) for _ in range(60))
        elif kind == 23:
            prediction = '   \t '  # whitespace only
        elif kind == 29:
            prediction = prediction.replace('-', '-\n', 1) + ' <skipped> &amp; &quot;done&quot;'
        elif kind == 31:
            prediction = '\u2028'.join(pred) + '\u3000'
        if i == n - 2:
            reference = ''  # an empty reference
        rows.append({'id': f'{prefix}-{i:04d}', 'query': '<image>\nDescribe the findings of the chest x-ray.\n',
                     'reference': reference, 'prediction': prediction})
    return rows


# ---------------------------------------------------------------------------------------------
# 2. the official procedure


def official_scores(preds, refs, n_bootstrap, BLEU, rouge_scorer, scoring):
    """run.py's bleu1 / bleu4 / rougel with bootstrap_ci=True, in run.py's scorer order, after np.random.seed(3)."""
    np.random.seed(3)
    out = {}
    ret = BLEU(max_ngram_order=1).corpus_score(hypotheses=preds, references=[refs], n_bootstrap=n_bootstrap)
    out['bleu1'] = {'median': ret.score, 'ci_l': ret._mean - ret._ci, 'ci_h': ret._mean + ret._ci, 'mean': ret._mean, 'half_width': ret._ci}
    ret = BLEU().corpus_score(hypotheses=preds, references=[refs], n_bootstrap=n_bootstrap)
    out['bleu4'] = {'median': ret.score, 'ci_l': ret._mean - ret._ci, 'ci_h': ret._mean + ret._ci, 'mean': ret._mean, 'half_width': ret._ci}
    # rrg_eval/rouge.py compute(predictions, references, ["rougeL"]) with use_aggregator=True
    scorer = rouge_scorer.RougeScorer(['rougeL'], use_stemmer=False)
    agg = scoring.BootstrapAggregator(confidence_interval=0.95, n_samples=n_bootstrap)
    for ref, pred in zip(refs, preds):
        agg.add_scores(scorer.score(ref, pred))
    r = agg.aggregate()['rougeL']
    out['rougeL'] = {'median': r.mid.fmeasure, 'ci_l': r.low.fmeasure, 'ci_h': r.high.fmeasure}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rouge-src', help='directory holding a rouge_score package (if not installed)')
    ap.add_argument('--out', default=OUT)
    args = ap.parse_args()
    if args.rouge_src:
        sys.path.insert(0, args.rouge_src)
    import sacrebleu
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import _bootstrap_resample
    from rouge_score import rouge_scorer, scoring

    os.makedirs(args.out, exist_ok=True)
    versions = {'python': platform.python_version(), 'numpy': np.__version__, 'sacrebleu': sacrebleu.__version__,
                'rouge_score': getattr(sys.modules['rouge_score'], '__version__', 'source: google-research/google-research rouge/ (rouge_scorer.py, scoring.py, tokenize.py)'),
                'procedure': 'microsoft/LLaVA-Rad llava/eval/rrg_eval/run.py (bootstrap_ci=True) + rrg_eval/rouge.py'}

    rnd = random.Random(20240616)
    dev = make_set(rnd, 60, 'dev', 0.5)
    heldout = make_set(rnd, 220, 'ho', 0.45)
    # system B on the dev studies: fewer edits, its own order, one study missing, one extra, one failed
    dev_b = []
    for row in dev:
        ref_sents = [s for s in row['reference'].replace('\n', ' ').split('. ') if s]
        pred = join(rnd, make_prediction(rnd, [s if s.endswith('.') else s + '.' for s in ref_sents], 0.3))
        dev_b.append({'id': row['id'], 'reference': row['reference'], 'findings': pred})
    rnd.shuffle(dev_b)
    dev_b = [r for r in dev_b if r['id'] != 'dev-0007']
    dev_b.append({'id': 'dev-9999', 'reference': 'Lungs are clear.', 'findings': 'Lungs are clear.'})
    failed = next(r for r in dev_b if r['id'] == 'dev-0012')
    failed.pop('findings')
    failed['error'] = {'code': 'INVALID_IMAGE', 'message': 'not an image'}

    def write_jsonl(name, rows):
        with open(os.path.join(args.out, name), 'w', encoding='utf-8') as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + '\n')

    write_jsonl('dev.jsonl', dev)
    write_jsonl('dev-b.jsonl', dev_b)
    write_jsonl('heldout.jsonl', heldout)

    def dump(name, obj):
        with open(os.path.join(args.out, name), 'w', encoding='utf-8') as f:
            json.dump(obj, f, ensure_ascii=False, separators=(',', ':'))
            f.write('\n')

    # --- dev goldens: tokenizer, per-segment statistics, per-pair ROUGE-L, corpus and bootstrap values
    preds = [r['prediction'] for r in dev]
    refs = [r['reference'] for r in dev]
    bleu4, bleu1 = BLEU(), BLEU(max_ngram_order=1)
    stats4 = bleu4._extract_corpus_statistics(preds, [refs])
    stats1 = bleu1._extract_corpus_statistics(preds, [refs])
    scorer = rouge_scorer.RougeScorer(['rougeL'], use_stemmer=False)
    rouge_pairs = [list(scorer.score(r, p)['rougeL']) for r, p in zip(refs, preds)]
    _, bs4 = _bootstrap_resample(stats4, bleu4, 500)
    _, bs1 = _bootstrap_resample(stats1, bleu1, 500)
    # the ROUGE-L bootstrap means, drawn as BootstrapAggregator draws them after np.random.seed(3)
    np.random.seed(3)
    fm = np.array([x[2] for x in rouge_pairs])
    matrix = np.array(rouge_pairs, dtype=float)
    rouge_means = []
    for _ in range(500):
        idx = np.random.choice(np.arange(matrix.shape[0]), size=matrix.shape[0])
        rouge_means.append(float(np.mean(matrix[idx, :], axis=0)[2]))
    c4 = bleu4.corpus_score(preds, [refs])
    c1 = bleu1.corpus_score(preds, [refs])
    dump('dev-golden.json', {
        'versions': versions, 'n': len(dev),
        'tokens13a': [[bleu4._preprocess_segment(p), bleu4._preprocess_segment(r)] for p, r in zip(preds, refs)],
        'rouge_tokens': [[scorer_tokens for scorer_tokens in (rouge_tokenize(r), rouge_tokenize(p))] for p, r in zip(preds, refs)],
        'stats4': stats4, 'stats1': stats1,
        'corpus': {'bleu4': {'score': c4.score, 'precisions': c4.precisions, 'bp': c4.bp},
                   'bleu1': {'score': c1.score, 'precisions': c1.precisions, 'bp': c1.bp}},
        'bootstrap_scores': {'bleu4': [s.score for s in bs4], 'bleu1': [s.score for s in bs1]},
        'rouge_pairs': rouge_pairs,
        'rouge_means': rouge_means,
        'rouge_mean_f': float(fm.mean()),
        'official': official_scores(preds, refs, 500, BLEU, rouge_scorer, scoring),
        'official_b100': official_scores(preds, refs, 100, BLEU, rouge_scorer, scoring),
    })

    # --- held-out goldens: only what the official evaluation reports
    hp = [r['prediction'] for r in heldout]
    hr = [r['reference'] for r in heldout]
    dump('heldout-golden.json', {'versions': versions, 'n': len(heldout), 'bootstrap': 500,
                                 'official': official_scores(hp, hr, 500, BLEU, rouge_scorer, scoring)})

    # --- paired bootstrap (lib/eval/paired.ts documents the procedure): dev (A) vs dev-b (B)
    b_by_id = {r['id']: r for r in dev_b if 'error' not in r}
    pa = [r for r in dev if r['id'] in b_by_id]
    pb = [b_by_id[r['id']] for r in pa]
    n = len(pa)
    idx = np.random.default_rng(12345).choice(n, size=(500, n), replace=True)
    paired = {}
    for name, metric in (('bleu1', bleu1), ('bleu4', bleu4)):
        sa = np.array(metric._extract_corpus_statistics([r['prediction'] for r in pa], [[r['reference'] for r in pa]]), dtype=np.int64)
        sb = np.array(metric._extract_corpus_statistics([r['findings'] for r in pb], [[r['reference'] for r in pa]]), dtype=np.int64)
        d = np.array([metric._compute_score_from_stats(list(map(int, sb[row].sum(0)))).score
                      - metric._compute_score_from_stats(list(map(int, sa[row].sum(0)))).score for row in idx])
        a_score = metric._compute_score_from_stats(list(map(int, sa.sum(0)))).score
        b_score = metric._compute_score_from_stats(list(map(int, sb.sum(0)))).score
        paired[name] = {'a': a_score, 'b': b_score, 'mean': float(d.mean()), 'ci': [float(x) for x in np.percentile(d, [2.5, 97.5])], 'bBelowA': float((d < 0).mean())}
    fa = np.array([scorer.score(r['reference'], r['prediction'])['rougeL'].fmeasure for r in pa])
    fb = np.array([scorer.score(a['reference'], b['findings'])['rougeL'].fmeasure for a, b in zip(pa, pb)])
    d = np.array([fb[row].sum() / n - fa[row].sum() / n for row in idx])
    paired['rougeL'] = {'a': float(fa.mean()), 'b': float(fb.mean()), 'mean': float(d.mean()), 'ci': [float(x) for x in np.percentile(d, [2.5, 97.5])], 'bBelowA': float((d < 0).mean())}
    dump('paired-golden.json', {'versions': versions, 'n': n, 'skipped': {'a': 0, 'b': 1}, 'unmatched': {'a': len(dev) - n, 'b': len(b_by_id) - n}, 'metrics': paired})

    # --- numpy RNG goldens
    bounds = [1, 2, 3, 5, 7, 10, 60, 100, 220, 1000, 2461, 65535, 65536, 65537, 1_000_003, 2**31 - 1, 2**31, 2**31 + 1, 3_000_000_000, 2**32 - 1, 2**32]
    draws = 1000
    rs = np.random.RandomState(3)
    legacy = [{'high': b, 'values': rs.randint(0, b, size=draws).tolist()} for b in bounds]
    legacy_choice = [rs.choice(np.arange(n_), size=n_).tolist() for n_ in (1, 7, 60, 220)]
    legacy_seeds = {str(s): np.random.RandomState(s).randint(0, 1000, size=1000).tolist() for s in (0, 1, 12345, 2**32 - 1)}
    legacy_array_seed = np.random.RandomState([1, 2, 3]).randint(0, 2**32, size=700, dtype=np.int64).tolist()
    g = np.random.default_rng(12345)
    gen = [{'high': b, 'values': g.integers(0, b, size=draws).tolist()} for b in bounds]
    gen_choice = np.random.default_rng(12345).choice(220, size=(20, 220), replace=True).tolist()
    gen_seeds = {str(s): np.random.default_rng(s).integers(0, 1000, size=1000).tolist() for s in (0, 1, 3, 2**32 - 1, 2**32 + 5, 2**64 + 12345, 2**130 + 7)}
    raw = [str(x) for x in np.random.PCG64(12345).random_raw(10)]
    dump('rng-golden.json', {'versions': versions, 'draws_per_bound': draws,
                             'legacy': {'seed': 3, 'randint': legacy, 'choice_then': legacy_choice, 'seeds': legacy_seeds, 'array_seed_1_2_3': legacy_array_seed},
                             'generator': {'seed': 12345, 'integers': gen, 'choice_220x20': gen_choice, 'seeds': gen_seeds, 'pcg64_raw': raw}})
    print(json.dumps(versions))


def rouge_tokenize(text):
    from rouge_score import tokenize
    return tokenize.tokenize(text, None)


if __name__ == '__main__':
    main()
