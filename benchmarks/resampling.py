"""Resampling kernels of the libraries a viewer or exporter uses, and the resampling controls built from them.

A real image that was only shrunk and enlarged again must never look synthetic (issue 13, item 2): the controls here
put real images through every kernel family and several scales, so a detector that learned "interpolated = fake"
shows up as a high flag rate.

Kernels (:data:`KERNELS`, name -> ``resize(x, h, w)``): OpenCV nearest / area / linear / cubic / lanczos4 (on
float32), Pillow bicubic / lanczos / box / hamming (on 8-bit images, as Pillow users resize), torch
``interpolate`` bilinear / bicubic with and without antialias (on float32). Scales (:data:`SCALES`): down-and-up
round trips at 0.25x and 0.5x (the same kernel both ways) and enlargements by 1.5x and 2x (the file gets bigger).
JPEG re-encodes (:data:`JPEG_QUALITIES`) are encoded as JPEG files by the caller, since that is what a re-saved
attachment is.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Resize = Callable[[np.ndarray, int, int], np.ndarray]

#: (name, factor, round trip?): down to ``factor`` and back, or up by ``factor`` and left there.
SCALES: tuple[tuple[str, float, bool], ...] = (("0.25x", 0.25, True), ("0.5x", 0.5, True),
                                               ("1.5x", 1.5, False), ("2x", 2.0, False))
JPEG_QUALITIES = (50, 60, 70, 80, 90, 95)


def _cv2(interp: int) -> Resize:
    def fn(x: np.ndarray, h: int, w: int) -> np.ndarray:
        return cv2.resize(np.asarray(x, dtype=np.float32), (w, h), interpolation=interp)

    return fn


def _pil(resample: str) -> Resize:
    def fn(x: np.ndarray, h: int, w: int) -> np.ndarray:
        from PIL import Image

        u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
        out = Image.fromarray(u8).resize((w, h), getattr(Image.Resampling, resample))
        return np.asarray(out, dtype=np.float32) / 255.0

    return fn


def _torch(mode: str, antialias: bool) -> Resize:
    def fn(x: np.ndarray, h: int, w: int) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        a = np.asarray(x, dtype=np.float32)
        t = torch.from_numpy(np.ascontiguousarray(a[..., None] if a.ndim == 2 else a)).permute(2, 0, 1)[None]
        with torch.no_grad():
            y = F.interpolate(t, size=(h, w), mode=mode, align_corners=False, antialias=antialias)
        y = y[0].permute(1, 2, 0).numpy()
        return y[..., 0] if a.ndim == 2 else y

    return fn


KERNELS: dict[str, Resize] = {
    "cv2_nearest": _cv2(cv2.INTER_NEAREST),
    "cv2_area": _cv2(cv2.INTER_AREA),
    "cv2_linear": _cv2(cv2.INTER_LINEAR),
    "cv2_cubic": _cv2(cv2.INTER_CUBIC),
    "cv2_lanczos4": _cv2(cv2.INTER_LANCZOS4),
    "pil_bicubic": _pil("BICUBIC"),
    "pil_lanczos": _pil("LANCZOS"),
    "pil_box": _pil("BOX"),
    "pil_hamming": _pil("HAMMING"),
    "torch_bilinear": _torch("bilinear", False),
    "torch_bilinear_aa": _torch("bilinear", True),
    "torch_bicubic": _torch("bicubic", False),
    "torch_bicubic_aa": _torch("bicubic", True),
}


def resample(x: np.ndarray, kernel: str, factor: float, round_trip: bool) -> np.ndarray:
    """``x`` (float (H, W[, 3]) in [0, 1]) resized by ``factor`` with ``kernel``; with ``round_trip`` back to its
    own size with the same kernel. Output clipped to [0, 1] (cubic and lanczos kernels overshoot)."""
    fn = KERNELS[kernel]
    h, w = x.shape[:2]
    sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
    y = fn(x, sh, sw)
    if round_trip:
        y = fn(y, h, w)
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def controls() -> dict[str, tuple[str, str, Callable[[np.ndarray], np.ndarray]]]:
    """{control name: (kernel, scale name, fn)} for every kernel x scale, e.g. ``pil_lanczos@0.25x``."""
    out = {}
    for kernel in KERNELS:
        for scale, factor, trip in SCALES:
            out[f"{kernel}@{scale}"] = (kernel, scale,
                                        lambda x, k=kernel, f=factor, t=trip: resample(x, k, f, t))
    return out
