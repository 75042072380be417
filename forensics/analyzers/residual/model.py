"""``RealModel``: one-class models of real images' residual features, one per modality group, stored as JSON.

Each group holds a robust feature scaling (median / IQR), a Gaussian fitted on real images only (Ledoit-Wolf
shrinkage, or a minimum-covariance-determinant fit) and the calibration of its statistic: the negative log
likelihood (NLL) of the features, i.e. half the squared Mahalanobis distance plus a constant.

Calibration needs no fakes. On held-out *real* images (through the same random format path) the NLL's 90th and
99th percentiles fix an exponential tail, ``P(real NLL > s) = 0.1 * exp(-(s - q90) / beta)`` with beta chosen so
the tail passes through ``real_tail`` (1%) at q99. The score is ``sigmoid(ln 4 * log10(real_tail / tail))``: 0.5
where only ``real_tail`` of real images lie beyond, 0.8 one decade further out, capped at ``max_score`` (below
the fusion's `high`). Below 0.5 the analyzer abstains (no score): looking typical is no evidence of being real.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from forensics.analyzers.residual.features import FEATURE_NAMES, FEATURES_VERSION

FORMAT_VERSION = 1
#: Share of held-out real images allowed to reach score 0.5, and the score's ceiling (under the `high` level).
REAL_TAIL = 0.01
MAX_SCORE = 0.89
#: Score gain per decade of tail probability beyond REAL_TAIL (ln 4: one decade further out is 0.8).
_GAIN = math.log(4.0)
_QUANTILE_GRID = np.linspace(0.0, 1.0, 201)


def _robust_scale(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    center = np.median(F, axis=0)
    q25, q75 = np.quantile(F, [0.25, 0.75], axis=0)
    scale = (q75 - q25) / 1.349  # IQR of a unit Gaussian
    fallback = F.std(axis=0)
    scale = np.where(scale > 1e-9, scale, np.where(fallback > 1e-9, fallback, 1.0))
    return center, scale


def fit_group(features: np.ndarray, calibration: np.ndarray, *, estimator: str = "ledoit_wolf",
              real_tail: float = REAL_TAIL, seed: int = 0) -> dict[str, Any]:
    """The JSON-ready model of one modality group.

    Args:
        features: float64 (n, d) of real images (format-path variants) to fit the Gaussian on.
        calibration: float64 (m, d) of *other* real images (other sources, also format-path variants) whose NLL
            distribution calibrates the score.
        estimator: ``"ledoit_wolf"`` (shrunk covariance) or ``"mcd"`` (sklearn MinCovDet, robust to outliers).
        real_tail: share of calibration images allowed to reach score 0.5.
    """
    F = np.asarray(features, dtype=np.float64)
    if F.shape[0] < F.shape[1] + 2:
        raise ValueError(f"need at least {F.shape[1] + 2} real feature vectors to fit, got {F.shape[0]}")
    center, scale = _robust_scale(F)
    Z = (F - center) / scale
    if estimator == "ledoit_wolf":
        from sklearn.covariance import LedoitWolf

        est = LedoitWolf().fit(Z)
    elif estimator == "mcd":
        from sklearn.covariance import MinCovDet

        est = MinCovDet(random_state=seed, support_fraction=0.9).fit(Z)
    else:
        raise ValueError(f"estimator must be 'ledoit_wolf' or 'mcd', got {estimator!r}")
    cov = est.covariance_ + 1e-6 * np.eye(Z.shape[1])
    group = {"center": center.tolist(), "scale": scale.tolist(), "mean": est.location_.tolist(),
             "precision": np.linalg.inv(cov).tolist(), "n_fit": int(F.shape[0])}
    s = nll(group, calibration)
    if s.size < 20:
        raise ValueError(f"need at least 20 calibration vectors, got {s.size}")
    q90, q99 = (float(v) for v in np.quantile(s, [0.9, 1.0 - real_tail]))
    group["calibration"] = {
        "real_tail": real_tail, "q90": q90, "q_tail": q99,
        "beta": max((q99 - q90) / math.log(0.1 / real_tail), 1e-6),
        "quantiles": np.quantile(s, _QUANTILE_GRID).tolist(), "n_calibration": int(s.size),
    }
    return group


def nll(group: dict[str, Any], features: np.ndarray) -> np.ndarray:
    """Half the squared Mahalanobis distance of each feature vector from the group's real images, float64 (n,)."""
    F = np.atleast_2d(np.asarray(features, dtype=np.float64))
    Z = (F - np.asarray(group["center"])) / np.asarray(group["scale"]) - np.asarray(group["mean"])
    return 0.5 * np.einsum("ij,jk,ik->i", Z, np.asarray(group["precision"]), Z)


def tail_probability(group: dict[str, Any], s: np.ndarray) -> np.ndarray:
    """Estimated share of real images with an NLL above ``s``: empirical up to the 90th percentile, the fitted
    exponential tail beyond (extrapolates past the largest calibration value)."""
    cal = group["calibration"]
    s = np.asarray(s, dtype=np.float64)
    empirical = 1.0 - np.interp(s, np.asarray(cal["quantiles"]), _QUANTILE_GRID)
    tail = 0.1 * np.exp(-(s - cal["q90"]) / cal["beta"])
    return np.where(s > cal["q90"], np.minimum(tail, 0.1), np.maximum(empirical, 0.1))


def score_from_tail(tail: np.ndarray, real_tail: float = REAL_TAIL, max_score: float = MAX_SCORE) -> np.ndarray:
    """The calibrated score of a tail probability: 0.5 at ``real_tail``, rising a decade at a time, capped."""
    z = _GAIN * np.log10(real_tail / np.maximum(np.asarray(tail, dtype=np.float64), 1e-300))
    return np.minimum(1.0 / (1.0 + np.exp(-z)), max_score)


class RealModel:
    """The per-group one-class models and their calibration (what ``residual/model.json`` holds)."""

    def __init__(self, groups: dict[str, dict[str, Any]], modalities: dict[str, list[str]],
                 info: dict[str, Any] | None = None, max_score: float = MAX_SCORE,
                 colour_groups: list[str] | None = None):
        self.groups = groups
        self.modalities = modalities
        self.info = info or {}
        self.max_score = max_score
        self.colour_groups = list(colour_groups or [])

    def group_names(self, modality: str | None, colour: bool | None = None) -> list[str]:
        """Groups an image is compared with: the group trained on its DICOM ``modality``; else, for a grey image
        (``colour`` False), the groups of grey modalities - a grey X-ray is no dermoscopy photograph, and the
        widest group must not absorb every image; else all."""
        named = [g for g in self.groups if modality and modality in self.modalities.get(g, [])]
        if named:
            return named
        grey = [g for g in self.groups if g not in self.colour_groups]
        return grey if colour is False and grey else list(self.groups)

    def assess(self, features: np.ndarray, modality: str | None = None, colour: bool | None = None) -> dict[str, Any]:
        """The most typical group's verdict on one feature vector: {group, nll, tail, score, z}. ``score`` is the
        calibrated score (>= 0.5 only when real images rarely look like this), ``z`` the robust z-scores."""
        best = None
        for name in self.group_names(modality, colour):
            g = self.groups[name]
            s = float(nll(g, features)[0])
            tail = float(tail_probability(g, s))
            if best is None or tail > best["tail"]:
                best = {"group": name, "nll": s, "tail": tail}
        g = self.groups[best["group"]]
        best["score"] = float(score_from_tail(best["tail"], g["calibration"]["real_tail"], self.max_score))
        best["z"] = ((np.asarray(features, dtype=np.float64) - np.asarray(g["center"])) / np.asarray(g["scale"])
                     - np.asarray(g["mean"]))
        return best

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "features_version": FEATURES_VERSION,
                "feature_names": list(FEATURE_NAMES), "max_score": self.max_score, "modalities": self.modalities,
                "colour_groups": self.colour_groups,
                "groups": self.groups, "info": self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RealModel:
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError("residual model written by a newer medaudit; upgrade to read it")
        if d.get("features_version") != FEATURES_VERSION or list(d.get("feature_names", [])) != list(FEATURE_NAMES):
            raise ValueError("residual model was fitted on other features; retrain it (medaudit train residual)")
        return cls(d["groups"], d.get("modalities", {}), d.get("info", {}), float(d.get("max_score", MAX_SCORE)),
                   d.get("colour_groups", []))

    def save_json(self, path: str | Path) -> Path:
        from forensics.atomic import write_text

        return write_text(path, json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load_json(cls, path: str | Path) -> RealModel:
        return cls.from_dict(json.loads(Path(path).read_text()))
