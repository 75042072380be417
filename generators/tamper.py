"""Local tampering of a real image, CT-GAN style (2-D): inject a nodule-like lesion or remove one.

CT-GAN (Mirsky et al., USENIX Security 2019) cuts a cuboid around the target, in-paints it with a conditional GAN
and touches up the noise. This is the 2-D, CPU-sized version for one chest CT slice or one chest X-ray:

* ``remove``: a small in-painting network (:class:`InpaintNet`, trained here on 32 px patches of real chest CT and
  CXR, L1 loss) predicts the low-frequency content of a disk from its surroundings; fine texture is then borrowed
  from a neighbouring donor region of the same image (its high-pass residual), so the filled disk has the noise
  level and grain of the tissue around it.
* ``inject``: a synthetic nodule prior (a soft blob with an irregular, lobulated edge and soft-tissue density: about
  0 HU on CT, a brighter opacity on X-rays) is alpha-blended onto the low-pass image, and the high-pass residual is
  re-mixed (original outside, donor texture inside, weights whose squares sum to one) so that the local noise level
  does not change across the lesion.

Both work on a float array in any units: HU for CT DICOM (``stored``), display values in [0, 1] otherwise. Only
pixels inside the returned mask change. ``tamper_file`` reads a file, tampers it and writes PNG or DICOM; DICOM
output keeps the original dataset (UIDs, patient, study) and rewrites PixelData with the original rescale, unless
``stamp`` is on, in which case the output carries the provenance watermark and labels (kind ``tampered``).

Train the bundled in-painting weights::

    python -m generators.tamper --data ../shared/data --out generators/weights/tamper_inpaint --budget 300
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.body import body_mask

GENERATOR_NAME = "tamper"
VERSION = "1.0"
PATCH = 32
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "tamper_inpaint"
_CT_SOFT_TISSUE_HU = (-40.0, 45.0)

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "InpaintNet",
    "TamperResult",
    "default_radius",
    "guess_modality",
    "inject",
    "is_holdout",
    "load_inpainter",
    "body_mask",
    "random_body_point",
    "remove",
    "tamper_array",
    "tamper_bytes",
    "tamper_file",
    "train_inpainter",
]


def is_holdout(name: str) -> bool:
    """The fixed 20 % of data files never used to train tamper or localization weights (benchmarks use them)."""
    return zlib.crc32(os.path.basename(str(name)).encode()) % 5 == 0


# --------------------------------------------------------------------------------------------- the network


def _net_cls():
    import torch
    from torch import nn

    class InpaintNet(nn.Module):
        """Masked patch (normalized) + mask (B, 2, 32, 32) -> filled patch (B, 1, 32, 32).

        A small U-Net: 32 -> 16 -> 8 px with dilated convolutions at the bottom (the receptive field covers the
        whole patch), two skips; about 0.1 M parameters.
        """

        def __init__(self, width: int = 16):
            super().__init__()
            w = width
            act = nn.SiLU

            def conv(cin, cout, s=1, d=1):
                return nn.Sequential(nn.Conv2d(cin, cout, 3, s, padding=d, dilation=d), act())

            self.enc1 = conv(2, w)
            self.enc2 = nn.Sequential(conv(w, 2 * w, s=2), conv(2 * w, 2 * w))
            self.enc3 = conv(2 * w, 3 * w, s=2)
            self.mid = nn.Sequential(*[conv(3 * w, 3 * w, d=d) for d in (1, 2, 4, 1)])
            self.up3 = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), conv(3 * w, 2 * w)
            )
            self.dec2 = conv(4 * w, 2 * w)
            self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), conv(2 * w, w))
            self.dec1 = nn.Sequential(conv(2 * w, w), nn.Conv2d(w, 1, 3, padding=1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e1 = self.enc1(x)
            e2 = self.enc2(e1)
            m = self.mid(self.enc3(e2))
            d2 = self.dec2(torch.cat([self.up3(m), e2], 1))
            out = self.dec1(torch.cat([self.up2(d2), e1], 1))
            known, mask = x[:, :1], x[:, 1:2]
            return known * (1 - mask) + out * mask

    return InpaintNet


def InpaintNet(width: int = 16):  # noqa: N802 - a factory that reads like the class it builds (torch imported late)
    return _net_cls()(width)


_CACHE: dict[str, Any] = {}


def load_inpainter(weights_dir: str | os.PathLike | None = None):
    """The trained :class:`InpaintNet` (eval mode, CPU) from ``weights_dir``, or None when the weights are missing."""
    d = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    key = str(d)
    if key in _CACHE:
        return _CACHE[key]
    wf, cf = d / "weights.safetensors", d / "config.json"
    if not (wf.is_file() and cf.is_file()):
        return None
    import torch
    from safetensors.torch import load_file

    cfg = json.loads(cf.read_text())
    net = InpaintNet(**cfg.get("model", {}))
    state = {k: v.float() for k, v in load_file(str(wf)).items()}
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    _CACHE[key] = net
    del torch
    return net


# ------------------------------------------------------------------------------------------ small helpers


def _gray(pixels: np.ndarray) -> np.ndarray:
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if x.shape[2] >= 3 else x[..., 0]
    return x


def _lowpass(x: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    return cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def guess_modality(pixels: np.ndarray) -> str:
    """``"ct"`` or ``"xray"`` for a display image in [0, 1]: axial CT slices have a black field around the body."""
    g = _gray(pixels)
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
    g = _gray(pixels)
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


# --------------------------------------------------------------------------------------------- files


def _itxt(keyword: str, text: str) -> bytes:
    data = keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    return struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data) & 0xFFFFFFFF)


def _png(pixels: np.ndarray, bits: int, info: dict[str, Any] | None) -> bytes:
    """PNG bytes; with ``info``, the medaudit provenance iTXt and an XMP packet (composite source type)."""
    from forensics import provenance as P

    x = np.clip(pixels, 0, 1)
    q = np.round(x * (255 if bits == 8 else 65535)).astype(np.uint8 if bits == 8 else np.uint16)
    if q.ndim == 3:
        q = q[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(q))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    png = buf.tobytes()
    if info is None:
        return png
    from .provenance import xmp_packet

    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    xmp = xmp_packet(info, source_type=P.COMPOSITE_SOURCE_TYPE).replace(
        "synthetic image generated by", "real image locally altered by"
    )
    extra = _itxt(P.PNG_KEYWORD, json.dumps(info, sort_keys=True)) + _itxt(P.XMP_KEYWORD, xmp)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _linear_display_map(stored: np.ndarray, pixels: np.ndarray) -> tuple[float, float]:
    """(a, b) with pixels ≈ a * stored + b on the unsaturated pixels (the loader's window is linear)."""
    s, p = stored.astype(np.float64).ravel(), pixels.astype(np.float64).ravel()
    keep = (p > 0.01) & (p < 0.99)
    if keep.sum() < 16 or np.ptp(s[keep]) == 0:
        lo, hi = float(s.min()), float(s.max())
        return 1.0 / max(hi - lo, 1e-6), -lo / max(hi - lo, 1e-6)
    a, b = np.polyfit(s[keep], p[keep], 1)
    return float(a), float(b)


def _dicom_frame_info(ds) -> tuple[np.ndarray, float, float, int, int]:
    arr = ds.pixel_array
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return arr, slope, intercept, lo, hi


def tamper_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    mode: str = "inject",
    at: tuple[float, float] = (0, 0),
    radius: float | None = None,
    stamp: bool = True,
    seed: int = 0,
    modality: str | None = None,
) -> dict[str, Any]:
    """Tamper one image file and write the result (PNG or DICOM by ``dst``'s suffix), atomically.

    DICOM output needs DICOM input: the original dataset is kept (patient, study, series, SOP instance) and only
    PixelData changes, written with the original rescale slope / intercept and pixel representation. With
    ``stamp`` (the default) the whole image gets the medaudit watermark and the labels of a composite: PNG iTXt +
    XMP ``compositeWithTrainedAlgorithmicMedia``; DICOM ImageType DERIVED\\SECONDARY, a new SOPInstanceUID and the
    medaudit private block with kind ``tampered``. ``stamp=False`` writes the unlabelled fake (benchmarks).

    Args:
        src: input image (anything ``forensics.io.load`` reads).
        dst: output path; ``.dcm`` / ``.dicom`` -> DICOM, anything else -> PNG.
        mode: ``"inject"`` or ``"remove"``.
        at: (x, y) centre in pixels (column, row).
        radius: lesion radius in pixels; default 5 mm from the pixel spacing, else 2 % of the short side.
        stamp: write the provenance watermark and labels.
        seed: reproducible lesion and texture.
        modality: ``"ct"`` or ``"xray"``; default from the DICOM modality, else guessed from the pixels.

    Returns:
        {"path", "mode", "at", "radius", "mask_pixels", "bbox" [x0, y0, x1, y1], "format", "stamped", "modality"}.

    Raises:
        forensics.errors.InputError: the input cannot be read; ValueError: bad arguments (DICOM output from a
        non-DICOM input, a position outside the image, an unknown mode).
    """
    from forensics.io import load

    from .base import atomic_write_bytes

    dst = Path(dst)
    fmt = "dicom" if dst.suffix.lower() in (".dcm", ".dicom") else "png"
    data, info, _mask = tamper_bytes(load(src), fmt, mode, at, radius, stamp=stamp, seed=seed, modality=modality)
    atomic_write_bytes(dst, data)
    return {"path": str(dst), **info}


def tamper_bytes(
    img: Any,
    fmt: str,
    mode: str,
    at: tuple[float, float],
    radius: float | None = None,
    *,
    stamp: bool = True,
    seed: int = 0,
    modality: str | None = None,
) -> tuple[bytes, dict[str, Any], np.ndarray]:
    """Tamper a loaded :class:`~forensics.records.MedicalImage` and encode it as ``fmt`` (``png`` or ``dicom``).

    Returns:
        (file bytes, info dict as ``tamper_file`` returns it without ``path``, mask bool (H, W) of changed pixels).
    """
    if fmt not in ("png", "dicom"):
        raise ValueError(f"output format must be png or dicom, got {fmt!r}")
    if fmt == "dicom" and img.format != "dicom":
        raise ValueError("DICOM output needs a DICOM input (the original dataset is what is kept)")
    if mode not in ("inject", "remove"):
        raise ValueError(f"mode must be 'inject' or 'remove', got {mode!r}")
    if radius is None:
        radius = default_radius(img.pixels.shape, img.spacing_mm)
    mod = modality or _modality_of(img)
    info = {
        "generator": GENERATOR_NAME,
        "version": VERSION,
        "seed": int(seed),
        "kind": "tampered",
        "mode": mode,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tool": "medaudit",
    }

    use_stored = img.format == "dicom" and img.stored is not None and img.pixels.ndim == 2 and img.frames == 1
    new_stored = None
    if use_stored:
        stored = np.asarray(img.stored, dtype=np.float32)
        is_ct = mod == "ct" or str(img.modality or "").upper() == "CT"
        mod = mod or ("ct" if is_ct else guess_modality(img.pixels))
        a, b = _linear_display_map(stored, img.pixels)
        # MONOCHROME1 / inverted windows: edit on the display's polarity (a lesion is brighter on screen)
        sign = 1.0 if a >= 0 else -1.0
        res = tamper_array(
            sign * stored,
            mode,
            at,
            radius,
            modality=mod,
            units="hu" if is_ct and sign > 0 else "display",
            seed=seed,
            lo=float((sign * stored).min()),
            hi=float((sign * stored).max()),
        )
        new_stored = sign * res.values
        if stamp:
            from forensics.watermark import embed

            disp = (a * new_stored + b).astype(np.float32)
            new_stored = new_stored + (embed(np.clip(disp, 0, 1)) - np.clip(disp, 0, 1)) / a
        pixels = np.clip(a * new_stored + b, 0, 1).astype(np.float32)
    else:
        mod = mod or guess_modality(img.pixels)
        pixels, res = _apply_display(np.asarray(img.pixels, dtype=np.float32), at, radius, mode, mod, seed)
        if stamp:
            from .provenance import stamp as _stamp

            pixels = _stamp(pixels, generator=GENERATOR_NAME, version=VERSION, seed=seed, kind="tampered")

    if fmt == "dicom":
        data = _dicom_bytes(img, new_stored, pixels, info if stamp else None)
    else:
        bits = 16 if (img.bit_depth > 8 and pixels.ndim == 2) else 8
        data = _png(pixels, bits, info if stamp else None)
    ys, xs = np.nonzero(res.mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if xs.size else None
    out = {
        "mode": mode,
        "at": [int(round(at[0])), int(round(at[1]))],
        "radius": float(radius),
        "mask_pixels": int(res.mask.sum()),
        "bbox": bbox,
        "format": fmt,
        "stamped": bool(stamp),
        "modality": mod,
    }
    return data, out, res.mask


def _dicom_bytes(img, new_stored: np.ndarray | None, pixels: np.ndarray, info: dict[str, Any] | None) -> bytes:
    """The original dataset with new PixelData (original rescale); stamped: derived labels and a new SOP UID."""
    from io import BytesIO

    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from forensics import provenance as P

    ds = pydicom.dcmread(BytesIO(img.raw), force=True)
    arr, slope, intercept, lo, hi = _dicom_frame_info(ds)
    if new_stored is not None:
        raw = np.round((new_stored.astype(np.float64) - intercept) / slope)
    else:  # no modality values (e.g. RGB): write the display pixels on the stored scale
        raw = np.round(np.clip(pixels, 0, 1) * (arr.max() if arr.max() > 0 else hi))
    raw = np.clip(raw, lo, hi).astype(arr.dtype)
    if raw.shape != arr.shape:
        raise ValueError(f"cannot write pixels {raw.shape} into a dataset with frames of shape {arr.shape}")
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.ascontiguousarray(raw).tobytes()
    if info is not None:
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.DerivationDescription = f"locally altered ({info['mode']}) by medaudit {GENERATOR_NAME} {VERSION}"
        block = ds.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR, create=True)
        for key, offset in P.DICOM_ELEMENTS.items():
            block.add_new(offset, "LO", str(info.get(key, ""))[:64])
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- training


def _list_images(root: Path, folders: tuple[str, ...]) -> list[Path]:
    out = []
    for f in folders:
        d = root / f
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return out


def _load_training_images(root: Path, folders: tuple[str, ...], max_side: int = 512) -> list[np.ndarray]:
    ims = []
    for p in _list_images(root, folders):
        if is_holdout(p.name):
            continue
        im = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if im is None:
            continue
        s = max_side / max(im.shape)
        if s < 1:
            im = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        ims.append(im.astype(np.float32) / 255.0)
    return ims


def _training_batch(ims: list[np.ndarray], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ms = np.zeros((n, 1, PATCH, PATCH), np.float32), np.zeros((n, 1, PATCH, PATCH), np.float32)
    yy, xx = np.mgrid[0:PATCH, 0:PATCH].astype(np.float32)
    i = 0
    while i < n:
        im = ims[rng.integers(len(ims))]
        h, w = im.shape
        s = int(rng.integers(16, min(h, w, 128) + 1))
        y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = cv2.resize(im[y0 : y0 + s, x0 : x0 + s], (PATCH, PATCH), interpolation=cv2.INTER_AREA)
        if crop.std() < 0.01 and rng.random() < 0.9:
            continue  # mostly skip empty background
        cx, cy = PATCH / 2 + rng.uniform(-3, 3, 2)
        th = np.arctan2(yy - cy, xx - cx)
        rb = _irregular_radius(th, rng.uniform(4, 11), rng, rough=0.1)
        m = (np.hypot(xx - cx, yy - cy) <= rb).astype(np.float32)
        known = m < 0.5
        mu, sd = crop[known].mean(), crop[known].std() + 1e-6 + 1e-3 * (np.abs(crop).max() + 1e-6)
        xs[i, 0], ms[i, 0] = (crop - mu) / sd, m
        i += 1
    return xs, ms


def train_inpainter(
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike = DEFAULT_WEIGHTS_DIR,
    *,
    time_budget_s: float = 300.0,
    batch_size: int = 24,
    lr: float = 2e-3,
    width: int = 16,
    seed: int = 0,
    threads: int = 2,
) -> dict[str, Any]:
    """Train :class:`InpaintNet` on 32 px ct_lung_tcia and cxr_kermany patches (held-out files excluded); save fp16."""
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    root = Path(data_root)
    folders = ("ct_lung_tcia", "cxr_kermany")
    ims = _load_training_images(root, folders)
    if not ims:
        raise FileNotFoundError(f"no training images under {root} ({', '.join(folders)})")
    net = InpaintNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    vx, vm = _training_batch(ims, 256, np.random.default_rng(seed + 1))
    t0, step, losses = time.time(), 0, []
    while time.time() - t0 < time_budget_s:
        frac = (time.time() - t0) / time_budget_s
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        x, m = (torch.from_numpy(a) for a in _training_batch(ims, batch_size, rng))
        pred = net(torch.cat([x * (1 - m), m], 1))
        loss = (torch.abs(pred - x) * m).sum() / m.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
    net.eval()
    with torch.no_grad():
        x, m = torch.from_numpy(vx), torch.from_numpy(vm)
        val = float((torch.abs(net(torch.cat([x * (1 - m), m], 1)) - x) * m).sum() / m.sum())
        mean_fill = (x * (1 - m)).sum((2, 3), keepdim=True) / (1 - m).sum((2, 3), keepdim=True)
        base = float((torch.abs(mean_fill - x) * m).sum() / m.sum())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(out / "weights.safetensors"))
    cfg = {
        "name": "tamper_inpaint",
        "model": {"width": width},
        "patch": PATCH,
        "dtype": "float16",
        "steps": step,
        "batch_size": batch_size,
        "train_seconds": round(time.time() - t0, 1),
        "val_l1_hole": round(val, 4),
        "val_l1_hole_mean_fill_baseline": round(base, 4),
        "final_train_l1": round(float(np.mean(losses[-50:])), 4),
        "data": list(folders),
        "n_images": len(ims),
        "holdout": "zlib.crc32(file name) % 5 == 0 excluded",
        "licence": "weights trained on CC BY 3.0 (Lung-PET-CT-Dx, TCIA) and CC BY 4.0 (Kermany) images",
        "trained_with": "python -m generators.tamper",
        "torch": torch.__version__,
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    _CACHE.pop(str(out), None)
    return cfg


if __name__ == "__main__":  # pragma: no cover - training entry point
    import argparse

    ap = argparse.ArgumentParser(description="train the tamper in-painting network")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS_DIR))
    ap.add_argument("--budget", type=float, default=300.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(
        json.dumps(
            train_inpainter(args.data, args.out, time_budget_s=args.budget, threads=args.threads, seed=args.seed),
            indent=2,
        )
    )
