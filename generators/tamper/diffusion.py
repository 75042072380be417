"""Generative in-painting with the bundled latent diffusion models: a lesion-sized region re-sampled by the
modality's ``*_ldm`` in the context of the rest of the image (``LDMGenerator.inpaint``), the way an editor with a
diffusion in-painting tool adds or erases a finding. Every pixel in the region is made by the model's decoder."""

from __future__ import annotations

import cv2
import numpy as np

from .edit import _crop_box
from .lesions import on_unit_range

# the bundled latent diffusion model of each tamper modality
LDM_OF = {"ct": "ct_ldm", "xray": "cxr_ldm", "mri": "mri_ldm", "mammo": "mammo_ldm"}
# crop side per radius of the region: the region spans about 6 latent cells of the 256 px model, near native scale
_CROP_PER_REACH = 10
# RePaint resampling per step: the region settles into its surroundings instead of a flat fill beside them
_RESAMPLE = 2


def ldm_inpaint(img: np.ndarray, region: np.ndarray, cx: float, cy: float, reach: float, modality: str,
                rng: np.random.Generator, *, strength: float, class_label: str | None = None) -> tuple[np.ndarray, str]:
    """(``img`` with a square crop around ``region`` re-sampled by the modality's latent diffusion model, its name).

    The crop (about ``10 * reach`` px, at most the window) is mapped to [0, 1] by its robust range, resized to the
    model's resolution, in-painted where ``region`` is set (``strength`` 1: from pure noise; less: SDEdit of what is
    there), and mapped back. Only the crop changes; the caller blends the region in."""
    import torch

    from generators.api import bundled_generator

    name = LDM_OF[modality]
    gen = bundled_generator(name)
    half = max(32, int(round(_CROP_PER_REACH * reach / 2)))
    half = min(half, min(img.shape) // 2)
    x0, y0, x1, y1 = _crop_box(cx, cy, half, img.shape)
    crop = img[y0:y1, x0:x1]
    res = gen.resolution
    hole = cv2.resize(region[y0:y1, x0:x1].astype(np.float32), (res, res), interpolation=cv2.INTER_LINEAR) > 0

    def inpaint(u: np.ndarray) -> np.ndarray:
        x = cv2.resize(u, (res, res), interpolation=cv2.INTER_AREA if crop.shape[0] > res else cv2.INTER_CUBIC)
        y = gen.inpaint(torch.from_numpy(x)[None, None].repeat(1, gen.channels, 1, 1),
                        torch.from_numpy(hole.astype(np.float32))[None, None], strength=strength,
                        resample=_RESAMPLE, seed=int(rng.integers(1 << 31)), class_label=class_label,
                        guidance=1.0 if class_label else None)
        return cv2.resize(y[0].mean(0).numpy(), (x1 - x0, y1 - y0),
                          interpolation=cv2.INTER_AREA if crop.shape[0] < res else cv2.INTER_CUBIC)

    out = img.copy()
    out[y0:y1, x0:x1] = on_unit_range(crop, inpaint)
    return out, name
