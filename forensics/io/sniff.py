"""Which format a byte string is, told by its magic bytes (never by its file name)."""

from __future__ import annotations

import struct
import zlib

# Suffixes under which a DICOM file without the 128-byte preamble + "DICM" is plausible ("" = no suffix).
DICOM_SUFFIXES = frozenset({"", ".dcm", ".dicom", ".dic", ".ima"})

_PNG = b"\x89PNG\r\n\x1a\n"
_GZIP = b"\x1f\x8b"


def _nifti_header(head: bytes) -> bool:
    """True when ``head`` (at least 348 bytes wanted) starts a single-file NIfTI-1 or NIfTI-2 header."""
    if len(head) >= 348 and head[344:348] == b"n+1\x00":
        return struct.unpack("<i", head[:4])[0] == 348 or struct.unpack(">i", head[:4])[0] == 348
    if len(head) >= 12 and head[4:8] == b"n+2\x00":
        return struct.unpack("<i", head[:4])[0] == 540 or struct.unpack(">i", head[:4])[0] == 540
    return False


def _gunzip_head(data: bytes, n: int = 544) -> bytes:
    """The first ``n`` decompressed bytes of a gzip stream; b"" when it is not one."""
    try:
        return zlib.decompressobj(wbits=31).decompress(data[:65536], n)
    except zlib.error:
        return b""


def _looks_like_bare_dicom(data: bytes) -> bool:
    """A DICOM data set without preamble: the first element is a group 0002/0008 tag, either byte order."""
    if len(data) < 8:
        return False
    for fmt in ("<HH", ">HH"):
        group, elem = struct.unpack(fmt, data[:4])
        if group in (0x0002, 0x0008) and elem < 0x0100:
            vr = data[4:6]
            # explicit VR: two upper-case letters; implicit VR: a 4-byte length that fits in the file
            if vr.isalpha() and vr.isupper():
                return True
            length = struct.unpack(fmt[0] + "I", data[4:8])[0]
            return length < len(data)
    return False


def sniff_format(data: bytes, suffix: str = "") -> str | None:
    """The image format of ``data`` by its magic bytes.

    Args:
        data: the file bytes (the first few kilobytes are enough).
        suffix: the file suffix, lower-case with the dot (``".dcm"``); consulted only to accept a DICOM data set
            that lacks the preamble, which has no magic bytes of its own.

    Returns:
        ``'dicom'``, ``'png'``, ``'jpeg'``, ``'tiff'``, ``'bmp'``, ``'webp'``, ``'pnm'`` (binary PGM/PPM),
        ``'nifti'``, or None when the bytes are none of these.
    """
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(_PNG):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data.startswith(b"BM") and len(data) >= 26:
        # BITMAPFILEHEADER (14 bytes) then a DIB header whose size is one of the known ones
        dib = struct.unpack("<I", data[14:18])[0]
        if dib in (12, 16, 40, 52, 56, 64, 108, 124):
            return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] in (b"P5", b"P6") and data[2:3].isspace():  # binary Netpbm: PGM (grey), PPM (RGB)
        return "pnm"
    if _nifti_header(data[:544]):
        return "nifti"
    if data.startswith(_GZIP) and _nifti_header(_gunzip_head(data)):
        return "nifti"
    if suffix.lower() in DICOM_SUFFIXES and _looks_like_bare_dicom(data):
        return "dicom"
    return None


def describe(data: bytes) -> str:
    """A short human description of bytes that are not an image, for ``unsupported_format`` messages."""
    head = data[:4096]
    known = {
        b"%PDF": "a PDF document",
        b"PK\x03\x04": "a ZIP archive (or an Office document)",
        b"GIF8": "a GIF image (not supported)",
        _GZIP: "a gzip archive",
        b"\x7fELF": "an ELF executable",
        b"SQLite format 3": "an SQLite database",
        b"\x00\x00\x00\x0cjP  ": "a JPEG 2000 file (not supported outside DICOM)",
        b"\xff\x4f\xff\x51": "a JPEG 2000 codestream (not supported outside DICOM)",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "an ISO media file (MP4/HEIF/AVIF, not supported)"
    if head.lstrip().startswith((b"{", b"[")):
        return "JSON text"
    if head.lstrip()[:5].lower() in (b"<?xml", b"<html", b"<!doc", b"<svg "):
        return "XML/HTML text"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut by the 4096-byte window is still text
        text = head[: exc.start].decode("utf-8") if exc.start > len(head) - 4 else None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "plain text"
    return f"unrecognised binary data (first bytes {head[:8].hex()})"
