"""Detection metrics defined once: ROC-AUC and expected calibration error, in plain numpy.

Conventions: ``y`` is 1 for synthetic, 0 for real; ``s`` is a score where higher means "more likely synthetic".
Training reports them on validation; ``benchmarks.metrics`` builds its bootstrap and operating points on them.
"""

from __future__ import annotations

import numpy as np


def check_scores(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y, s)`` as flat int labels and float64 scores of equal length; raises ValueError on non-finite scores."""
    y = np.asarray(y).astype(int).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in length")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos n_neg) of the scores of positives and negatives, ties counted one half."""
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv), dtype=np.float64)
    sorted_v = allv[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC; NaN when one class is missing."""
    y, s = check_scores(y, s)
    return rank_auc(s[y == 1], s[y == 0])


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width bins over [0, 1] (scores are clipped into [0, 1]); NaN when
    empty."""
    y, p = check_scores(y, p)
    p = np.clip(p, 0.0, 1.0)
    if not len(y):
        return float("nan")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    conf = np.bincount(bins, weights=p, minlength=n_bins)
    acc = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    nz = count > 0
    return float(np.sum(np.abs(acc[nz] - conf[nz])) / len(y))
