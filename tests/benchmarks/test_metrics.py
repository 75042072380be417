"""benchmarks.metrics against scikit-learn and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks import metrics as M


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_ap_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.4 * y, 2)  # rounding makes ties
    assert M.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_tpr_at_fpr_hand_made():
    y = np.array([0] * 100 + [1] * 4)
    neg = np.linspace(0.0, 0.99, 100)  # highest real score 0.99, second highest 0.98
    s = np.r_[neg, [0.995, 0.985, 0.5, 0.2]]
    # 1% of 100 reals: one may be flagged -> threshold strictly above the 2nd highest real (0.98)
    assert M.tpr_at_fpr(y, s, 0.01) == pytest.approx(0.5)
    # 5%: strictly above the 6th highest real (0.94)
    assert M.tpr_at_fpr(y, s, 0.05) == pytest.approx(0.5)
    # none of the reals may be flagged at 0%: only the fake above every real counts
    assert M.tpr_at_fpr(y, s, 0.0) == pytest.approx(0.25)


def test_tpr_at_fpr_ties_never_exceed_target():
    y = np.array([0] * 10 + [1] * 10)
    s = np.r_[np.full(10, 0.5), np.full(10, 0.5)]
    assert M.tpr_at_fpr(y, s, 0.05) == 0.0


def test_eer_hand_made():
    assert M.eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert M.eer([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)
    # one real above one fake out of two each: FPR = FNR = 0.5 at the crossing
    assert M.eer([0, 0, 1, 1], [0.1, 0.7, 0.6, 0.9]) == pytest.approx(0.5)


def test_rates_and_balanced_accuracy():
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.3, 0.7, 0.4])
    assert M.rates_at(y, s, 0.5) == (0.5, 0.25)
    assert M.balanced_accuracy(y, s, 0.5) == pytest.approx(0.625)


def test_val_threshold_separates_separable_scores():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.01, 0.02, 0.03, 0.07, 0.08, 0.09])
    t = M.val_threshold(y, s)
    assert 0.03 < t <= 0.07
    assert M.balanced_accuracy(y, s, t) == 1.0


def test_ece_near_zero_when_perfectly_calibrated():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(int)
    assert M.ece(y, p) < 0.01
    assert M.ece(y, np.clip(p + 0.3, 0, 1)) > 0.15


def test_bootstrap_contains_point_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def width(n):
        y = np.r_[np.zeros(n), np.ones(n)].astype(int)
        s = np.r_[rng.normal(0, 1, n), rng.normal(1, 1, n)]
        est = M.bootstrap(y, s, n_boot=300, seed=1)
        for name in ("auc", "ap", "tpr@5%fpr", "ece"):
            e = est[name]
            assert e.lo <= e.value <= e.hi, name
        return est["auc"].hi - est["auc"].lo

    assert width(1000) < width(50) / 2


def test_flag_rate_ci():
    e = M.flag_rate_ci(np.r_[np.zeros(90), np.ones(10)], 0.5, n_boot=200)
    assert e.value == pytest.approx(0.1)
    assert e.lo <= 0.1 <= e.hi


def test_roc_points_span_the_square():
    pts = M.roc_points([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.3])
    assert pts[0] == (0.0, 0.0) and pts[-1] == (1.0, 1.0)


def test_auc_and_ece_are_defined_once_with_training():
    """Training's validation figures and the benchmarks use the same functions (forensics.metrics)."""
    from forensics import metrics as F

    assert M.roc_auc is F.roc_auc and M.ece is F.ece


@pytest.mark.parametrize("seed", [0, 1])
def test_ece_equals_the_per_bin_definition(seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 2, 500), rng.random(500)
    bins = np.minimum((p * 10).astype(int), 9)
    expected = sum((bins == b).mean() * abs(y[bins == b].mean() - p[bins == b].mean())
                   for b in range(10) if (bins == b).any())
    assert M.ece(y, p) == pytest.approx(expected, abs=1e-12)
