"""The edits on a 2-D array: inject a nodule-like lesion, remove one (CT-GAN style, 2-D); see the package README.

Both work on a float array in any units: HU for CT DICOM (``stored``), display values in [0, 1] otherwise. Only
pixels inside the returned mask change. ``inject`` / ``remove`` take a :class:`~forensics.records.MedicalImage` or
display pixels; ``tamper_array`` is the one entry that works in any units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from forensics.body import body_mask
from forensics.formatpath import to_gray

from .network import PATCH, load_inpainter

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
    """What one tampering did: the new values (same units and shape as the input), the mask of changed pixels."""

    values: np.ndarray
    mask: np.ndarray
    center: tuple[int, int]
    radius: float
    mode: str


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


def _inject(
    values: np.ndarray,
    at: tuple[float, float],
    radius: float | None = None,
    *,
    modality: str = "ct",
    units: str = "display",
    seed: int = 0,
) -> TamperResult:
    img, cx, cy, r, rng = _prepare(values, at, radius, seed)
    dist, theta = _disk_dist(img.shape, cx, cy)
    edge = max(0.7, 0.12 * r)
    rb = _irregular_radius(theta, r, rng)
    alpha = 1.0 / (1.0 + np.exp(np.clip((dist - rb) / edge, -30, 30)))
    mask = alpha > 2e-3
    alpha = np.where(mask, alpha, 0.0).astype(np.float32)

    base = _lowpass(img)
    res = img - base
    dyn = float(np.percentile(img, 99.5) - np.percentile(img, 0.5)) or 1.0
    shape_prof = np.clip(1.0 - (dist / (rb + 1e-6)) ** 2, 0, 1) ** 0.35  # solid, slightly domed
    texture = _smooth_field(img.shape, max(1.0, r / 4), rng)
    if modality == "ct":
        if units == "hu":
            level = rng.uniform(*_CT_SOFT_TISSUE_HU)
            tex_amp = 12.0
        else:
            level = _soft_tissue_level(img)
            tex_amp = 0.015 * dyn
        target = level + tex_amp * texture
        target = np.maximum(target, base)  # a nodule never darkens what it covers
        lesion = base + alpha * (target - base) * (0.85 + 0.15 * shape_prof)
    else:  # projection radiograph: an added opacity, brighter where thicker
        contrast = rng.uniform(0.10, 0.18) * dyn
        lesion = base + alpha * contrast * (0.55 + 0.45 * shape_prof) * (1 + 0.08 * texture)
    donor = _donor_residual(img, res, cx, cy, float(rb.max()), rng, ref=float(np.mean(lesion[alpha > 0.5])))
    # original grain fades out, donor grain fades in, with weights whose squares sum to one
    w_orig = 1.0 - alpha
    w_donor = np.sqrt(np.clip(1.0 - w_orig**2, 0, 1))
    out = lesion + w_orig * res + w_donor * donor
    out = np.where(mask, out, img)
    return TamperResult(out.astype(np.float32), mask, (int(round(cx)), int(round(cy))), r, "inject")


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


def _remove(
    values: np.ndarray,
    at: tuple[float, float],
    radius: float | None = None,
    *,
    seed: int = 0,
    net: Any = "default",
) -> TamperResult:
    img, cx, cy, r, rng = _prepare(values, at, radius, seed)
    if isinstance(net, str) and net == "default":
        net = load_inpainter()
    dist, theta = _disk_dist(img.shape, cx, cy)
    r_hole = 1.25 * r + 1.0
    rb = _irregular_radius(theta, r_hole, rng, rough=0.06)
    feather = max(1.5, 0.2 * r)
    hole = dist <= rb + feather
    fill = _network_fill(img, hole, cx, cy, float(rb.max() + feather), net)
    # Laplacian-style split: the network gives the coarse content, a donor region the grain and fine texture
    sigma_tex = max(1.2, 0.2 * r)
    base = _lowpass(img, sigma_tex)
    res = img - base
    fill_lp = _lowpass(fill, sigma_tex)
    donor = _donor_residual(img, res, cx, cy, float(rb.max() + feather), rng, ref=float(fill_lp[hole].mean()))
    w = np.clip((rb + feather - dist) / feather, 0, 1).astype(np.float32)
    w = w * w * (3 - 2 * w)  # smoothstep
    w_donor_noise = np.sqrt(np.clip(1.0 - (1.0 - w) ** 2, 0, 1))
    # blend low-pass parts linearly; the grain with square-summing weights, as in inject
    out = (1 - w) * base + w * fill_lp + (1 - w) * res + w_donor_noise * donor
    mask = w > 0
    out = np.where(mask, out, img)
    return TamperResult(out.astype(np.float32), mask, (int(round(cx)), int(round(cy))), r, "remove")


def tamper_array(
    values: np.ndarray,
    mode: str,
    at: tuple[float, float],
    radius: float | None = None,
    *,
    modality: str | None = None,
    units: str = "display",
    seed: int = 0,
    lo: float | None = None,
    hi: float | None = None,
) -> TamperResult:
    """Inject or remove on a 2-D float array in any units; values are clipped to [lo, hi] when given.

    Args:
        values: float (H, W): HU (``units="hu"``) or display values in [0, 1].
        mode: ``"inject"`` or ``"remove"``.
        at: (x, y) centre in pixels (column, row).
        radius: lesion radius in pixels (default: :func:`default_radius`).
        modality: ``"ct"`` or ``"xray"`` (default: guessed from the image, CT when ``units="hu"``).
        seed: makes the lesion shape, texture and donor choice reproducible.
    """
    values = np.asarray(values, dtype=np.float32)
    if modality is None:
        modality = "ct" if units == "hu" else guess_modality(np.clip(values, 0, 1))
    if mode not in ("inject", "remove"):
        raise ValueError(f"mode must be 'inject' or 'remove', got {mode!r}")
    if values.ndim != 2:
        raise ValueError(f"expected a (H, W) array, got shape {values.shape}")
    h, w = values.shape
    r = float(radius) if radius else float(default_radius(values.shape))
    # work on a window around the target (the donor search reaches ~4.5 radii): fast on big radiographs
    half = int(math.ceil(7.5 * r + 12))
    cx, cy = float(at[0]), float(at[1])
    if not (0 <= cx < w and 0 <= cy < h):
        raise ValueError(f"position {tuple(at)} is outside the image ({w} x {h})")
    x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
    x1, y1 = min(w, int(cx) + half + 1), min(h, int(cy) + half + 1)
    win = values[y0:y1, x0:x1]
    loc = (cx - x0, cy - y0)
    if mode == "inject":
        res = _inject(win, loc, r, modality=modality, units=units, seed=seed)
    else:
        res = _remove(win, loc, r, seed=seed)
    full, mask = values.copy(), np.zeros(values.shape, bool)
    full[y0:y1, x0:x1], mask[y0:y1, x0:x1] = res.values, res.mask
    res = TamperResult(full, mask, (int(round(cx)), int(round(cy))), r, mode)
    if lo is not None or hi is not None:
        res.values = np.where(res.mask, np.clip(res.values, lo, hi), res.values).astype(np.float32)
    return res


def _as_pixels(image: Any) -> tuple[np.ndarray, Any]:
    from forensics.records import MedicalImage

    if isinstance(image, MedicalImage):
        return np.asarray(image.pixels, dtype=np.float32), image
    return np.asarray(image, dtype=np.float32), None


def _apply_display(pixels: np.ndarray, at, radius, mode: str, modality: str | None, seed: int):
    rgb = pixels.ndim == 3
    g = to_gray(pixels)
    res = tamper_array(g, mode, at, radius, modality=modality, seed=seed, lo=0.0, hi=1.0)
    delta = np.where(res.mask, res.values - g, 0.0).astype(np.float32)
    out = np.clip(pixels + (delta[..., None] if rgb else delta), 0, 1).astype(np.float32)
    out = np.where(res.mask[..., None] if rgb else res.mask, out, pixels)
    return out, res


def inject(
    image: Any, at: tuple[float, float], radius: float | None = None, seed: int = 0, modality: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a nodule-like lesion into a chest CT slice or chest X-ray.

    Args:
        image: a :class:`~forensics.records.MedicalImage` or pixels float (H, W) / (H, W, 3) in [0, 1].
        at: (x, y) centre in pixels.
        radius: lesion radius in pixels (default from the pixel spacing or the image size).
        seed: reproducible shape, texture and donor.
        modality: ``"ct"`` or ``"xray"``; default from the DICOM modality, else guessed.

    Returns:
        (pixels float32 like the input in [0, 1], mask bool (H, W) of the pixels that may have changed).
    """
    return _display_edit(image, "inject", at, radius, seed, modality)


def remove(
    image: Any, at: tuple[float, float], radius: float | None = None, seed: int = 0, modality: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Remove what lies in a disk (a nodule), filling it with plausible tissue; arguments and return as `inject`."""
    return _display_edit(image, "remove", at, radius, seed, modality)


def _modality_of(img: Any) -> str | None:
    if img is None or not img.modality:
        return None
    code = str(img.modality).upper()
    return "ct" if code == "CT" else "xray" if code in ("CR", "DX", "RG") else None


def _display_edit(image, mode, at, radius, seed, modality):
    pixels, img = _as_pixels(image)
    if radius is None and img is not None:
        radius = default_radius(pixels.shape, img.spacing_mm)
    out, res = _apply_display(pixels, at, radius, mode, modality or _modality_of(img), seed)
    return out, res.mask


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
