"""Durall et al., "Watch your Up-Convolution: CNN Based Generative Deep Neural Networks are Failing to Reproduce
Spectral Distributions", CVPR 2020 (code: cc-hpc-itwm/DeepFakeDetection; no weights shipped - "reproduce on the fly").

Re-implemented: grayscale image -> 2-D FFT -> 20 log10 |F| -> azimuthal average (1-D spectrum) -> min-max
normalisation per image -> logistic regression. Deviation: images are first standardized to 256 x 256 (center crop,
area/cubic resize) so every spectrum has 128 bins; the paper interpolates spectra of varying length instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.baselines._common import azimuthal_spectrum, gray_stack
from benchmarks.detectors import BaseDetector, register_detector


def durall_features(images: Sequence[np.ndarray], size: int = 256) -> np.ndarray:
    """(n, size/2) min-max normalised 1-D azimuthal log spectra."""
    x = gray_stack(images, size)
    feats = np.stack([azimuthal_spectrum(im) for im in x]) if len(x) else np.zeros((0, size // 2))
    lo, hi = feats.min(axis=1, keepdims=True), feats.max(axis=1, keepdims=True)
    return (feats - lo) / np.maximum(hi - lo, 1e-12)


@register_detector("durall")
class DurallDetector(BaseDetector):
    """1-D azimuthal power spectrum + logistic regression (Durall et al., CVPR 2020)."""

    name = "durall"
    version = "1.0"

    def __init__(self, size: int = 256, C: float = 1.0, seed: int = 0):
        self.size = size
        self.C = C
        self.seed = seed

    def fit(self, images, labels) -> DurallDetector:
        from sklearn.linear_model import LogisticRegression

        self.clf_ = LogisticRegression(C=self.C, max_iter=5000, random_state=self.seed)
        self.clf_.fit(durall_features(images, self.size), np.asarray(labels).astype(int))
        return self

    def predict_proba(self, images) -> np.ndarray:
        if not len(images):
            return np.zeros(0)
        return self.clf_.predict_proba(durall_features(images, self.size))[:, 1].astype(np.float64)

    def _state(self) -> list:
        return [self.clf_.coef_, self.clf_.intercept_] if hasattr(self, "clf_") else []
