"""Detection metrics with stratified bootstrap confidence intervals, in plain numpy (fast enough to bootstrap).

Conventions: ``y`` is 1 for synthetic, 0 for real; ``s`` is a score where higher means "more likely synthetic"
(P(fake) for every detector on the board). An image is *flagged* when ``s >= threshold``.

Metrics (names are the keys stored in the results database):

- ``auc`` ROC-AUC (ties count one half), ``ap`` average precision (sklearn's step-wise definition);
- ``eer`` equal error rate (FPR where FPR = FNR, linear interpolation on the ROC curve);
- ``tpr@1%fpr``, ``tpr@5%fpr``: share of fakes caught at the strictest operating point that flags at most 1% / 5% of
  real images (scores strictly above the k-th highest real score, so ties never push the FPR over the target);
- ``tpr@thr`` and ``fpr@thr`` at the detector's shipped threshold;
- ``bacc@0.5`` and ``bacc@val``: balanced accuracy (mean of TPR and TNR, so the class mix of a test set does not move
  it) at 0.5 and at the threshold chosen on the validation split;
- ``ece``: expected calibration error, 10 equal-width bins.

Confidence intervals: percentile intervals (95% by default) of a bootstrap that resamples real and synthetic images
separately (the class counts stay fixed). Thresholds are not re-fitted inside the bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# defined once for training and benchmarks; re-exported so callers find every metric here
from forensics.metrics import check_scores, ece, rank_auc
from forensics.metrics import roc_auc as roc_auc

METRICS = ("auc", "ap", "eer", "tpr@1%fpr", "tpr@5%fpr", "tpr@thr", "fpr@thr", "bacc@0.5", "bacc@val", "ece")
#: Metrics where lower is better (everything else: higher is better).
LOWER_IS_BETTER = frozenset({"eer", "fpr@thr", "ece"})


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval ``[lo, hi]`` (NaN when it could not be computed)."""

    value: float
    lo: float
    hi: float

    def as_tuple(self) -> tuple[float, float, float]:
        return self.value, self.lo, self.hi


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """AP = sum over thresholds of (R_n - R_{n-1}) P_n, as ``sklearn.metrics.average_precision_score``."""
    y, s = check_scores(y, s)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    # keep the last index of each distinct score (a threshold includes all tied scores)
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]
    tp_t = tp[last]
    k = last + 1
    precision = tp_t / k
    recall = tp_t / n_pos
    d_recall = np.diff(np.r_[0.0, recall])
    return float(np.sum(d_recall * precision))


def roc_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), from (0, 0) to (1, 1); one point per distinct score (flag when s >= threshold)."""
    y, s = check_scores(y, s)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1] if len(s) else np.zeros(0, int)
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    tpr = np.r_[0.0, tp / max(n_pos, 1)]
    fpr = np.r_[0.0, fp / max(n_neg, 1)]
    thr = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thr


def eer(y: np.ndarray, s: np.ndarray) -> float:
    """Equal error rate: where FPR = 1 - TPR on the ROC curve (linear interpolation between its points)."""
    y, s = check_scores(y, s)
    if len(set(y.tolist())) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1.0 - tpr
    d = fpr - fnr  # goes from -1 (at (0,0)) to +1 (at (1,1)), non-decreasing
    i = int(np.argmax(d >= 0))
    if d[i] == 0 or i == 0:
        return float(fpr[i])
    # interpolate between point i-1 (d < 0) and i (d >= 0)
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(y: np.ndarray, s: np.ndarray, target: float) -> float:
    """Share of fakes caught at the strictest threshold that flags at most ``target`` of the real images.

    With ``k = floor(target * n_real)``, images are flagged when their score is strictly above the (k+1)-th highest
    real score, so at most k real images are flagged whatever the ties.
    """
    y, s = check_scores(y, s)
    neg, pos = np.sort(s[y == 0])[::-1], s[y == 1]
    if not len(neg) or not len(pos):
        return float("nan")
    k = int(np.floor(target * len(neg) + 1e-9))
    if k >= len(neg):
        return 1.0
    return float(np.mean(pos > neg[k]))


def rates_at(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) when images with ``s >= threshold`` are flagged."""
    y, s = check_scores(y, s)
    flag = s >= threshold
    tpr = float(flag[y == 1].mean()) if (y == 1).any() else float("nan")
    fpr = float(flag[y == 0].mean()) if (y == 0).any() else float("nan")
    return tpr, fpr


def balanced_accuracy(y: np.ndarray, s: np.ndarray, threshold: float) -> float:
    tpr, fpr = rates_at(y, s, threshold)
    return 0.5 * (tpr + (1.0 - fpr))


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[tuple[float, float, int]]:
    """[(mean predicted, observed share of fakes, count)] per non-empty bin, for reliability plots."""
    y, p = check_scores(y, p)
    p = np.clip(p, 0.0, 1.0)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = bins == b
        if m.any():
            out.append((float(p[m].mean()), float(y[m].mean()), int(m.sum())))
    return out


def val_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """The threshold that maximises balanced accuracy on validation scores (midpoint between neighbouring scores)."""
    y, s = check_scores(y, s)
    if len(set(y.tolist())) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, s)
    j = int(np.argmax(tpr - fpr))
    if not np.isfinite(thr[j]):
        return float(np.max(s) + 1e-6)
    below = s[s < thr[j]]
    return float((thr[j] + below.max()) / 2.0) if len(below) else float(thr[j])


def point_metrics(y: np.ndarray, s: np.ndarray, *, threshold: float = 0.5,
                  val_thr: float | None = None) -> dict[str, float]:
    """Every metric of :data:`METRICS` once (no interval)."""
    y, s = check_scores(y, s)
    pos, neg = s[y == 1], s[y == 0]
    tpr_t, fpr_t = rates_at(y, s, threshold)
    vt = 0.5 if val_thr is None else val_thr
    return {
        "auc": rank_auc(pos, neg),
        "ap": average_precision(y, s),
        "eer": eer(y, s),
        "tpr@1%fpr": tpr_at_fpr(y, s, 0.01),
        "tpr@5%fpr": tpr_at_fpr(y, s, 0.05),
        "tpr@thr": tpr_t,
        "fpr@thr": fpr_t,
        "bacc@0.5": balanced_accuracy(y, s, 0.5),
        "bacc@val": balanced_accuracy(y, s, vt) if val_thr is not None else float("nan"),
        "ece": ece(y, s),
    }


def bootstrap(y: np.ndarray, s: np.ndarray, *, threshold: float = 0.5, val_thr: float | None = None,
              n_boot: int = 200, alpha: float = 0.05, seed: int = 0,
              metrics: Sequence[str] = METRICS) -> dict[str, Estimate]:
    """Point estimates and stratified-bootstrap percentile intervals of ``metrics``.

    Args:
        y: (n,) labels, 1 synthetic / 0 real.
        s: (n,) scores, P(synthetic).
        threshold: the detector's shipped operating point (for ``tpr@thr`` / ``fpr@thr``).
        val_thr: threshold chosen on validation (for ``bacc@val``); NaN metric when None.
        n_boot: bootstrap replicates (0: intervals are NaN).
        alpha: 1 - confidence level.
        seed: bootstrap random seed.
    """
    y, s = check_scores(y, s)
    point = point_metrics(y, s, threshold=threshold, val_thr=val_thr)
    pos_i, neg_i = np.nonzero(y == 1)[0], np.nonzero(y == 0)[0]
    reps: dict[str, list[float]] = {m: [] for m in metrics}
    if n_boot > 0 and len(pos_i) and len(neg_i):
        rng = np.random.default_rng(seed)
        for _ in range(n_boot):
            idx = np.concatenate([rng.choice(pos_i, len(pos_i)), rng.choice(neg_i, len(neg_i))])
            r = point_metrics(y[idx], s[idx], threshold=threshold, val_thr=val_thr)
            for m in metrics:
                reps[m].append(r[m])
    out = {}
    for m in metrics:
        v = np.asarray(reps[m], dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v):
            lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
        else:
            lo = hi = float("nan")
        out[m] = Estimate(float(point[m]), float(lo), float(hi))
    return out


def flag_rate(s: np.ndarray, threshold: float) -> float:
    """Share of images flagged (``s >= threshold``); used for the shortcut controls (all real images)."""
    s = np.asarray(s, dtype=np.float64)
    return float((s >= threshold).mean()) if len(s) else float("nan")


def flag_rate_ci(s: np.ndarray, threshold: float, *, n_boot: int = 200, alpha: float = 0.05,
                 seed: int = 0) -> Estimate:
    """Flag rate with a bootstrap interval."""
    s = np.asarray(s, dtype=np.float64)
    f = (s >= threshold).astype(np.float64)
    if not len(f):
        return Estimate(float("nan"), float("nan"), float("nan"))
    if n_boot <= 0:
        return Estimate(float(f.mean()), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    reps = f[rng.integers(0, len(f), (n_boot, len(f)))].mean(axis=1)
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(f.mean()), float(lo), float(hi))


def roc_points(y: np.ndarray, s: np.ndarray, max_points: int = 200) -> list[tuple[float, float]]:
    """A thinned ROC curve [(fpr, tpr)] for plots (always keeps the end points)."""
    fpr, tpr, _ = roc_curve(y, s)
    if len(fpr) > max_points:
        keep = np.unique(np.r_[np.linspace(0, len(fpr) - 1, max_points).round().astype(int), len(fpr) - 1])
        fpr, tpr = fpr[keep], tpr[keep]
    return [(round(float(a), 4), round(float(b), 4)) for a, b in zip(fpr, tpr, strict=True)]
