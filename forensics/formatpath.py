"""The shared random format path and the deterministic ``standardize`` step of the pixel detectors.

Detectors learn whatever separates the classes. When real images arrive as large JPEGs and fakes as 64 px PNGs,
that is the file format and the resolution, not synthesis (research/generalization_probe.md). So both classes go
through the *same* random chain here before a detector sees them:

    [down to the generator's native size and back]   (reals only, as negatives: resolution is never the cue)
    -> [down by 0.5-1x and back up]                    (both classes: a viewer's thumbnail-then-zoom)
    -> resize: 0.5-2x, or to a common export side (128-1024 px)
    -> blur -> noise -> window/level and gamma jitter -> 16 -> 8 bit quantization -> JPEG (50-100) or PNG

Every resize draws its kernel from :data:`forensics.resampling.RESAMPLERS` (OpenCV, Pillow and torch kernels, with
and without antialiasing), so no library's kernel is a cue either.

The export sizes matter: a 64 px fake is usually enlarged to a plausible size *before* it is saved, so its JPEG
blocks sit on the enlarged grid (the benchmark harness does the same at 256 px). Without them the detectors had
only seen JPEG traces that the enlargement had smoothed away, and lost calibration on such files.

Metadata is stripped by construction: only pixels go in and out.

``standardize`` is the one deterministic step shared by training and inference (grayscale, square center crop,
resize to a fixed side); keep the two identical or the detectors see a different world at scan time.
"""

from __future__ import annotations

import cv2
import numpy as np

from forensics.resampling import random_kernel, random_roundtrip, resize

#: The side of the standardized square every pixel detector works on.
STANDARD_SIZE = 256
#: Bumped whenever :func:`format_path` changes, so caches of its outputs are not reused across versions.
FORMAT_PATH_VERSION = 5
#: Short sides images are commonly exported at (model inputs, PACS thumbnails, web exports).
EXPORT_SIDES = (128, 224, 256, 320, 384, 512, 768, 1024)


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """float32 (H, W) luma (ITU-R BT.601 weights) from (H, W) or (H, W, 3) pixels in [0, 1]."""
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114 if x.shape[2] >= 3 else x[..., 0]
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _resize(x: np.ndarray, h: int, w: int, interp: int | None = None) -> np.ndarray:
    if interp is None:
        interp = cv2.INTER_AREA if h * w < x.shape[0] * x.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(x, (max(1, w), max(1, h)), interpolation=interp)


def standardize(pixels: np.ndarray, size: int = STANDARD_SIZE) -> np.ndarray:
    """The deterministic input policy of the pixel detectors, identical at training and at inference.

    Grayscale (BT.601 luma), center crop to a square on the short side, resize to ``size`` x ``size``
    (area when shrinking, cubic when enlarging), clip to [0, 1].

    Args:
        pixels: float (H, W) or (H, W, 3) in [0, 1].
        size: output side in pixels.

    Returns:
        float32 (size, size) in [0, 1].
    """
    x = to_gray(pixels)
    h, w = x.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    x = x[y0 : y0 + s, x0 : x0 + s]
    if s != size:
        x = _resize(x, size, size)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


#: Standardized images whose pixel standard deviation is below this carry no texture to judge (blank frames).
FLAT_STD = 1e-3


def is_flat(standardized: np.ndarray) -> bool:
    """True for a blank standardized image: pixel analyzers return no score for it (not evidence either way)."""
    return float(np.std(standardized)) < FLAT_STD


def native_roundtrip(pixels: np.ndarray, native_size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Down to ``native_size`` on the short side (area) and back to the original size (random interpolation).

    What a real image looks like after it took the same resolution path as a generator's output.
    """
    x = np.asarray(pixels, dtype=np.float32)
    h, w = x.shape[:2]
    s = native_size / min(h, w)
    if s >= 1:
        return x
    small = _resize(x, max(1, round(h * s)), max(1, round(w * s)), cv2.INTER_AREA)
    if rng is None:
        return np.clip(_resize(small, h, w, cv2.INTER_CUBIC), 0, 1).astype(np.float32)
    return resize(small, h, w, random_kernel(rng))


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Encode as 8-bit JPEG at ``quality`` and decode again (cv2); shape and [0, 1] range kept."""
    x = np.asarray(pixels, dtype=np.float32)
    u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    if u8.ndim == 3:
        u8 = u8[..., ::-1]  # cv2 is BGR
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(u8), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if dec.ndim == 3:
        dec = dec[..., ::-1]
    return (dec.astype(np.float32) / 255.0).reshape(x.shape)


def encode_png(pixels: np.ndarray, bits: int = 8) -> bytes:
    """PNG bytes of float pixels in [0, 1] at 8 or 16 bits per sample (RGB stays RGB)."""
    top = 255 if bits == 8 else 65535
    q = np.round(np.clip(np.asarray(pixels, dtype=np.float32), 0, 1) * top).astype(np.uint8 if bits == 8 else np.uint16)
    if q.ndim == 3:
        q = q[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(q))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def png_roundtrip(pixels: np.ndarray, bits: int = 8) -> np.ndarray:
    """Lossless PNG round trip at 8 or 16 bits per sample (the quantization is the only change)."""
    x = np.asarray(pixels, dtype=np.float32)
    top = 255 if bits == 8 else 65535
    dec = cv2.imdecode(np.frombuffer(encode_png(x, bits), np.uint8), cv2.IMREAD_UNCHANGED)
    if dec.ndim == 3:
        dec = dec[..., ::-1]
    return (dec.astype(np.float32) / top).reshape(x.shape)


def format_path(
    pixels: np.ndarray,
    rng: np.random.Generator,
    *,
    native_size: int | None = None,
    p_native: float = 0.5,
    p_roundtrip: float = 0.3,
    p_resize: float = 0.7,
    p_export: float = 0.5,
    p_blur: float = 0.25,
    p_noise: float = 0.25,
    p_window: float = 0.4,
    p_jpeg: float = 0.6,
) -> np.ndarray:
    """One random draw of the shared format path; apply it to real and synthetic images alike.

    Args:
        pixels: float (H, W) or (H, W, 3) in [0, 1].
        rng: the random source; the same seed gives the same output.
        native_size: a generator's native side in pixels. When given, with probability ``p_native`` the image is
            taken down to it and back first (use for real images, which then become resolution-matched negatives).
        p_*: probabilities of each step (down-and-up round trip, resize, Gaussian blur sigma 0.3-1.2 px, Gaussian noise
            sigma 0.003-0.02, window/level jitter, JPEG quality 50-100 vs PNG); ``p_export`` is the share of
            resizes that go to one of :data:`EXPORT_SIDES` instead of a 0.5-2x factor.

    Returns:
        float32 with the input's channel layout, values in [0, 1]; the size changes when the resize step runs.
    """
    x = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1)
    if native_size is not None and rng.random() < p_native:
        x = native_roundtrip(x, int(native_size), rng)
    if rng.random() < p_roundtrip:  # not below 0.5x: that would erase a small generator's traces altogether; the
        x = random_roundtrip(x, rng, (0.5, 1.0))  # native-size round trips above teach reals at 32-64 px
    if rng.random() < p_resize:
        h, w = x.shape[:2]
        if rng.random() < p_export:
            f = EXPORT_SIDES[int(rng.integers(len(EXPORT_SIDES)))] / min(h, w)
        else:
            f = float(rng.uniform(0.5, 2.0))
        x = resize(x, max(8, round(h * f)), max(8, round(w * f)), random_kernel(rng))
    if rng.random() < p_blur:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.3, 1.2)))
    if rng.random() < p_noise:
        x = x + rng.normal(0.0, float(rng.uniform(0.003, 0.02)), x.shape).astype(np.float32)
    if rng.random() < p_window:
        lo, hi = float(rng.uniform(0.0, 0.08)), float(rng.uniform(0.92, 1.0))
        x = (x - lo) / (hi - lo)
        x = np.clip(x, 0, 1) ** float(rng.uniform(0.7, 1.4))
    x = np.clip(x, 0, 1).astype(np.float32)
    if rng.random() < p_jpeg:
        x = jpeg_roundtrip(x, int(rng.integers(50, 101)))
    else:
        x = png_roundtrip(x, 8 if rng.random() < 0.8 else 16)
    return np.clip(x, 0, 1).astype(np.float32)
