"""The fully convolutional patch network of the ``localization`` analyzer (torch imported on use)."""

from __future__ import annotations

import cv2
import numpy as np

STRIDE = 8  # one output cell per 8 x 8 input pixels
ANALYSIS_MAX_SIDE = 768  # longer images are reduced (area) to this long side before analysis


def to_analysis(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """(gray reduced so its long side is at most ANALYSIS_MAX_SIDE, the scale factor used)."""
    s = min(1.0, ANALYSIS_MAX_SIDE / max(gray.shape))
    if s < 1.0:
        gray = cv2.resize(gray, (round(gray.shape[1] * s), round(gray.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray, dtype=np.float32), s


IN_CHANNELS = 3


def net_input(gray: np.ndarray) -> np.ndarray:
    """(3, H, W): intensity centred on 0.5, the fine residual (gray − blur σ=1) ×16, the band (blur σ=1 − σ=3) ×8."""
    g = gray.astype(np.float32)
    b1 = cv2.GaussianBlur(g, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    b3 = cv2.GaussianBlur(g, (0, 0), 3.0, borderType=cv2.BORDER_REFLECT)
    return np.stack([g - 0.5, np.clip((g - b1) * 16.0, -4, 4), np.clip((b1 - b3) * 8.0, -4, 4)])


def valid_cells(gray: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool (h, w) on the logit grid: cells with at least half their pixels off the saturated background."""
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 2.0)
    inside = ((g > 0.02) & (g < 0.98)).astype(np.float32)
    return cv2.resize(inside, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) >= 0.5


def build(width: int = 16):
    """A fully convolutional net: (B, 3, H, W) -> logits (B, 1, H/8, W/8); receptive field ~60 px; GroupNorm (no
    batch statistics, so a whole image at inference behaves as the crops did in training)."""
    import torch
    from torch import nn

    class LocalNet(nn.Module):
        def __init__(self, width: int):
            super().__init__()
            w = width

            def block(cin, cout, s=1, d=1):
                return nn.Sequential(
                    nn.Conv2d(cin, cout, 3, s, padding=d, dilation=d), nn.GroupNorm(4, cout), nn.SiLU()
                )

            self.body = nn.Sequential(
                block(IN_CHANNELS, w), block(w, w),
                block(w, 2 * w, s=2), block(2 * w, 2 * w),
                block(2 * w, 3 * w, s=2), block(3 * w, 3 * w),
                block(3 * w, 4 * w, s=2), block(4 * w, 4 * w, d=2), block(4 * w, 4 * w, d=2),
                nn.Conv2d(4 * w, 1, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    return LocalNet(width)
