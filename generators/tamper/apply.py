"""Run a registered tamper method: ``tamper_array`` on a 2-D array in any units, ``inject`` / ``remove`` on a loaded
image or display pixels (the two original methods, kept as functions)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from forensics.formatpath import to_gray

from .edit import TamperResult, _prepare, default_radius, guess_modality
from .lesions import MODALITIES
from .methods import EditArgs, tamper_method, tamper_methods


def _donor_window(donor: Any, donor_at: Any, donor_r: float) -> tuple[np.ndarray, tuple[float, float]]:
    """The part of the donor the paste can reach, and the donor centre in it."""
    d = np.asarray(donor, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"the donor must be a (H, W) array, got shape {d.shape}")
    dx, dy = float(donor_at[0]), float(donor_at[1])
    h, w = d.shape
    if not (0 <= dx < w and 0 <= dy < h):
        raise ValueError(f"donor position {tuple(donor_at)} is outside the donor image ({w} x {h})")
    half = int(math.ceil(3.0 * donor_r + 8))
    x0, y0 = max(0, int(dx) - half), max(0, int(dy) - half)
    return d[y0 : min(h, int(dy) + half + 1), x0 : min(w, int(dx) + half + 1)], (dx - x0, dy - y0)


def tamper_array(
    values: np.ndarray,
    method: str,
    at: tuple[float, float],
    radius: float | None = None,
    *,
    modality: str | None = None,
    units: str = "display",
    seed: int = 0,
    lo: float | None = None,
    hi: float | None = None,
    donor: np.ndarray | None = None,
    donor_at: tuple[float, float] | None = None,
    donor_radius: float | None = None,
) -> TamperResult:
    """Apply the registered tamper ``method`` to a 2-D float array in any units; values are clipped to [lo, hi]
    when given. Only pixels inside the returned mask change; the same seed gives the same edit.

    Args:
        values: float (H, W): HU (``units="hu"``) or display values in [0, 1] (or any other linear intensity).
        method: a name from :func:`tamper_methods` (``"inject"``, ``"remove"``, ...).
        at: (x, y) centre in pixels (column, row).
        radius: lesion radius in pixels (default: :func:`default_radius`).
        modality: ``"ct"``, ``"xray"``, ``"mri"`` or ``"mammo"`` (default: guessed, CT or X-ray only; CT when
            ``units="hu"``).
        seed: makes the lesion shape, texture, donor region and decoder choice reproducible.
        donor, donor_at, donor_radius: for methods that paste (``needs_donor``): another image in the same units,
            the centre of the lesion in it (x, y) and its radius (default ``radius``; the lesion is scaled to it).

    Raises:
        ValueError: unknown method or modality, a method that does not apply to the modality, a paste without a
            donor, a position outside the image.
    """
    m = tamper_method(method)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"expected a (H, W) array, got shape {values.shape}")
    if modality is None:
        modality = "ct" if units == "hu" else guess_modality(np.clip(values, 0, 1))
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    if modality not in m.modalities:
        raise ValueError(f"{method} ({m.summary}) does not apply to {modality}; methods for {modality}: "
                         f"{', '.join(tamper_methods(modality=modality))}")
    if m.needs_donor and (donor is None or donor_at is None):
        raise ValueError(f"{method} pastes a lesion from another image: give a donor image and the lesion's centre "
                         "in it (--donor FILE --donor-at X,Y)")
    h, w = values.shape
    r = float(radius) if radius else float(default_radius(values.shape))
    # work on a window around the target (the donor search reaches ~4.5 radii): fast on big radiographs
    half = int(math.ceil(7.5 * r + 12))
    cx, cy = float(at[0]), float(at[1])
    if not (0 <= cx < w and 0 <= cy < h):
        raise ValueError(f"position {tuple(at)} is outside the image ({w} x {h})")
    x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
    x1, y1 = min(w, int(cx) + half + 1), min(h, int(cy) + half + 1)
    win, lcx, lcy, r, rng = _prepare(values[y0:y1, x0:x1], (cx - x0, cy - y0), r, seed)
    args = EditArgs(modality, units, rng)
    if m.needs_donor:
        d_r = float(donor_radius) if donor_radius else r
        args.donor, args.donor_at = _donor_window(donor, donor_at, d_r)
        args.donor_radius = d_r
    new, mask, details = m.edit(win, lcx, lcy, r, args)
    full, full_mask = values.copy(), np.zeros(values.shape, bool)
    full[y0:y1, x0:x1], full_mask[y0:y1, x0:x1] = new, mask
    res = TamperResult(full, full_mask, (int(round(cx)), int(round(cy))), r, m.kind, m.name, details)
    if lo is not None or hi is not None:
        res.values = np.where(res.mask, np.clip(res.values, lo, hi), res.values).astype(np.float32)
    return res


def _as_pixels(image: Any) -> tuple[np.ndarray, Any]:
    from forensics.records import MedicalImage

    if isinstance(image, MedicalImage):
        return np.asarray(image.pixels, dtype=np.float32), image
    return np.asarray(image, dtype=np.float32), None


def _apply_display(pixels: np.ndarray, at, radius, method: str, modality: str | None, seed: int, **donor: Any):
    """``tamper_array`` on display pixels (gray or RGB, [0, 1]): the gray edit added to every channel."""
    rgb = pixels.ndim == 3
    g = to_gray(pixels)
    res = tamper_array(g, method, at, radius, modality=modality, seed=seed, lo=0.0, hi=1.0, **donor)
    delta = np.where(res.mask, res.values - g, 0.0).astype(np.float32)
    out = np.clip(pixels + (delta[..., None] if rgb else delta), 0, 1).astype(np.float32)
    out = np.where(res.mask[..., None] if rgb else res.mask, out, pixels)
    return out, res


def inject(
    image: Any, at: tuple[float, float], radius: float | None = None, seed: int = 0, modality: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Paint the modality's lesion into an image (method ``inject``).

    Args:
        image: a :class:`~forensics.records.MedicalImage` or pixels float (H, W) / (H, W, 3) in [0, 1].
        at: (x, y) centre in pixels.
        radius: lesion radius in pixels (default from the pixel spacing or the image size).
        seed: reproducible shape, texture and donor.
        modality: ``"ct"``, ``"xray"``, ``"mri"`` or ``"mammo"``; default from the file, else guessed (CT / X-ray).

    Returns:
        (pixels float32 like the input in [0, 1], mask bool (H, W) of the pixels that may have changed).
    """
    return _display_edit(image, "inject", at, radius, seed, modality)


def remove(
    image: Any, at: tuple[float, float], radius: float | None = None, seed: int = 0, modality: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Remove what lies in a disk (a nodule), filling it with plausible tissue (method ``remove``); arguments and
    return as `inject`."""
    return _display_edit(image, "remove", at, radius, seed, modality)


# DICOM modality codes -> the lesion priors' modality
_DICOM_MODALITY = {"CT": "ct", "CR": "xray", "DX": "xray", "RG": "xray", "MR": "mri", "MG": "mammo"}


def modality_of(img: Any) -> str | None:
    """The modality a loaded image declares: its DICOM Modality, or ``"mri"`` for NIfTI; None when it says none."""
    if img is None:
        return None
    if img.format == "nifti":
        return "mri"
    return _DICOM_MODALITY.get(str(img.modality or "").upper())


def _display_edit(image, method, at, radius, seed, modality):
    pixels, img = _as_pixels(image)
    if radius is None and img is not None:
        radius = default_radius(pixels.shape, img.spacing_mm)
    out, res = _apply_display(pixels, at, radius, method, modality or modality_of(img), seed)
    return out, res.mask
