"""The pieces every edit shares: geometry of a lesion outline, low-pass splits, borrowing a neighbour's grain, the
in-painting network's fill, the result record. The edits themselves are the registered methods (``methods.py``).

Everything works on a float array in any units: HU for CT DICOM (``stored``), display values in [0, 1] otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from forensics.body import body_mask
from forensics.formatpath import to_gray

from .network import PATCH

#: Soft-tissue HU range a CT nodule's density is drawn from.
_CT_SOFT_TISSUE_HU = (-40.0, 45.0)


def _lowpass(x: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    return cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def guess_modality(pixels: np.ndarray) -> str:
    """``"ct"`` or ``"xray"`` for a display image in [0, 1]: axial CT slices have a black field around the body."""
    g = to_gray(pixels)
    h, w = g.shape
    k = max(2, min(h, w) // 16)
    corners = np.concatenate([g[:k, :k].ravel(), g[:k, -k:].ravel(), g[-k:, :k].ravel(), g[-k:, -k:].ravel()])
    dark = float(np.mean(g < 0.05))
    return "ct" if float(np.median(corners)) < 0.04 and dark > 0.25 else "xray"


def default_radius(shape: tuple[int, ...], spacing_mm: tuple[float, float] | None = None) -> int:
    """A typical nodule radius in pixels: 5 mm when the spacing is known, else 2 % of the short side (>= 4 px)."""
    if spacing_mm:
        return int(max(3, round(5.0 / float(min(spacing_mm)))))
    return int(max(4, round(0.02 * min(shape[:2]))))


def _disk_dist(shape: tuple[int, int], cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    return np.hypot(dx, dy), np.arctan2(dy, dx)


def _irregular_radius(theta: np.ndarray, r: float, rng: np.random.Generator, rough: float = 0.12) -> np.ndarray:
    """r(θ) = r (1 + Σ_k a_k cos(kθ + φ_k)): a lobulated outline."""
    out = np.ones_like(theta)
    for k in range(2, 7):
        out += rng.normal(0, rough / k**0.7) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return r * np.clip(out, 0.6, 1.4)


def _donor_residual(
    img: np.ndarray, res: np.ndarray, cx: float, cy: float, reach: float, rng: np.random.Generator, ref: float
) -> np.ndarray:
    """The residual field shifted so a neighbouring region's grain lands on the target disk.

    Among 12 directions at distance ~2.2 * reach, the donor whose mean intensity is closest to ``ref`` wins, so the
    borrowed noise comes from similar tissue (noise often depends on intensity).
    """
    h, w = img.shape
    best, best_cost = None, np.inf
    dist = 2.2 * reach + 2
    rr = int(math.ceil(reach))
    for a in rng.permutation(12) * (2 * np.pi / 12):
        for scale in (1.0, 1.6):
            dx, dy = int(round(math.cos(a) * dist * scale)), int(round(math.sin(a) * dist * scale))
            x0, y0 = int(round(cx)) + dx, int(round(cy)) + dy
            if not (rr <= x0 < w - rr and rr <= y0 < h - rr):
                continue
            cost = abs(float(img[y0 - rr : y0 + rr + 1, x0 - rr : x0 + rr + 1].mean()) - ref)
            if cost < best_cost:
                best, best_cost = (dx, dy), cost
    if best is None:
        # tiny image: a random permutation of the ring's residual values keeps at least the noise level
        return rng.permutation(res.ravel()).reshape(res.shape)
    dx, dy = best
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    # output(y, x) = res(y + dy, x + dx)
    return cv2.warpAffine(res, m, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def _smooth_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    f = _lowpass(rng.standard_normal(shape).astype(np.float32), max(sigma, 0.5))
    return f / (f.std() + 1e-8)


@dataclass
class TamperResult:
    """What one tampering did: the new values (same units and shape as the input), the mask of changed pixels, the
    method's kind (``mode``: ``"inject"`` or ``"remove"``), its registered name and what it chose (``details``, e.g.
    the decoder that made the pixels)."""

    values: np.ndarray
    mask: np.ndarray
    center: tuple[int, int]
    radius: float
    mode: str
    method: str = ""
    details: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- the edits


def _crop_box(cx: float, cy: float, half: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = shape
    x0, y0 = int(round(cx)) - half, int(round(cy)) - half
    x0, y0 = min(max(0, x0), max(0, w - 2 * half)), min(max(0, y0), max(0, h - 2 * half))
    return x0, y0, min(w, x0 + 2 * half), min(h, y0 + 2 * half)


def _network_fill(img: np.ndarray, hole: np.ndarray, cx: float, cy: float, r_hole: float, net) -> np.ndarray:
    """Low-frequency fill of ``hole`` (bool) predicted from the surroundings; the image elsewhere."""
    half = int(max(16, math.ceil(2.0 * r_hole)))
    x0, y0, x1, y1 = _crop_box(cx, cy, half, img.shape)
    crop, m = img[y0:y1, x0:x1], hole[y0:y1, x0:x1].astype(np.float32)
    known = m < 0.5
    if known.sum() < 16:
        return img.copy()
    mu = float(crop[known].mean())
    sd = float(crop[known].std()) + 1e-6 + 1e-3 * float(np.abs(crop).max() + 1e-6)
    z = (crop - mu) / sd
    out = img.copy()
    if net is None:
        # no trained weights: OpenCV's Telea in-painting on an 8-bit view
        lo, hi = float(z.min()), float(z.max())
        u8 = np.clip((z - lo) / (hi - lo + 1e-8) * 255, 0, 255).astype(np.uint8)
        f = cv2.inpaint(u8, (m > 0.5).astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / 255
        fill = f * (hi - lo) + lo
    else:
        import torch

        zs = cv2.resize(z, (PATCH, PATCH), interpolation=cv2.INTER_AREA)
        ms = (cv2.resize(m, (PATCH, PATCH), interpolation=cv2.INTER_AREA) > 0.05).astype(np.float32)
        inp = torch.from_numpy(np.stack([zs * (1 - ms), ms])[None])
        with torch.no_grad():
            pred = net(inp)[0, 0].numpy()
        fill = cv2.resize(pred, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
    out[y0:y1, x0:x1] = fill * sd + mu
    return out


def _prepare(
    values: np.ndarray, at: tuple[float, float], radius: float | None, seed: int
) -> tuple[np.ndarray, float, float, float, np.random.Generator]:
    img = np.asarray(values, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a (H, W) array, got shape {img.shape}")
    h, w = img.shape
    cx, cy = float(at[0]), float(at[1])
    if not (0 <= cx < w and 0 <= cy < h):
        raise ValueError(f"position {at} is outside the image ({w} x {h})")
    r = float(radius) if radius else float(default_radius(img.shape))
    if r < 1.5:
        raise ValueError(f"radius must be at least 1.5 px, got {r}")
    return img, cx, cy, r, np.random.default_rng(seed)


def _soft_tissue_level(img: np.ndarray) -> float:
    """Soft-tissue brightness of a windowed CT slice: the median of the body (pixels above Otsu's threshold)."""
    lo, hi = float(img.min()), float(img.max())
    u8 = np.clip((img - lo) / (hi - lo + 1e-8) * 255, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    body = img[u8 > t]
    if body.size == 0:
        return hi
    # bone pulls the median up; the 40th percentile of the bright class sits in muscle / organs
    return float(np.percentile(body, 40))


def random_body_point(gray: np.ndarray, radius: float, rng: np.random.Generator) -> tuple[int, int]:
    """A random (x, y) inside the body, at least ~2 radii from its edge and from the image border."""
    m = body_mask(gray).astype(np.uint8)
    k = int(2 * radius + 1) | 1
    inner = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    b = int(2 * radius + 2)
    inner[:b], inner[-b:], inner[:, :b], inner[:, -b:] = 0, 0, 0, 0
    ys, xs = np.nonzero(inner)
    if xs.size == 0:
        h, w = m.shape
        return w // 2, h // 2
    i = int(rng.integers(xs.size))
    return int(xs[i]), int(ys[i])
