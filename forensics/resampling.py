"""Resampling kernels of several libraries, so that "how an image was resized" is never evidence.

A genuine claim image has often been shrunk or enlarged by some viewer, PACS export or web tool, each with its own
kernel. Detectors trained on one library's kernels flag real images resized by another (issue 13: 34% of real chest
X-rays shrunk and enlarged with an unfamiliar kernel reached ``medium``). Training therefore draws from all of these,
for real and synthetic images alike.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Resampler = Callable[[np.ndarray, int, int], np.ndarray]


def _cv2(interp: int) -> Resampler:
    def resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
        return cv2.resize(np.asarray(x, np.float32), (w, h), interpolation=interp)

    return resize


def _pillow(name: str) -> Resampler:
    def resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
        from PIL import Image

        # on 8-bit images, as Pillow users resize (its float mode has no colour images)
        u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
        out = Image.fromarray(u8).resize((w, h), getattr(Image.Resampling, name))
        return np.asarray(out, dtype=np.float32) / 255.0

    return resize


def _torch(mode: str, antialias: bool) -> Resampler:
    def resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        t = t[None, None] if x.ndim == 2 else t.permute(2, 0, 1)[None]
        kw = {} if mode == "nearest" else {"align_corners": False, "antialias": antialias}
        y = F.interpolate(t, size=(h, w), mode=mode, **kw)[0]
        return (y[0] if x.ndim == 2 else y.permute(1, 2, 0)).numpy()

    return resize


#: name -> resize(pixels, height, width); float32 in, float32 out (values may overshoot [0, 1]: callers clip).
RESAMPLERS: dict[str, Resampler] = {
    "cv2_nearest": _cv2(cv2.INTER_NEAREST),
    "cv2_area": _cv2(cv2.INTER_AREA),
    "cv2_linear": _cv2(cv2.INTER_LINEAR),
    "cv2_cubic": _cv2(cv2.INTER_CUBIC),
    "cv2_lanczos4": _cv2(cv2.INTER_LANCZOS4),
    "pil_nearest": _pillow("NEAREST"),
    "pil_box": _pillow("BOX"),
    "pil_bilinear": _pillow("BILINEAR"),
    "pil_hamming": _pillow("HAMMING"),
    "pil_bicubic": _pillow("BICUBIC"),
    "pil_lanczos": _pillow("LANCZOS"),
    "torch_bilinear": _torch("bilinear", False),
    "torch_bilinear_aa": _torch("bilinear", True),
    "torch_bicubic": _torch("bicubic", False),
    "torch_bicubic_aa": _torch("bicubic", True),
    "torch_nearest": _torch("nearest", False),
}


def resize(x: np.ndarray, h: int, w: int, kernel: str) -> np.ndarray:
    """``x`` (H, W) or (H, W, 3) float resized to (h, w) with the named kernel, clipped to [0, 1], float32."""
    y = RESAMPLERS[kernel](np.asarray(x, np.float32), max(1, int(h)), max(1, int(w)))
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def random_kernel(rng: np.random.Generator) -> str:
    return list(RESAMPLERS)[int(rng.integers(len(RESAMPLERS)))]


def random_roundtrip(x: np.ndarray, rng: np.random.Generator, scale: tuple[float, float] = (0.25, 1.0)) -> np.ndarray:
    """Down by a random factor in ``scale`` and back to the original size, each way with a random kernel of any
    library: what a viewer's thumbnail-then-zoom does to an image."""
    h, w = x.shape[:2]
    f = float(rng.uniform(*scale))
    small = resize(x, max(8, round(h * f)), max(8, round(w * f)), random_kernel(rng))
    return resize(small, h, w, random_kernel(rng))
