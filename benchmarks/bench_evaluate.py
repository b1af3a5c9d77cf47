"""Bootstrap confidence intervals and DeLong on a 50,000-row holdout.

mlcycle: every binary metric (11) for 1,000 Poisson-bootstrap resamples at
once (weights × precomputed per-row vectors; ROC-AUC and PR-AUC from one sort
and cumulative sums), and DeLong's test of two models' ROC-AUC.

Alternative (same run, in ``.venv-bench`` with the same scikit-learn): the
naive loop people write — draw indices, call the scikit-learn metric functions
on each resample — and a paired bootstrap of the AUC difference with
``roc_auc_score``. The naive loop is timed on fewer resamples and its
per-resample cost extrapolated to 1,000 (running it in full takes minutes).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import run_alternative

ROWS = 50_000

NAIVE = r"""
import json, sys, time
import numpy as np
from sklearn import metrics as skm
data = np.load(sys.argv[1])
y, a, b = data["y"], data["a"], data["b"]
n_boot = int(sys.argv[2])
rng = np.random.default_rng(0)
n = len(y)

def all_metrics(yy, pp):
    pred = pp >= 0.5
    return [
        skm.roc_auc_score(yy, pp), skm.average_precision_score(yy, pp),
        skm.log_loss(yy, pp), skm.brier_score_loss(yy, pp), skm.f1_score(yy, pred),
        skm.accuracy_score(yy, pred), skm.balanced_accuracy_score(yy, pred),
        skm.precision_score(yy, pred), skm.recall_score(yy, pred),
        skm.matthews_corrcoef(yy, pred),
    ]

t0 = time.perf_counter()
values = []
for _ in range(n_boot):
    idx = rng.integers(0, n, n)
    values.append(all_metrics(y[idx], a[idx]))
metrics_s = time.perf_counter() - t0
values = np.array(values)
t0 = time.perf_counter()
diffs = []
for _ in range(n_boot):
    idx = rng.integers(0, n, n)
    diffs.append(skm.roc_auc_score(y[idx], a[idx]) - skm.roc_auc_score(y[idx], b[idx]))
paired_s = time.perf_counter() - t0
print(json.dumps({
    "resamples": n_boot,
    "all_metrics_s": metrics_s,
    "auc_ci": [float(np.quantile(values[:, 0], 0.025)), float(np.quantile(values[:, 0], 0.975))],
    "paired_auc_s": paired_s,
    "paired_auc_ci": [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))],
    "sklearn": __import__("sklearn").__version__,
}))
"""


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype("float64")  # flights-like positive rate
    signal = y * 2 - 1
    a = 1 / (1 + np.exp(-(0.9 * signal + rng.normal(size=n) - 1.0)))
    b = 1 / (1 + np.exp(-(0.8 * signal + rng.normal(size=n) - 1.0)))
    return y, np.round(a, 4), np.round(b, 4)


def _best_of(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(quick: bool) -> dict[str, Any]:
    from mlcycle.evaluate import bootstrap_intervals, delong
    from mlcycle.evaluate.bootstrap import paired_bootstrap

    n_boot = 1000
    naive_boot = 20 if quick else 100
    y, a, b = _data(ROWS)
    repeats = 1 if quick else 3

    ci_s, ci = _best_of(lambda: bootstrap_intervals("binary", y, a, n_boot=n_boot, seed=0), repeats)
    delong_s, dl = _best_of(lambda: delong(y, a, b), repeats)
    paired_s, paired = _best_of(
        lambda: paired_bootstrap("binary", "roc_auc", y, a, b, n_boot=n_boot, seed=0), 1
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scores.npz"
        np.savez(path, y=y, a=a, b=b)
        alt = run_alternative(NAIVE, str(path), str(naive_boot))
    per_resample = alt["all_metrics_s"] / naive_boot
    naive_1000 = per_resample * n_boot
    naive_paired_1000 = alt["paired_auc_s"] / naive_boot * n_boot
    return {
        "rows": ROWS,
        "resamples": n_boot,
        "metrics": len(ci),
        "mlcycle": {
            "bootstrap_all_metrics_s": round(ci_s, 3),
            "roc_auc_ci": [round(ci["roc_auc"]["low"], 4), round(ci["roc_auc"]["high"], 4)],
            "delong_s": round(delong_s, 4),
            "delong_ci": [round(dl["ci_low"], 4), round(dl["ci_high"], 4)],
            "paired_bootstrap_auc_s": round(paired_s, 3),
            "paired_bootstrap_auc_ci": [round(paired["ci_low"], 4), round(paired["ci_high"], 4)],
        },
        "alternative": {
            "name": f"naive loop of scikit-learn {alt['sklearn']} calls",
            "measured_resamples": naive_boot,
            "all_metrics_s_measured": round(alt["all_metrics_s"], 3),
            "all_metrics_s_per_1000": round(naive_1000, 2),
            "roc_auc_ci": [round(v, 4) for v in alt["auc_ci"]],
            "paired_auc_s_per_1000": round(naive_paired_1000, 2),
            "paired_auc_ci": [round(v, 4) for v in alt["paired_auc_ci"]],
        },
        "ratios": {
            "bootstrap_speedup": round(naive_1000 / ci_s, 1),
            "delong_vs_naive_paired_bootstrap": round(naive_paired_1000 / delong_s, 1),
            "paired_bootstrap_speedup": round(naive_paired_1000 / paired_s, 1),
        },
    }
