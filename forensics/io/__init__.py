"""Loading images: DICOM, PNG, JPEG, TIFF, BMP, WebP and NIfTI into a :class:`MedicalImage`.

``load`` reads the file once, hashes the bytes, recognises the format by its magic bytes (never by the file
name), checks the container and the declared size, and only then decodes. Every failure is an
:class:`~forensics.errors.InputError` with a stable code; docs/FORMATS.md lists them.
"""

from __future__ import annotations

import hashlib
import os

from forensics.errors import InputError
from forensics.io._common import DEFAULT_MAX_PIXELS, ROBUST_PERCENTILES
from forensics.io.guarded import DEFAULT_MAX_BYTES, read_file
from forensics.io.sniff import DICOM_SUFFIXES, describe, sniff_format
from forensics.records import MedicalImage

# OpenCV reads its own decompression-bomb guard once, when cv2 is first imported, which may happen anywhere in
# the process: set it as soon as the loader is imported (a value the user exported wins).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))

# Suffixes a folder walk treats as images (lower-case, with the dot). DICOM files often have no suffix at all;
# match with :func:`has_image_suffix`, which also understands the two-part ".nii.gz".
IMAGE_SUFFIXES = frozenset(
    {
        ".dcm",
        ".dicom",
        ".dic",
        ".ima",
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".tif",
        ".tiff",
        ".bmp",
        ".webp",
        ".pgm",
        ".ppm",
        ".nii",
        ".nii.gz",
    }
)

FORMATS = ("dicom", "png", "jpeg", "tiff", "bmp", "webp", "pnm", "nifti")

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "ROBUST_PERCENTILES",
    "has_image_suffix",
    "load",
    "read_file",
    "sniff_format",
]


def has_image_suffix(path: str | os.PathLike) -> bool:
    """True when the file name ends in one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    name = os.fspath(path).lower()
    return any(name.endswith(s) for s in IMAGE_SUFFIXES)


def _suffix(path: str) -> str:
    name = os.path.basename(path).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return os.path.splitext(name)[1]


def load(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    data: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> MedicalImage:
    """Load one image file.

    Args:
        path: the file. Read once through :func:`~forensics.io.guarded.read_file` (regular files only), never
            modified.
        max_pixels: decompression-bomb guard; declared width x height (x frames / slices) above it raises
            ``too_many_pixels`` before anything is decoded.
        data: the file's bytes when the caller already has them (then ``path`` is only recorded).
        max_bytes: files larger than this raise ``too_large`` before they are read.

    Returns:
        A :class:`MedicalImage` with ``pixels`` float32 (H, W) or (H, W, 3) RGB in [0, 1] and ``raw`` = the bytes.

    Raises:
        InputError: code ``not_found``, ``symlink_loop``, ``not_a_file``, ``too_large``, ``unreadable``,
            ``empty_file``, ``unsupported_format``, ``corrupt_image``, ``truncated``, ``missing_decoder``,
            ``no_pixel_data`` or ``too_many_pixels``.
    """
    path_str = os.fspath(path)
    data = read_file(path_str, max_bytes) if data is None else bytes(data)
    if len(data) > max_bytes:
        raise InputError("too_large", f"{len(data):,} bytes; the limit is {max_bytes:,} (--max-bytes)")
    if not data:
        raise InputError("empty_file", "the file is empty (0 bytes)")
    sha256 = hashlib.sha256(data).hexdigest()
    suffix = _suffix(path_str)
    fmt = sniff_format(data, suffix)

    try:
        if fmt is None:
            if suffix not in DICOM_SUFFIXES:
                raise InputError("unsupported_format", f"not an image: looks like {describe(data)}")
            from forensics.io.dicom import load_dicom

            try:
                fields = load_dicom(data, max_pixels, bare=True, confident=False)
            except InputError as exc:
                if exc.code == "unsupported_format":
                    raise InputError("unsupported_format", f"not an image: looks like {describe(data)}") from None
                raise
            fmt = "dicom"
        elif fmt == "dicom":
            from forensics.io.dicom import load_dicom

            bare = data[128:132] != b"DICM"
            fields = load_dicom(data, max_pixels, bare=bare, confident=True)
        elif fmt == "nifti":
            from forensics.io.nifti import load_nifti

            fields = load_nifti(data, max_pixels)
        else:
            from forensics.io.raster import decode_raster

            fields = decode_raster(data, fmt, max_pixels)
    except InputError:
        raise
    except MemoryError:
        raise InputError("too_many_pixels", "out of memory while decoding") from None
    except BaseException as exc:  # noqa: BLE001 - a decoder bug or a file it chokes on must not crash a batch
        # BaseException: decoders written in Rust raise pyo3's PanicException, which is not an Exception
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise InputError(
            "corrupt_image", f"{fmt or 'image'} decoder failed: {type(exc).__name__}: {exc}"[:500]
        ) from None

    return MedicalImage(path=path_str, sha256=sha256, format=fmt, raw=data, **fields)
