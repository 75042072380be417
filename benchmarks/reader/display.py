"""What a reader sees of an image: its pixels only, at one display size, with the default window of the file.

Grey images keep their full stored range (e.g. Hounsfield units for CT) as 16-bit values, so the page can move the
window and level like a viewer does; the default window is the one the loader applied (the file's VOI window, else
a robust min-max), expressed on that 16-bit scale. Colour images are 8-bit RGB. Nothing of the header travels:
no names, dates or UIDs, and no file name.

Every image is resampled so its longer side is ``size`` pixels (0 keeps the native size): without it, the size
alone (64 px generator outputs beside 512 px scans) would tell readers the answer.
"""

from __future__ import annotations

import cv2
import numpy as np

from forensics.records import MedicalImage

DEFAULT_SIZE = 512


def display_pixels(image: MedicalImage, size: int = DEFAULT_SIZE) -> tuple[np.ndarray, tuple[float, float], bool]:
    """(pixels, (window_lo, window_hi) in [0, 1] of the grey scale, invert) for one loaded image.

    Returns uint16 (H, W) for grey images and uint8 (H, W, 3) for colour ones; the window is (0, 1) for colour.
    """
    pixels = np.asarray(image.pixels, dtype=np.float32)
    if pixels.ndim == 3:
        rgb = _resize(np.clip(pixels, 0, 1), size)
        return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8), (0.0, 1.0), False
    values, window, invert = _grey_scale(image, pixels)
    values = np.clip(_resize(values, size), 0, 1)
    return np.round(values * 65535).astype(np.uint16), window, invert


def _grey_scale(image: MedicalImage, pixels: np.ndarray) -> tuple[np.ndarray, tuple[float, float], bool]:
    """The stored values mapped linearly onto [0, 1], and the loader's window on that scale."""
    stored = image.stored
    if stored is None or stored.shape != pixels.shape:
        return pixels, (0.0, 1.0), False
    stored = np.nan_to_num(np.asarray(stored, dtype=np.float64))
    lo, hi = float(stored.min()), float(stored.max())
    if hi <= lo:
        return pixels, (0.0, 1.0), False
    scaled = (stored - lo) / (hi - lo)
    # the loader's window is linear inside (0, 1): fit pixels = a * scaled + b where it is not clipped
    inside = (pixels > 0.02) & (pixels < 0.98)
    if inside.sum() >= 16 and np.ptp(scaled[inside]) > 0:
        a, b = np.polyfit(scaled[inside].ravel()[:200_000], pixels[inside].ravel()[:200_000].astype(np.float64), 1)
    else:
        a, b = 0.0, 0.0
    if abs(a) < 1e-9:  # no usable fit: a robust window on the stored values
        w_lo, w_hi = (float(v) for v in np.percentile(scaled, [0.5, 99.5]))
        return scaled.astype(np.float32), (w_lo, max(w_hi, w_lo + 1e-4)), False
    invert = a < 0  # MONOCHROME1: the loader inverted after windowing
    ends = sorted(((0.0 - b) / a, (1.0 - b) / a))
    return scaled.astype(np.float32), (float(ends[0]), float(ends[1])), bool(invert)


def _resize(values: np.ndarray, size: int) -> np.ndarray:
    h, w = values.shape[:2]
    if size <= 0 or max(h, w) == size:
        return values
    scale = size / max(h, w)
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(values.astype(np.float32), shape, interpolation=interpolation)


def to_uint8(pixels: np.ndarray, window: tuple[float, float], invert: bool) -> np.ndarray:
    """The display image under its default window, 8-bit (for overlays and previews)."""
    if pixels.ndim == 3:
        return pixels
    lo, hi = window
    values = (pixels.astype(np.float32) / 65535 - lo) / max(hi - lo, 1e-6)
    values = np.clip(values, 0, 1)
    if invert:
        values = 1 - values
    return np.round(values * 255).astype(np.uint8)


def overlay_png(heatmap: np.ndarray, base_u8: np.ndarray, alpha: float = 0.6) -> bytes:
    """PNG of ``heatmap`` (float (h, w) in [0, 1]) coloured over the display image, patches kept as patches."""
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0, 1)
    base = base_u8 if base_u8.ndim == 3 else np.repeat(base_u8[:, :, None], 3, axis=2)
    h, w = base.shape[:2]
    heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_NEAREST)
    colour = cv2.cvtColor(cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_TURBO),
                          cv2.COLOR_BGR2RGB).astype(np.float32)
    a = (alpha * heat)[:, :, None]
    out = np.clip(base.astype(np.float32) * (1 - a) + colour * a, 0, 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise ValueError("PNG encoding failed")
    return buf.tobytes()
