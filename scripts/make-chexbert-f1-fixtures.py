#!/usr/bin/env python3
"""Makes the goldens of the CheXbert F1 scoring of `llava-rad eval` (test/fixtures/eval/chexbert-f1*.json).

The labels are synthetic (no CheXbert model runs here): a seeded set of per-study CheXbert class labels for
references and predictions, in the labeler's encoding (0 blank, 1 positive, 2 negative, 3 uncertain; No
Finding only 0 / 1), with every class present, some conditions never positive (so sklearn's zero_division
matters) and predictions that agree with the references most of the time.

The scoring follows microsoft/LLaVA-Rad llava/eval/rrg_eval/rrg_eval/chexbert.py `evaluate(...,
bootstrap_ci=True)` (re-implemented here without the BERT model, which that module loads at call time):

- map_to_binary "rrg" (positive -> 1, blank / negative / uncertain -> 0) and "rrg+" (positive or uncertain -> 1);
- sklearn classification_report(y_true=references, y_pred=predictions, target_names=...,
  output_dict=True, zero_division=0) over the 14 conditions (CheXbert order) and over the 5
  (Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion);
- for "micro" and "macro": scipy.stats.bootstrap(data=(list(range(n)),), statistic=f1 of the resampled
  studies (precision_recall_fscore_support(y_pred=..., y_true=..., average=key)[2]), method="percentile",
  paired=False, vectorized=False, confidence_level=0.95, random_state=3, n_resamples=500), reported as
  np.median(bootstrap_distribution), confidence_interval.low and .high.

Also: scipy's resampling indices for small cases (recorded from inside the statistic), and a RadGraph-style
bootstrap (f1radgraph.py: statistic np.mean(rewards[indices], axis=0)[0]) on synthetic rewards.

Run with the versions the goldens record. The official environment pins numpy==1.26.0 and
scikit-learn==1.2.2 (scipy is not pinned); the closest available here:

    /usr/bin/python3 -m venv /tmp/evalenv2
    /tmp/evalenv2/bin/pip install --no-index --find-links /opt/pypi/files numpy==1.26.4 scipy==1.11.1 joblib threadpoolctl
    # scikit-learn 1.2.1: Debian bookworm's python3-sklearn / python3-sklearn-lib (amd64), unpacked, not installed:
    mkdir -p /tmp/debsk && cd /tmp/debsk && apt-get download python3-sklearn python3-sklearn-lib
    for f in *.deb; do dpkg-deb -x $f root; done
    echo /tmp/debsk/root/usr/lib/python3/dist-packages > /tmp/evalenv2/lib/python3.11/site-packages/debsk.pth
    /tmp/evalenv2/bin/python scripts/make-chexbert-f1-fixtures.py
"""

import json
import os
import platform
import random
import warnings

import numpy as np
import scipy
import sklearn
from scipy.stats import bootstrap
from sklearn.metrics import classification_report, precision_recall_fscore_support

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'eval')

# stanfordmlgroup/CheXbert src/constants.py CONDITIONS (the labeler's head order)
CHEXBERT_CONDITIONS = [
    'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema',
    'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other',
    'Fracture', 'Support Devices', 'No Finding',
]
CONDITIONS_5 = ['Cardiomegaly', 'Edema', 'Consolidation', 'Atelectasis', 'Pleural Effusion']
BLANK, POSITIVE, NEGATIVE, UNCERTAIN = 0, 1, 2, 3

N_STUDIES = 320
N_RESAMPLES = 500


def map_to_binary(label, mode):
    if mode == 'rrg':
        return {BLANK: 0, NEGATIVE: 0, UNCERTAIN: 0, POSITIVE: 1}[label]
    return {BLANK: 0, NEGATIVE: 0, UNCERTAIN: 1, POSITIVE: 1}[label]


def synthetic_labels(seed):
    rnd = random.Random(seed)
    # per-condition class weights (blank, positive, negative, uncertain) for the references
    weights = {c: (5, 2, 3, 1) for c in CHEXBERT_CONDITIONS}
    weights['Pleural Other'] = (8, 0, 1, 1)   # never positive: uncertain only ("+" has a few positives)
    weights['Fracture'] = (9, 0, 1, 0)        # never positive in the references (predictions add some)
    weights['Lung Lesion'] = (9, 1, 0, 0)     # rare
    refs, preds = [], []
    for _ in range(N_STUDIES):
        ref, pred = [], []
        for c in CHEXBERT_CONDITIONS:
            if c == 'No Finding':
                r = POSITIVE if rnd.random() < 0.2 else BLANK
                p = r if rnd.random() < 0.8 else 1 - r
            else:
                r = rnd.choices([BLANK, POSITIVE, NEGATIVE, UNCERTAIN], weights=weights[c])[0]
                u = rnd.random()
                if u < 0.7:
                    p = r
                elif c == 'Pleural Other':
                    p = rnd.choice([BLANK, NEGATIVE, UNCERTAIN])   # never positive in predictions either
                elif c == 'Fracture' and u < 0.9:
                    p = rnd.choice([BLANK, NEGATIVE])
                else:
                    p = rnd.choice([BLANK, POSITIVE, NEGATIVE, UNCERTAIN])
            ref.append(r)
            pred.append(p)
        refs.append(ref)
        preds.append(pred)
    return refs, preds


def bootstrap_f1(preds, refs, key):
    # llava/eval/rrg_eval/rrg_eval/chexbert.py bootstrap_confidence_interval
    def _compute(indices):
        p = [preds[i] for i in indices]
        r = [refs[i] for i in indices]
        _, _, avg_f1, _ = precision_recall_fscore_support(y_pred=p, y_true=r, average=key)
        return avg_f1

    return bootstrap(
        data=(list(range(len(preds))),), statistic=_compute, method='percentile', paired=False,
        vectorized=False, confidence_level=0.95, random_state=3, n_resamples=N_RESAMPLES,
    )


def report_for(ref_labels, pred_labels, mode, names):
    idx = [CHEXBERT_CONDITIONS.index(c) for c in names]
    y_true = [[map_to_binary(s[i], mode) for i in idx] for s in ref_labels]
    y_pred = [[map_to_binary(s[i], mode) for i in idx] for s in pred_labels]
    cr = classification_report(y_true, y_pred, target_names=names, output_dict=True, zero_division=0)
    for key in ('micro', 'macro'):
        bs = bootstrap_f1(y_pred, y_true, key)
        cr[f'{key} avg']['median'] = float(np.median(bs.bootstrap_distribution))
        cr[f'{key} avg']['ci_l'] = float(bs.confidence_interval.low)
        cr[f'{key} avg']['ci_h'] = float(bs.confidence_interval.high)
        cr[f'{key} avg']['bootstrap_distribution'] = [float(x) for x in bs.bootstrap_distribution]
        cr[f'{key} avg']['standard_error'] = float(bs.standard_error)
    return cr


def recorded_indices(n, n_resamples, batch=None):
    seen = []

    def stat(x):
        seen.append([int(v) for v in x])
        return float(np.mean(x))

    bs = bootstrap((list(range(n)),), stat, n_resamples=n_resamples, batch=batch, vectorized=False,
                   method='percentile', random_state=3)
    return {'n': n, 'n_resamples': n_resamples, 'batch': batch, 'indices': seen,
            'distribution': [float(v) for v in bs.bootstrap_distribution],
            'ci_l': float(bs.confidence_interval.low), 'ci_h': float(bs.confidence_interval.high)}


def radgraph_like(seed, n):
    rnd = random.Random(seed)
    rewards = []
    for _ in range(n):
        p, r = rnd.random(), rnd.random()
        if rnd.random() < 0.1:
            p = r = 0.0
        f = 0.0 if p + r == 0 else 2 * p * r / (p + r)
        rewards.append([f, p, r])

    def _compute(indices):
        rr = [rewards[i] for i in indices]
        return np.mean(rr, axis=0)[0]

    bs = bootstrap(data=(list(range(n)),), statistic=_compute, method='percentile', paired=False,
                   vectorized=False, confidence_level=0.95, random_state=3, n_resamples=N_RESAMPLES)
    return {'rewards': rewards, 'median': float(np.median(bs.bootstrap_distribution)),
            'ci_l': float(bs.confidence_interval.low), 'ci_h': float(bs.confidence_interval.high),
            'distribution': [float(v) for v in bs.bootstrap_distribution]}


def main():
    warnings.simplefilter('ignore')
    refs, preds = synthetic_labels(16)
    golden = {
        'versions': {'python': platform.python_version(), 'numpy': np.__version__, 'scipy': scipy.__version__,
                     'sklearn': sklearn.__version__},
        'procedure': 'microsoft/LLaVA-Rad llava/eval/rrg_eval/rrg_eval/chexbert.py evaluate(bootstrap_ci=True) '
                     'without the model; see scripts/make-chexbert-f1-fixtures.py',
        'conditions': CHEXBERT_CONDITIONS,
        'conditions5': CONDITIONS_5,
        'n_resamples': N_RESAMPLES,
        'references': refs,
        'predictions': preds,
        'reports': {
            'f14': report_for(refs, preds, 'rrg', CHEXBERT_CONDITIONS),
            'f5': report_for(refs, preds, 'rrg', CONDITIONS_5),
            'f14+': report_for(refs, preds, 'rrg+', CHEXBERT_CONDITIONS),
            'f5+': report_for(refs, preds, 'rrg+', CONDITIONS_5),
        },
    }
    with open(os.path.join(OUT, 'chexbert-f1-golden.json'), 'w') as f:
        json.dump(golden, f)
    boot = {
        'versions': golden['versions'],
        'indices': [recorded_indices(7, 5), recorded_indices(13, 9, batch=4), recorded_indices(300, 3)],
        'radgraph': radgraph_like(7, 250),
    }
    with open(os.path.join(OUT, 'chexbert-f1-bootstrap-golden.json'), 'w') as f:
        json.dump(boot, f)
    for k, cr in golden['reports'].items():
        print(k, {a: round(cr[a]['f1-score'], 4) for a in ('micro avg', 'macro avg')},
              {a: (round(cr[a]['median'], 4), round(cr[a]['ci_l'], 4), round(cr[a]['ci_h'], 4)) for a in ('micro avg', 'macro avg')})


if __name__ == '__main__':
    main()
