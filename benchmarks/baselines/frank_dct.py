"""Frank et al., "Leveraging Frequency Analysis for Deep Fake Image Recognition", ICML 2020
(code: RUB-SysSec/GANDCTAnalysis).

Re-implemented: grayscale -> 2-D DCT-II (orthonormal) -> log(|DCT| + eps) -> per-coefficient standardisation with
the training set's mean and standard deviation -> an L2-regularised logistic regression (the paper's linear
baseline; it also reports ridge regression and CNNs on the DCT). Deviation: 128 x 128 grayscale input (the paper's
LSUN/FFHQ images are 128 or 256 px, colour per channel).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.baselines._common import gray_stack
from benchmarks.detectors import BaseDetector, register_detector


def log_dct(images: Sequence[np.ndarray], size: int = 128) -> np.ndarray:
    """(n, size*size) log |DCT-II| of the standardized grayscale images."""
    from scipy.fft import dctn

    x = gray_stack(images, size)
    if not len(x):
        return np.zeros((0, size * size))
    d = dctn(x.astype(np.float64), type=2, axes=(1, 2), norm="ortho")
    return np.log(np.abs(d) + 1e-6).reshape(len(x), -1)


@register_detector("frank_dct")
class FrankDCTDetector(BaseDetector):
    """log |2-D DCT| + logistic regression (Frank et al., ICML 2020)."""

    name = "frank_dct"
    version = "1.0"

    def __init__(self, size: int = 128, C: float = 0.01, seed: int = 0):
        self.size = size
        self.C = C
        self.seed = seed

    def fit(self, images, labels) -> FrankDCTDetector:
        from sklearn.linear_model import LogisticRegression

        f = log_dct(images, self.size)
        self.mean_, self.std_ = f.mean(axis=0), f.std(axis=0) + 1e-6
        self.clf_ = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
        self.clf_.fit((f - self.mean_) / self.std_, np.asarray(labels).astype(int))
        return self

    def predict_proba(self, images) -> np.ndarray:
        if not len(images):
            return np.zeros(0)
        f = (log_dct(images, self.size) - self.mean_) / self.std_
        return self.clf_.predict_proba(f)[:, 1].astype(np.float64)

    def _state(self) -> list:
        return [self.mean_, self.std_, self.clf_.coef_, self.clf_.intercept_] if hasattr(self, "clf_") else []
