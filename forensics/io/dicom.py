"""DICOM: parse with pydicom, check the header, decode one frame, apply modality LUT and window.

Order of work (cheap checks first, so a hostile header costs nothing):
parse -> pixel data present -> Rows x Columns x frames within budget -> a decoder for the transfer syntax is
installed -> native pixel data long enough -> decode the middle frame only -> rescale -> window -> [0, 1].
"""

from __future__ import annotations

import math
import warnings
from io import BytesIO
from typing import Any

import numpy as np
import pydicom
import pydicom.uid as uids
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder, pixel_array

from forensics.errors import InputError
from forensics.io._common import check_pixels, robust_unit
from forensics.phi import PHI_KEYWORDS

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# Header facts copied into MedicalImage.metadata (plain types only; never a PHI keyword, see the assertion below).
METADATA_KEYWORDS = (
    "Modality",
    "SOPClassUID",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "ImageType",
    "ConversionType",
    "BodyPartExamined",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "BurnedInAnnotation",
    "SpecificCharacterSet",
)
assert not PHI_KEYWORDS.intersection(METADATA_KEYWORDS)

# Attributes whose presence marks a parsed byte string as a real DICOM data set (used for files without preamble).
_DICOM_EVIDENCE = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality", "Rows")

_VIDEO = frozenset(uids.MPEGTransferSyntaxes) | {uids.HEVCMP51, uids.HEVCM10P51}


def _package_for(ts: str) -> str:
    """The pip package(s) that would let pydicom decode transfer syntax ``ts``."""
    if ts in uids.JPEGLSTransferSyntaxes:
        return "pyjpegls (or pylibjpeg-libjpeg)"
    if ts in uids.JPEG2000TransferSyntaxes:
        return "pylibjpeg-openjpeg"
    if ts in uids.JPEGTransferSyntaxes:
        return "pylibjpeg-libjpeg (or pillow, python-gdcm)"
    if ts in uids.RLETransferSyntaxes:
        return "pylibjpeg-rle"
    if ts in _VIDEO:
        return "av (PyAV; pydicom has no video decoder, so medaudit does not read it)"
    return "python-gdcm"


def _plain(value: Any) -> Any:
    """A pydicom value as JSON-friendly plain types."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return str(value)


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _frame_attr(ds: Dataset, macro: str, keyword: str, index: int) -> Any:
    """``keyword`` from the top level, else from the per-frame or shared functional groups (enhanced objects)."""
    value = ds.get(keyword)
    if value not in (None, ""):
        return value
    for groups, i in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq and len(seq) > i:
            inner = seq[i].get(macro)
            if inner and len(inner) and inner[0].get(keyword) not in (None, ""):
                return inner[0].get(keyword)
    return None


def _float(value: Any) -> float | None:
    try:
        f = float(_first(value))
    except (TypeError, ValueError, IndexError):
        return None
    return f if math.isfinite(f) else None


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing of ``values`` to float32 [0, 1]."""
    x = values.astype(np.float32, copy=True)
    if function == "SIGMOID":
        x -= np.float32(center)
        x *= np.float32(-4.0 / width)
        np.clip(x, -80.0, 80.0, out=x)  # exp overflow guard
        np.exp(x, out=x)
        x += 1.0
        np.reciprocal(x, out=x)
        return x
    if function == "LINEAR_EXACT":
        x -= np.float32(center)
        x *= np.float32(1.0 / width)
    else:  # LINEAR
        x -= np.float32(center - 0.5)
        x *= np.float32(1.0 / max(width - 1.0, 1e-6))
    x += 0.5
    np.clip(x, 0.0, 1.0, out=x)
    return x


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _frame_attr(ds, "PixelMeasuresSequence", keyword, 0)
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0:
            return (row, col)
    return None


def _expected_native_bytes(ds: Dataset, rows: int, cols: int, frames: int) -> int:
    spp = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 8)
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if "FloatPixelData" in ds:
        bits = 32
    elif "DoubleFloatPixelData" in ds:
        bits = 64
    samples = rows * cols * frames * spp
    if pi == "YBR_FULL_422":
        samples = samples * 2 // 3
    if bits == 1:
        return (samples + 7) // 8
    return samples * (bits // 8)


def parse_dicom(data: bytes, *, bare: bool, confident: bool) -> Dataset:
    """Parse ``data`` into a Dataset.

    Args:
        bare: the bytes lack the preamble + "DICM"; parse with ``force=True``.
        confident: the bytes were recognised as DICOM by their magic, so a parse failure is damage
            (``truncated``/``corrupt_image``); otherwise it means "not DICOM" (``unsupported_format``).
    """
    try:
        ds = pydicom.dcmread(BytesIO(data), force=bare)
        # element values are converted lazily: touch the ones we use so bad values fail here
        for keyword in ("Rows", "Columns", "SOPClassUID", "Modality"):
            ds.get(keyword)
    except (EOFError, InvalidDicomError, Exception) as exc:  # noqa: BLE001 - any parser failure is a bad file
        if not confident:
            raise InputError("unsupported_format", "not an image: bytes do not parse as a DICOM data set") from None
        text = f"{type(exc).__name__}: {exc}"
        code = "truncated" if isinstance(exc, EOFError) or "end of file" in str(exc).lower() else "corrupt_image"
        raise InputError(code, f"DICOM could not be parsed: {text}"[:500]) from None
    if bare and not any(k in ds for k in _DICOM_EVIDENCE + _PIXEL_KEYWORDS):
        if confident:
            raise InputError("corrupt_image", "DICOM data set has none of the standard attributes")
        raise InputError("unsupported_format", "not an image: bytes do not parse as a DICOM data set")
    return ds


def decode_dicom(ds: Dataset, max_pixels: int) -> dict[str, Any]:
    """Check and decode the middle frame of a parsed DICOM data set.

    Returns:
        Keyword arguments for :class:`MedicalImage`: ``pixels`` float32 (H, W) or (H, W, 3) RGB in [0, 1] after
        modality LUT and window (MONOCHROME1 inverted), ``stored`` (modality-LUT output, e.g. HU float32, or the
        raw samples), ``modality``, ``spacing_mm``, ``bit_depth``, ``frames``, ``metadata``, ``dicom``.

    Raises:
        InputError: ``no_pixel_data``, ``corrupt_image``, ``too_many_pixels``, ``missing_decoder``, ``truncated``.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = pydicom.dataset.FileMetaDataset()
    facts: dict[str, Any] = {}
    ts = meta.get("TransferSyntaxUID")
    if not ts:
        implicit = getattr(ds, "original_encoding", (None, True))[0]
        little = getattr(ds, "original_encoding", (None, True))[1]
        if implicit:
            ts = uids.ImplicitVRLittleEndian
        else:
            ts = uids.ExplicitVRLittleEndian if little in (True, None) else uids.ExplicitVRBigEndian
        meta.TransferSyntaxUID = ts
        facts["TransferSyntaxInferred"] = True
    ts = uids.UID(str(ts))

    pixel_keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if pixel_keyword is None:
        sop = ds.get("SOPClassUID")
        what = getattr(sop, "name", None) or str(sop or "object")
        raise InputError("no_pixel_data", f"DICOM {what} has no pixel data")

    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise InputError("corrupt_image", "DICOM pixel data without valid Rows/Columns") from None
    if rows <= 0 or cols <= 0:
        raise InputError("corrupt_image", f"DICOM declares an empty image ({rows}x{cols})")
    try:
        frames = max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        frames = 1
    check_pixels(rows * cols * frames, max_pixels, f"{rows}x{cols}x{frames} frames")

    for keyword in METADATA_KEYWORDS:
        value = ds.get(keyword)
        if value is not None and value != "":
            facts[keyword] = _plain(value)
    facts["TransferSyntaxUID"] = str(ts)
    facts["TransferSyntaxName"] = ts.name
    facts["has_preamble"] = bool(getattr(ds, "preamble", None))

    compressed = ts.is_compressed if ts.is_transfer_syntax else False
    if ts.is_transfer_syntax and not compressed and pixel_keyword == "PixelData":
        raw_value = ds.PixelData
        if ds["PixelData"].is_undefined_length:
            raise InputError("corrupt_image", f"encapsulated pixel data under uncompressed {ts.name}")
        expected = _expected_native_bytes(ds, rows, cols, frames)
        if len(raw_value) < expected:
            raise InputError(
                "truncated",
                f"DICOM pixel data has {len(raw_value)} bytes; Rows x Columns x frames declares {expected}",
            )
    elif compressed or not ts.is_transfer_syntax:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise InputError(
                "missing_decoder",
                f"no decoder for transfer syntax {ts.name} ({ts}); it would need {_package_for(ts)}",
            ) from None
        if not decoder.is_available:
            raise InputError(
                "missing_decoder",
                f"transfer syntax {ts.name} ({ts}) needs a decoder plugin: pip install {_package_for(ts)}",
            )

    index = frames // 2
    try:
        arr = pixel_array(ds, index=index) if frames > 1 else pixel_array(ds)
    except InputError:
        raise
    except MemoryError:
        raise InputError("too_many_pixels", "out of memory decoding the DICOM pixel data") from None
    except BaseException as exc:  # noqa: BLE001 - a decoder failure is a property of the file
        # BaseException: Rust plugins (pylibjpeg-rle) panic with pyo3's PanicException, which is not an Exception
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        text = f"{type(exc).__name__}: {exc}"
        low = text.lower()
        truncated = any(s in low for s in ("end of", "truncat", "less than", "insufficient", "not enough", "short"))
        raise InputError("truncated" if truncated else "corrupt_image", f"DICOM pixel data: {text}"[:500]) from None
    if frames > 1 and arr.ndim >= 3 and arr.shape[0] == frames and arr.shape[1:3] == (rows, cols):
        arr = arr[index]  # a decoder that ignored ``index``

    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    try:
        bits_stored = int(ds.get("BitsStored") or ds.get("BitsAllocated") or arr.dtype.itemsize * 8)
    except (TypeError, ValueError):
        bits_stored = arr.dtype.itemsize * 8

    if pi == "PALETTE COLOR" and arr.ndim == 2:
        rgb = apply_color_lut(arr, ds)
        full = 255.0 if rgb.dtype == np.uint8 else float(np.iinfo(rgb.dtype).max if rgb.dtype.kind in "ui" else 1.0)
        pixels = np.clip(rgb.astype(np.float32) * np.float32(1.0 / full), 0.0, 1.0)
        stored = arr
        facts["window_source"] = "palette"
    elif arr.ndim == 3:  # colour; pydicom has already converted YBR_* to RGB
        if arr.dtype.kind == "f":
            pixels, lo, hi = robust_unit(arr)
        else:
            full = float(2 ** min(bits_stored, arr.dtype.itemsize * 8) - 1)
            pixels = np.clip(arr.astype(np.float32) * np.float32(1.0 / full), 0.0, 1.0)
        stored = None if arr.dtype == np.uint8 else arr
        facts["window_source"] = "full_range"
    else:
        stored, pixels = _grey(ds, arr, index, facts)
        if pi == "MONOCHROME1":
            pixels = 1.0 - pixels
    np.nan_to_num(pixels, copy=False, nan=0.0)

    return {
        "pixels": np.ascontiguousarray(pixels, dtype=np.float32),
        "stored": stored,
        "modality": (str(ds.get("Modality") or "").strip() or None),
        "spacing_mm": _spacing(ds),
        "bit_depth": bits_stored,
        "frames": frames,
        "metadata": facts,
        "dicom": ds,
    }


def _grey(ds: Dataset, arr: np.ndarray, index: int, facts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Modality LUT then VOI for a monochrome frame. Returns (stored = modality output, pixels in [0, 1])."""
    if "ModalityLUTSequence" in ds:
        stored = np.asarray(apply_modality_lut(arr, ds))
    else:
        slope = _float(_frame_attr(ds, "PixelValueTransformationSequence", "RescaleSlope", index))
        intercept = _float(_frame_attr(ds, "PixelValueTransformationSequence", "RescaleIntercept", index))
        slope = 1.0 if slope is None or slope == 0 else slope
        intercept = 0.0 if intercept is None else intercept
        if slope != 1.0 or intercept != 0.0:
            stored = arr.astype(np.float32)
            stored *= np.float32(slope)
            stored += np.float32(intercept)
        else:
            stored = arr

    center = _float(_frame_attr(ds, "FrameVOILUTSequence", "WindowCenter", index))
    width = _float(_frame_attr(ds, "FrameVOILUTSequence", "WindowWidth", index))
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    if center is not None and width is not None and width > 0:
        facts.update(window_source="file", window_center=center, window_width=width)
        return stored, _window(stored, center, width, function)
    if "VOILUTSequence" in ds:
        try:
            lut = ds.VOILUTSequence[0]
            bits = int(lut.LUTDescriptor[2])
            out = apply_voi(np.asarray(stored), ds, index=0).astype(np.float32)
            out *= np.float32(1.0 / (2**bits - 1))
            facts["window_source"] = "voi_lut"
            return stored, np.clip(out, 0.0, 1.0)
        except Exception:  # noqa: BLE001 - a broken VOI LUT falls back to the robust window
            pass
    pixels, lo, hi = robust_unit(stored)
    facts.update(window_source="robust", window_low=lo, window_high=hi)
    return stored, pixels


def _check_complete(ds: Dataset, data: bytes, caught: list) -> None:
    """Raise ``truncated`` when pydicom stopped at the end of the bytes before the data set did.

    pydicom reads a cut file without complaint: the element it was reading keeps the bytes that were there, and
    fewer than 8 bytes left over (a cut element header) are ignored. So look at the last top-level element.
    """
    if any("end of file" in str(w.message).lower() for w in caught):
        raise InputError("truncated", "DICOM ends before a sequence or encapsulated pixel data is closed")
    if not len(ds):
        if data[128:132] == b"DICM":  # "DICM" then nothing (or a cut file meta): no data set at all
            raise InputError("truncated", "DICOM ends before its data set begins (preamble and file meta only)")
        return
    last = ds.get_item(max(ds.keys()))
    value = getattr(last, "value", None)
    length = getattr(last, "length", None)
    tell = getattr(last, "value_tell", None)
    if not isinstance(value, (bytes, bytearray)) or length is None or tell is None or length == 0xFFFFFFFF:
        return
    if len(value) < length:
        raise InputError(
            "truncated", f"DICOM element {last.tag} declares {length} bytes but the file ends after {len(value)}"
        )
    if 0 < len(data) - (tell + length) < 8:
        raise InputError("truncated", "DICOM ends inside an element header")


def load_dicom(data: bytes, max_pixels: int, *, bare: bool, confident: bool) -> dict[str, Any]:
    """Parse and decode; pydicom's warnings about the file are counted in ``metadata["dicom_warnings"]``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = parse_dicom(data, bare=bare, confident=confident)
        if confident or any(k in ds for k in _PIXEL_KEYWORDS):
            _check_complete(ds, data, caught)
        out = decode_dicom(ds, max_pixels)
    if caught:
        # counted, not quoted: pydicom's messages can repeat element values, which may identify a patient
        out["metadata"]["dicom_warnings"] = len(caught)
    return out


__all__ = ["load_dicom", "parse_dicom", "decode_dicom", "METADATA_KEYWORDS"]
