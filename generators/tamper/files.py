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
from .apply import _apply_display, modality_of, tamper_array
from .edit import default_radius, guess_modality
from .methods import tamper_method

GENERATOR_NAME = "tamper"
VERSION = "1.1"  # 1.1: the method registry (inject / remove unchanged)


def tamper_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    method: str = "inject",
    at: tuple[float, float] = (0, 0),
    radius: float | None = None,
    stamp: bool = True,
    seed: int = 0,
    modality: str | None = None,
    signing_key: Any = None,
    watermark_key: Any = None,
    *,
    donor: Any = None,
    donor_at: tuple[float, float] | None = None,
    donor_radius: float | None = None,
    mask_path: str | os.PathLike | None = "auto",
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
        method: a registered tamper method (``generators.tamper.tamper_methods()``: ``inject``, ``remove``, ...).
        at: (x, y) centre in pixels (column, row).
        radius: lesion radius in pixels; default 5 mm from the pixel spacing, else 2 % of the short side.
        stamp: write the provenance watermark and labels.
        seed: reproducible lesion and texture.
        modality: ``"ct"``, ``"xray"``, ``"mri"`` or ``"mammo"``; default from the DICOM modality (``"mri"`` for
            NIfTI), else guessed from the pixels (CT or X-ray).
        signing_key: a ``forensics.signatures.SigningKey``: the output also gets signed provenance (C2PA manifest
            with compositeWithTrainedAlgorithmicMedia in PNG, PS3.15 Digital Signatures in DICOM). Needs ``stamp``.
        watermark_key: a secret ``forensics.watermark.WatermarkKey`` for the mark (default: the public one).
        donor, donor_at, donor_radius: for methods that paste a lesion from another image: that image (a path,
            a loaded image or display pixels), the lesion's centre (x, y) and radius in it.
        mask_path: where to write the mask of changed pixels (PNG, 0 / 255, the image's size, nothing else in it);
            ``"auto"``: beside the output as ``<stem>.mask.png``; None: not written.

    Returns:
        {"path", "mode" (the kind: inject / remove), "method", "held_out", "at", "radius", "mask_pixels",
        "bbox" [x0, y0, x1, y1], "format", "stamped", "modality", "mask_path", ...the method's details}.

    Raises:
        forensics.errors.InputError: the input cannot be read; ValueError: bad arguments (DICOM output from a
        non-DICOM input, a position outside the image, an unknown method, one that does not apply to the modality,
        a paste without a donor).
    """
    from forensics.io import load

    dst = Path(dst)
    fmt = "dicom" if dst.suffix.lower() in (".dcm", ".dicom") else "png"
    if signing_key is not None and not stamp:
        raise ValueError("an unstamped output cannot be signed: signing states what made the image")
    if isinstance(donor, (str, os.PathLike)):
        donor = load(donor)
    data, info, mask = tamper_bytes(load(src), fmt, method, at, radius, stamp=stamp, seed=seed, modality=modality,
                                    signing_key=signing_key, watermark_key=watermark_key, donor=donor,
                                    donor_at=donor_at, donor_radius=donor_radius)
    mask_dst = dst.with_name(dst.stem + ".mask.png") if mask_path == "auto" else mask_path
    write_bytes(dst, data)
    if mask_dst is not None:
        write_bytes(mask_dst, mask_png(mask))
    return {"path": str(dst), **info, "mask_path": None if mask_dst is None else str(mask_dst)}


def mask_png(mask: np.ndarray) -> bytes:
    """The mask of changed pixels as an 8-bit grey PNG, 255 inside, 0 outside, with no text chunks."""
    import cv2

    ok, buf = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise ValueError("could not encode the mask as PNG")
    return buf.tobytes()


# DICOM modalities the lesion models are made for (CT, radiographs, MR, mammograms) and secondary captures
_EDITABLE_MODALITIES = frozenset({"CT", "CR", "DX", "RG", "MR", "MG", "OT", "SC"})


def _check_editable(img: Any, modality: str | None) -> None:
    """Refuse images the lesion models do not apply to, naming what the image is, rather than editing (and
    labelling) a dermoscopy photograph or an ultrasound as "xray"."""
    if modality is not None:
        return  # the caller said what it is
    if img.pixels.ndim == 3:
        raise ValueError(f"{img.path} is a colour image ({img.format.upper()}, {img.pixels.shape[2]} channels: a "
                         "photograph or dermoscopy?); tamper edits greyscale CT, X-ray, MRI and mammography images "
                         "only")
    if img.modality is not None and str(img.modality).upper() not in _EDITABLE_MODALITIES:
        raise ValueError(f"{img.path} is a DICOM {img.modality} image; tamper edits CT, X-ray (CR, DX), MR and "
                         "mammography (MG) only")


def _donor_values(donor: Any, to_target, sign: float | None = None) -> np.ndarray:
    """The donor as a 2-D array in the target's units: with ``sign`` (the target is edited in stored units) a
    single-frame DICOM donor's own stored values (HU on CT: not clipped by its display window), else its display
    values mapped by ``to_target``."""
    from forensics.records import MedicalImage

    if not isinstance(donor, MedicalImage):
        return to_target(np.asarray(donor, dtype=np.float32))
    if sign is not None and donor.format == "dicom" and donor.stored is not None and donor.stored.ndim == 2:
        return sign * np.asarray(donor.stored, dtype=np.float32)
    pixels = donor.pixels
    if pixels.ndim == 3:
        pixels = pixels.mean(axis=2)
    return to_target(np.asarray(pixels, dtype=np.float32))


def tamper_bytes(
    img: Any,
    fmt: str,
    method: str,
    at: tuple[float, float],
    radius: float | None = None,
    *,
    stamp: bool = True,
    seed: int = 0,
    modality: str | None = None,
    signing_key: Any = None,
    watermark_key: Any = None,
    donor: Any = None,
    donor_at: tuple[float, float] | None = None,
    donor_radius: float | None = None,
) -> tuple[bytes, dict[str, Any], np.ndarray]:
    """Tamper a loaded :class:`~forensics.records.MedicalImage` and encode it as ``fmt`` (``png`` or ``dicom``).

    Returns:
        (file bytes, info dict as ``tamper_file`` returns it without ``path``, mask bool (H, W) of changed pixels).
    """
    if fmt not in ("png", "dicom"):
        raise ValueError(f"output format must be png or dicom, got {fmt!r}")
    if fmt == "dicom" and img.format != "dicom":
        raise ValueError("DICOM output needs a DICOM input (the original dataset is what is kept)")
    m = tamper_method(method)
    _check_editable(img, modality)
    if radius is None:
        radius = default_radius(img.pixels.shape, img.spacing_mm)
    mod = modality or modality_of(img)
    info = (provenance.provenance_info(GENERATOR_NAME, VERSION, seed, kind="tampered", mode=m.kind, method=m.name)
            if stamp else None)
    paste = {"donor": None, "donor_at": donor_at, "donor_radius": donor_radius}

    use_stored = img.format == "dicom" and img.stored is not None and img.pixels.ndim == 2 and img.frames == 1
    new_stored = None
    if use_stored:
        stored = np.asarray(img.stored, dtype=np.float32)
        is_ct = mod == "ct" or str(img.modality or "").upper() == "CT"
        mod = mod or ("ct" if is_ct else guess_modality(img.pixels))
        a, b = _linear_display_map(stored, img.pixels)
        # MONOCHROME1 / inverted windows: edit on the display's polarity (a lesion is brighter on screen)
        sign = 1.0 if a >= 0 else -1.0
        if donor is not None:
            paste["donor"] = _donor_values(donor, lambda p: sign * (p - b) / a, sign)
        res = tamper_array(
            sign * stored,
            method,
            at,
            radius,
            modality=mod,
            units="hu" if is_ct and sign > 0 else "display",
            seed=seed,
            lo=float((sign * stored).min()),
            hi=float((sign * stored).max()),
            **paste,
        )
        new_stored = sign * res.values
        if stamp:
            from forensics.watermark import embed

            disp = (a * new_stored + b).astype(np.float32)
            new_stored = new_stored + (embed(np.clip(disp, 0, 1), key=watermark_key) - np.clip(disp, 0, 1)) / a
        pixels = np.clip(a * new_stored + b, 0, 1).astype(np.float32)
    else:
        mod = mod or guess_modality(img.pixels)
        if donor is not None:
            paste["donor"] = _donor_values(donor, lambda p: p)
        pixels, res = _apply_display(np.asarray(img.pixels, dtype=np.float32), at, radius, method, mod, seed,
                                     **paste)
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
        "mode": m.kind,
        "method": m.name,
        "held_out": m.held_out,
        "at": [int(round(at[0])), int(round(at[1]))],
        "radius": float(radius),
        "mask_pixels": int(res.mask.sum()),
        "bbox": bbox,
        "format": fmt,
        "stamped": bool(stamp),
        "modality": mod,
        **res.details,
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
