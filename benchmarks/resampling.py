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

import numpy as np

from forensics.resampling import RESAMPLERS

Resize = Callable[[np.ndarray, int, int], np.ndarray]

#: (name, factor, round trip?): down to ``factor`` and back, or up by ``factor`` and left there.
SCALES: tuple[tuple[str, float, bool], ...] = (("0.25x", 0.25, True), ("0.5x", 0.5, True),
                                               ("1.5x", 1.5, False), ("2x", 2.0, False))
JPEG_QUALITIES = (50, 60, 70, 80, 90, 95)


#: The control kernels: thirteen of the kernels training draws from (forensics.resampling), which is the point - a
#: detector trained on every library's kernels must not flag a real image resized with any of them.
KERNELS: dict[str, Resize] = {k: RESAMPLERS[k] for k in (
    "cv2_nearest", "cv2_area", "cv2_linear", "cv2_cubic", "cv2_lanczos4", "pil_bicubic", "pil_lanczos", "pil_box",
    "pil_hamming", "torch_bilinear", "torch_bilinear_aa", "torch_bicubic", "torch_bicubic_aa")}


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
