"""Dzanic, Shah, Witherden, "Fourier Spectrum Discrepancies in Deep Network Generated Images", NeurIPS 2020
(no code released).

Re-implemented from the paper: the reduced (azimuthally averaged) power spectrum of the grayscale image, normalised
by its value at the lowest non-zero frequency; a power law ``E(k) = a k^-b`` is fitted (least squares in log-log)
to the high-frequency modes (the upper quarter of the radial range, ``k > 0.75 k_max``); the fitted decay ``b``, the
coefficient ``log a`` and the mean log residual of the fit are the features; a KNN classifier (k = 5, standardized
features) decides. Deviation: 256 x 256 standardized input; the paper used full-resolution 1024 px faces, which is
where it says the cue is strongest - down-resolution hurts it (their Sec. 5), as it does here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.baselines._common import azimuthal_spectrum, gray_stack
from benchmarks.detectors import BaseDetector, register_detector


def decay_features(images: Sequence[np.ndarray], size: int = 256, cutoff: float = 0.75) -> np.ndarray:
    """(n, 3): fitted decay b, log coefficient a, mean log residual of the high-frequency power-law fit."""
    x = gray_stack(images, size)
    out = np.zeros((len(x), 3))
    for i, im in enumerate(x):
        e = azimuthal_spectrum(im, log=False)
        e = e / max(e[1], 1e-20)
        k = np.arange(len(e), dtype=np.float64)
        m = k > cutoff * k[-1]
        lk, le = np.log(k[m]), np.log(np.maximum(e[m], 1e-30))
        slope, intercept = np.polyfit(lk, le, 1)
        out[i] = (-slope, intercept, np.mean(le - (slope * lk + intercept)) if m.sum() > 2 else 0.0)
    return out


@register_detector("dzanic")
class DzanicDetector(BaseDetector):
    """High-frequency Fourier decay fit + KNN (Dzanic et al., NeurIPS 2020)."""

    name = "dzanic"
    version = "1.0"

    def __init__(self, size: int = 256, n_neighbors: int = 5):
        self.size = size
        self.n_neighbors = n_neighbors

    def fit(self, images, labels) -> DzanicDetector:
        from sklearn.neighbors import KNeighborsClassifier

        f = decay_features(images, self.size)
        self.mean_, self.std_ = f.mean(axis=0), f.std(axis=0) + 1e-9
        self.X_ = (f - self.mean_) / self.std_
        self.y_ = np.asarray(labels).astype(int)
        self.clf_ = KNeighborsClassifier(n_neighbors=min(self.n_neighbors, len(self.y_))).fit(self.X_, self.y_)
        return self

    def predict_proba(self, images) -> np.ndarray:
        if not len(images):
            return np.zeros(0)
        f = (decay_features(images, self.size) - self.mean_) / self.std_
        return self.clf_.predict_proba(f)[:, list(self.clf_.classes_).index(1)].astype(np.float64)

    def _state(self) -> list:
        return [self.mean_, self.std_, self.X_, self.y_] if hasattr(self, "clf_") else []
