"""Read an image, tamper it, encode it: PNG or DICOM through ``generators.provenance``, labelled unless unstamped.

DICOM output keeps the original dataset (UIDs, patient, study) and rewrites PixelData with the original rescale;
with ``stamp`` the output carries the provenance watermark and the labels of a composite (kind ``tampered``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from forensics.atomic import write_bytes

from .. import provenance
from .edit import _apply_display, _modality_of, default_radius, guess_modality, tamper_array

GENERATOR_NAME = "tamper"
VERSION = "1.0"


def tamper_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    mode: str = "inject",
    at: tuple[float, float] = (0, 0),
    radius: float | None = None,
    stamp: bool = True,
    seed: int = 0,
    modality: str | None = None,
    signing_key: Any = None,
    watermark_key: Any = None,
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
        signing_key: a ``forensics.signatures.SigningKey``: the output also gets signed provenance (C2PA manifest
            with compositeWithTrainedAlgorithmicMedia in PNG, PS3.15 Digital Signatures in DICOM). Needs ``stamp``.
        watermark_key: a secret ``forensics.watermark.WatermarkKey`` for the mark (default: the public one).

    Returns:
        {"path", "mode", "at", "radius", "mask_pixels", "bbox" [x0, y0, x1, y1], "format", "stamped", "modality"}.

    Raises:
        forensics.errors.InputError: the input cannot be read; ValueError: bad arguments (DICOM output from a
        non-DICOM input, a position outside the image, an unknown mode).
    """
    from forensics.io import load

    dst = Path(dst)
    fmt = "dicom" if dst.suffix.lower() in (".dcm", ".dicom") else "png"
    if signing_key is not None and not stamp:
        raise ValueError("an unstamped output cannot be signed: signing states what made the image")
    data, info, _mask = tamper_bytes(load(src), fmt, mode, at, radius, stamp=stamp, seed=seed, modality=modality,
                                     signing_key=signing_key, watermark_key=watermark_key)
    write_bytes(dst, data)
    return {"path": str(dst), **info}


# DICOM modalities the lesion models are made for (chest CT, radiographs) and secondary captures of them
_EDITABLE_MODALITIES = frozenset({"CT", "CR", "DX", "RG", "OT", "SC"})


def _check_editable(img: Any, modality: str | None) -> None:
    """Refuse images the CT/X-ray lesion models do not apply to, naming what the image is, rather than editing
    (and labelling) a dermoscopy photograph or an MR as "xray"."""
    if modality is not None:
        return  # the caller said what it is
    if img.pixels.ndim == 3:
        raise ValueError(f"{img.path} is a colour image ({img.format.upper()}, {img.pixels.shape[2]} channels: a "
                         "photograph or dermoscopy?); tamper edits greyscale chest CT and X-ray images only")
    if img.modality is not None and str(img.modality).upper() not in _EDITABLE_MODALITIES:
        raise ValueError(f"{img.path} is a DICOM {img.modality} image; tamper edits chest CT and X-ray (CT, CR, DX) "
                         "only")


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
    signing_key: Any = None,
    watermark_key: Any = None,
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
    _check_editable(img, modality)
    if radius is None:
        radius = default_radius(img.pixels.shape, img.spacing_mm)
    mod = modality or _modality_of(img)
    info = provenance.provenance_info(GENERATOR_NAME, VERSION, seed, kind="tampered", mode=mode) if stamp else None

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
            new_stored = new_stored + (embed(np.clip(disp, 0, 1), key=watermark_key) - np.clip(disp, 0, 1)) / a
        pixels = np.clip(a * new_stored + b, 0, 1).astype(np.float32)
    else:
        mod = mod or guess_modality(img.pixels)
        pixels, res = _apply_display(np.asarray(img.pixels, dtype=np.float32), at, radius, mode, mod, seed)
        if stamp:
            pixels = provenance.stamp(pixels, generator=GENERATOR_NAME, version=VERSION, seed=seed, kind="tampered",
                                      key=watermark_key)

    if fmt == "dicom":
        data = provenance.derived_dicom_bytes(img.raw, new_stored, pixels, info)
    else:
        bits = 16 if (img.bit_depth > 8 and pixels.ndim == 2) else 8
        data = provenance.png_bytes(_levels(pixels, bits), info, bits=bits)
    if signing_key is not None and info is not None:
        data = provenance.sign(data, fmt, info, signing_key)
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


def _levels(pixels: np.ndarray, bits: int) -> np.ndarray:
    """uint8 / uint16 levels of float32 pixels in [0, 1], rounded in float32: the precision the edit works in.

    ``provenance.png_bytes`` rounds floats in float64, which moves about 1 in 700 16-bit levels (1 in 60 000 8-bit
    ones) by one; rounding here keeps a tampered file's pixels what they have always been for a given seed.
    """
    x = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1)
    return np.round(x * (255 if bits == 8 else 65535)).astype(np.uint8 if bits == 8 else np.uint16)


def _linear_display_map(stored: np.ndarray, pixels: np.ndarray) -> tuple[float, float]:
    """(a, b) with pixels ≈ a * stored + b on the unsaturated pixels (the loader's window is linear)."""
    s, p = stored.astype(np.float64).ravel(), pixels.astype(np.float64).ravel()
    keep = (p > 0.01) & (p < 0.99)
    if keep.sum() < 16 or np.ptp(s[keep]) == 0:
        lo, hi = float(s.min()), float(s.max())
        return 1.0 / max(hi - lo, 1e-6), -lo / max(hi - lo, 1e-6)
    a, b = np.polyfit(s[keep], p[keep], 1)
    return float(a), float(b)
