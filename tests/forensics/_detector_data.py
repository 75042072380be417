"""Tiny synthetic 'real' and 'synthetic' images for detector tests: heavy-tailed texture vs smooth fields."""

from __future__ import annotations

import cv2
import numpy as np


def smooth_field(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    x = cv2.resize(rng.random((6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(0.2 + 0.6 * x, 0, 1).astype(np.float32)


def textured(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A smooth field plus sparse, sharp, heavy-tailed detail (like edges and film grain in a real X-ray)."""
    x = smooth_field(rng, size)
    spikes = (rng.random((size, size)) < 0.03) * rng.choice([-0.35, 0.35], (size, size))
    return np.clip(x + spikes + rng.normal(0, 0.02, (size, size)), 0, 1).astype(np.float32)


def toy_sets(n: int = 16, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [textured(rng) for _ in range(n)], [smooth_field(rng) for _ in range(n)]
