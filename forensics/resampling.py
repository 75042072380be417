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
        return cv2.resize(x, (w, h), interpolation=interp)

    return resize


def _pillow(name: str) -> Resampler:
    def resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
        from PIL import Image

        # Pillow resamples float images ("F" mode) per channel; 8-bit would add a quantization step of its own.
        filt = getattr(Image.Resampling, name)
        chans = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
        out = [np.asarray(Image.fromarray(np.ascontiguousarray(c, np.float32), "F").resize((w, h), filt))
               for c in chans]
        return out[0] if x.ndim == 2 else np.stack(out, axis=-1)

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
    "cv2-nearest": _cv2(cv2.INTER_NEAREST),
    "cv2-area": _cv2(cv2.INTER_AREA),
    "cv2-linear": _cv2(cv2.INTER_LINEAR),
    "cv2-cubic": _cv2(cv2.INTER_CUBIC),
    "cv2-lanczos": _cv2(cv2.INTER_LANCZOS4),
    "pil-nearest": _pillow("NEAREST"),
    "pil-box": _pillow("BOX"),
    "pil-bilinear": _pillow("BILINEAR"),
    "pil-hamming": _pillow("HAMMING"),
    "pil-bicubic": _pillow("BICUBIC"),
    "pil-lanczos": _pillow("LANCZOS"),
    "torch-bilinear": _torch("bilinear", False),
    "torch-bilinear-aa": _torch("bilinear", True),
    "torch-bicubic": _torch("bicubic", False),
    "torch-bicubic-aa": _torch("bicubic", True),
    "torch-nearest": _torch("nearest", False),
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
