"""NIfTI-1/-2 volumes (.nii, .nii.gz): the middle axial slice, robust min-max to [0, 1]."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from forensics.errors import InputError
from forensics.io._common import check_pixels, robust_unit


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a gzip stream, refusing to produce more than ``limit`` bytes (a gzip bomb costs nothing)."""
    d = zlib.decompressobj(wbits=47)  # gzip or zlib header
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InputError("corrupt_image", f"NIfTI gzip stream is damaged: {exc}") from None
    if len(out) > limit:
        raise InputError("too_many_pixels", f"NIfTI decompresses to more than {limit} bytes")
    if not d.eof:
        raise InputError("truncated", "NIfTI gzip stream ends early")
    return out


def _decode(data: bytes, max_pixels: int) -> tuple[Any, tuple[int, ...], Any, np.ndarray]:
    """(header class, declared shape, closest-canonical image, its 3-D voxel array) of NIfTI bytes, size-checked
    before decoding."""
    import nibabel as nib  # heavy import; only NIfTI needs it

    if data[:2] == b"\x1f\x8b":
        head = zlib.decompressobj(wbits=31).decompress(data[:65536], 544)
    else:
        head = data[:544]
    try:
        klass = nib.Nifti2Image if head[4:8] == b"n+2\x00" else nib.Nifti1Image
        hc = klass.header_class
        # the fixed-size header only: extensions and voxels may lie beyond what was decompressed
        header = hc(head[: hc.template_dtype.itemsize], check=False)
        shape = tuple(int(v) for v in header.get_data_shape())
        itemsize = np.dtype(header.get_data_dtype()).itemsize
        vox_offset = int(header["vox_offset"])
    except Exception as exc:  # noqa: BLE001
        raise InputError("corrupt_image", f"NIfTI header: {type(exc).__name__}: {exc}") from None
    if len(shape) < 2 or min(shape) <= 0:
        raise InputError("corrupt_image", f"NIfTI declares shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    check_pixels(count, max_pixels, "x".join(map(str, shape)))
    needed = vox_offset + count * itemsize
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, needed + (1 << 20))
    if len(data) < needed:
        raise InputError("truncated", f"NIfTI voxel data needs {needed} bytes but the file has {len(data)}")
    try:
        img = nib.as_closest_canonical(klass.from_bytes(data))
        vol = np.asanyarray(img.dataobj)
        while vol.ndim > 3:
            vol = vol[..., 0]
        if vol.ndim == 2:
            vol = vol[:, :, None]
    except Exception as exc:  # noqa: BLE001
        raise InputError("corrupt_image", f"NIfTI data: {type(exc).__name__}: {exc}") from None
    return klass, shape, img, vol


def decode_volume(data: bytes, max_pixels: int) -> np.ndarray:
    """The voxels of NIfTI bytes as a 3-D array (x=R, y=A, z=S, closest-canonical orientation), as stored."""
    return _decode(data, max_pixels)[3]


def load_nifti(data: bytes, max_pixels: int) -> dict[str, Any]:
    """Decode a single-file NIfTI image.

    Returns:
        Keyword arguments for :class:`MedicalImage`: ``pixels`` float32 (H, W) in [0, 1] (the middle slice along
        the third axis in closest-canonical RAS orientation, anterior up), ``stored`` (the scaled slice, float32),
        ``spacing_mm``, ``bit_depth``, ``frames`` (slices), ``metadata``.
    """
    import nibabel as nib

    klass, shape, img, vol = _decode(data, max_pixels)
    header = img.header
    itemsize = np.dtype(header.get_data_dtype()).itemsize
    try:
        mid = vol.shape[2] // 2
        # array axes are (x=R, y=A); rows should run anterior -> posterior, columns left -> right of the array
        slice_ = np.flipud(np.asarray(vol[:, :, mid], dtype=np.float32).T)
        zooms = header.get_zooms()
    except Exception as exc:  # noqa: BLE001
        raise InputError("corrupt_image", f"NIfTI data: {type(exc).__name__}: {exc}") from None
    stored = np.ascontiguousarray(slice_)
    pixels, lo, hi = robust_unit(stored)
    spacing = None
    if len(zooms) >= 2 and all(np.isfinite(zooms[:2])) and min(zooms[:2]) > 0:
        spacing = (float(zooms[1]), float(zooms[0]))
    facts = {
        "nifti_version": 2 if klass is nib.Nifti2Image else 1,
        "shape": list(shape),
        "dtype": str(header.get_data_dtype()),
        "window_source": "robust",
        "window_low": lo,
        "window_high": hi,
    }
    return {
        "pixels": pixels,
        "stored": stored,
        "spacing_mm": spacing,
        "bit_depth": itemsize * 8,
        "frames": int(vol.shape[2]),
        "metadata": facts,
    }
