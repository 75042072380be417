"""PNG, JPEG, TIFF, BMP, WebP and binary PGM/PPM: check the container, read the declared size, then decode with OpenCV.

OpenCV decodes damaged files without complaint (half a JPEG comes back as an image with a grey bottom), so each
container is walked first: PNG chunk CRCs and IEND, JPEG markers up to EOI, TIFF strip/tile extents, BMP and
WebP declared sizes. The walk also yields the declared width and height, which are checked against
``max_pixels`` before a single pixel is decoded.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from typing import Any

import numpy as np

from forensics.errors import InputError
from forensics.io._common import DEFAULT_MAX_PIXELS, check_pixels, robust_unit

# OpenCV reads this once, when cv2 is first imported: its own decompression-bomb guard behind ours.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))
import cv2  # noqa: E402

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_ARITHMETIC = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Deflate compresses at most about 1032:1 (long runs of one byte); a margin on top for zlib's framing.
_DEFLATE_MAX_RATIO = 1100


# ---------------------------------------------------------------------------------------------- containers
def _png_header(data: bytes) -> tuple[int, int, dict[str, Any]]:
    """Walk the PNG chunks: CRCs valid, IHDR first, IDAT present, IEND reached.

    Returns (width, height, facts, short): ``short`` says why the IDAT data cannot fill the declared size, or None.
    """
    view = memoryview(data)
    n = len(data)
    pos = len(_PNG_SIG)
    width = height = None
    has_idat, idat_bytes = False, 0
    while True:
        if pos + 12 > n:
            raise InputError("truncated", f"PNG ends at byte {n} without an IEND chunk")
        length, ctype = struct.unpack(">I4s", view[pos : pos + 8])
        if length > 0x7FFFFFFF:
            raise InputError("corrupt_image", f"PNG chunk at byte {pos} declares an impossible length {length}")
        end = pos + 12 + length
        if end > n:
            raise InputError("truncated", f"PNG chunk {ctype.decode('latin-1')!r} at byte {pos} runs past the end")
        (crc,) = struct.unpack(">I", view[end - 4 : end])
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            raise InputError("corrupt_image", f"PNG chunk {ctype.decode('latin-1')!r} at byte {pos} fails its CRC")
        if width is None:
            if ctype != b"IHDR" or length < 13:
                raise InputError("corrupt_image", "PNG does not start with an IHDR chunk")
            width, height, bit_depth, colour = struct.unpack(">IIBB", view[pos + 8 : pos + 18])
        elif ctype == b"IDAT":
            has_idat = True
            idat_bytes += length
        elif ctype == b"IEND":
            break
        pos = end
    if not has_idat:
        raise InputError("corrupt_image", "PNG has no IDAT (image data) chunk")
    # every row is a filter byte and its samples; deflate cannot shrink them more than _DEFLATE_MAX_RATIO times
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    raw = height * (1 + -(-width * channels * bit_depth // 8))
    short = None
    if idat_bytes * _DEFLATE_MAX_RATIO < raw:
        short = f"PNG declares {width}x{height} ({raw} bytes inflated) but holds only {idat_bytes} bytes of image data"
    facts: dict[str, Any] = {}
    if n > end:
        facts["trailing_bytes"] = n - end
    return width, height, facts, short


def _jpeg_header(data: bytes) -> tuple[int, int, dict[str, Any]]:
    """Walk the JPEG markers from SOI to EOI (through every scan). Returns (width, height, facts, short)."""
    n = len(data)
    pos = 2
    width = height = None
    facts: dict[str, Any] = {}
    scan_bytes, arithmetic = 0, False  # entropy-coded bytes over every scan; the frame's coding
    while True:
        # markers may be preceded by fill bytes; anything else between segments is tolerated like libjpeg does
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= n:
            raise InputError("truncated", "JPEG ends without an EOI marker")
        marker = data[pos + 1]
        if marker == 0xFF or marker == 0x00:
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            end = pos + 2
            break
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # standalone markers
            pos += 2
            continue
        if pos + 4 > n:
            raise InputError("truncated", "JPEG ends inside a marker segment")
        (seglen,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if seglen < 2:
            raise InputError("corrupt_image", f"JPEG marker 0xFF{marker:02X} at byte {pos} has length {seglen}")
        segend = pos + 2 + seglen
        if segend > n:
            raise InputError("truncated", f"JPEG segment 0xFF{marker:02X} at byte {pos} runs past the end")
        if marker in _JPEG_SOF:
            if seglen < 8:
                raise InputError("corrupt_image", "JPEG frame header too short")
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            arithmetic = marker in _JPEG_ARITHMETIC
            facts["jpeg_process"] = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive"}.get(marker, "other")
        if marker == 0xDA:  # SOS: entropy-coded data follows, up to the next real marker
            if width is None:
                raise InputError("corrupt_image", "JPEG scan before any frame header")
            i = segend
            scan_start = segend
            while True:
                i = data.find(b"\xff", i)
                if i < 0 or i + 1 >= n:
                    raise InputError("truncated", "JPEG ends inside the image data (no EOI marker)")
                nxt = data[i + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    i += 1
                    continue
                break
            scan_bytes += i - scan_start
            pos = i
        else:
            pos = segend
    if width is None:
        raise InputError("corrupt_image", "JPEG has no frame header (SOF)")
    if n > end:
        facts["trailing_bytes"] = n - end
    return width, height, facts, _jpeg_shortfall(width, height, scan_bytes, arithmetic)


def _jpeg_shortfall(width: int, height: int, scan_bytes: int, arithmetic: bool) -> str | None:
    """Why a JPEG's image data cannot cover its declared size, or None when it may.

    libjpeg decodes a scan that ends early as grey and allocates the full declared frame first: a header of
    11000 x 11000 over 8 x 8 of data took 2-3.6 GB and scored "ok". Huffman coding spends at least one bit per
    8 x 8 block of the first component (its DC difference), so fewer bytes than blocks / 8 cannot be a whole image.
    Arithmetic coding (rare) has no such floor: max_pixels bounds it.
    """
    if arithmetic or height == 0:  # height 0: declared later (DNL); OpenCV's own guard is the limit
        return None
    blocks = -(-width // 8) * -(-height // 8)
    if scan_bytes * 8 >= blocks:
        return None
    return f"JPEG declares {width}x{height} ({blocks} blocks of 8x8) but holds only {scan_bytes} bytes of image data"


def _tiff_header(data: bytes) -> tuple[int, int, dict[str, Any]]:
    """Read the first IFD: size, and that every strip or tile lies inside the file."""
    n = len(data)
    bo = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(bo + "H", data[2:4])[0] == 43
    try:
        if big:
            (ifd,) = struct.unpack(bo + "Q", data[8:16])
            count_fmt, count_size, entry_size, value_size, n_fmt = "Q", 8, 20, 8, "Q"
        else:
            (ifd,) = struct.unpack(bo + "I", data[4:8])
            count_fmt, count_size, entry_size, value_size, n_fmt = "H", 2, 12, 4, "I"
        if ifd + count_size > n:
            raise InputError("truncated", "TIFF ends before its first image directory")
        (count,) = struct.unpack(bo + count_fmt, data[ifd : ifd + count_size])
        if ifd + count_size + count * entry_size > n:
            raise InputError("truncated", "TIFF image directory runs past the end")
        tags: dict[int, tuple[int, ...]] = {}
        type_fmt = {1: "B", 3: "H", 4: "I", 16: "Q"}
        for k in range(count):
            e = ifd + count_size + k * entry_size
            tag, typ = struct.unpack(bo + "HH", data[e : e + 4])
            if tag not in (256, 257, 273, 279, 324, 325) or typ not in type_fmt:
                continue
            (cnt,) = struct.unpack(bo + n_fmt, data[e + 4 : e + 4 + value_size])
            fmt = type_fmt[typ]
            size = struct.calcsize(fmt) * cnt
            field = e + 4 + value_size
            if size <= value_size:
                start = field
            else:
                (start,) = struct.unpack(bo + ("Q" if big else "I"), data[field : field + value_size])
            if start + size > n:
                raise InputError("truncated", f"TIFF tag {tag} points past the end of the file")
            tags[tag] = struct.unpack(f"{bo}{cnt}{fmt}", data[start : start + size])
    except struct.error as exc:
        raise InputError("truncated", f"TIFF header cut short: {exc}") from None
    if 256 not in tags or 257 not in tags:
        raise InputError("corrupt_image", "TIFF has no ImageWidth/ImageLength")
    width, height = tags[256][0], tags[257][0]
    for off_tag, cnt_tag in ((273, 279), (324, 325)):
        if off_tag in tags and cnt_tag in tags:
            extent = max((o + c for o, c in zip(tags[off_tag], tags[cnt_tag], strict=False)), default=0)
            if extent > n:
                raise InputError("truncated", f"TIFF image data ends at byte {extent} but the file has {n} bytes")
    return width, height, {}, None


def _bmp_header(data: bytes) -> tuple[int, int, dict[str, Any]]:
    n = len(data)
    (offset,) = struct.unpack("<I", data[10:14])
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:
        width, height, _, bpp = struct.unpack("<HhHH", data[18:26])
        compression = 0
    else:
        if n < 34:
            raise InputError("truncated", "BMP ends inside its header")
        width, height, _, bpp, compression = struct.unpack("<iiHHI", data[18:34])
    width, height = abs(width), abs(height)
    if compression in (0, 3):  # uncompressed rows, each padded to 4 bytes
        needed = offset + ((bpp * width + 31) // 32) * 4 * height
        if needed > n:
            raise InputError("truncated", f"BMP pixel data needs {needed} bytes but the file has {n}")
    elif offset >= n:
        raise InputError("truncated", "BMP ends before its pixel data")
    return width, height, {}, None


def _webp_header(data: bytes) -> tuple[int, int, dict[str, Any]]:
    n = len(data)
    (riff_size,) = struct.unpack("<I", data[4:8])
    if 8 + riff_size > n:
        raise InputError("truncated", f"WebP declares {8 + riff_size} bytes but the file has {n}")
    if n < 30:
        raise InputError("truncated", "WebP ends inside its header")
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise InputError("corrupt_image", "WebP VP8 frame has no start code")
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            raise InputError("corrupt_image", "WebP VP8L stream has no signature")
        (bits,) = struct.unpack("<I", data[21:25])
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise InputError("corrupt_image", f"WebP starts with an unknown chunk {chunk!r}")
    facts: dict[str, Any] = {}
    if n > 8 + riff_size:
        facts["trailing_bytes"] = n - 8 - riff_size - (riff_size & 1)
    return width, height, facts, None


_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n)*(\d+)")


def pnm_fields(data: bytes) -> tuple[int, int, int, int]:
    """Width, height, maximum value of a binary PGM (P5) / PPM (P6), and where its samples start."""
    pos, values = 2, []
    for _ in range(3):
        m = _PNM_TOKEN.match(data, pos)
        if m is None:
            raise InputError("corrupt_image", "PGM/PPM header lacks its width, height or maximum value")
        values.append(int(m.group(1)))
        pos = m.end()
    return values[0], values[1], values[2], pos + 1  # one whitespace byte ends the header


def _pnm_header(data: bytes) -> tuple[int, int, dict[str, Any]]:
    """Binary PGM / PPM, as digitised films are often kept (mini-MIAS): exactly width x height samples of one or
    (maximum value > 255) two big-endian bytes per channel follow the header."""
    width, height, maxval, start = pnm_fields(data)
    if not 0 < maxval < 65536:
        raise InputError("corrupt_image", f"PGM/PPM declares an impossible maximum value {maxval}")
    channels = 3 if data[:2] == b"P6" else 1
    needed = start + width * height * channels * (2 if maxval > 255 else 1)
    if needed > len(data):
        raise InputError("truncated", f"PGM/PPM pixel data needs {needed} bytes but the file has {len(data)}")
    return width, height, {"maxval": maxval}, None


_HEADERS = {"png": _png_header, "jpeg": _jpeg_header, "tiff": _tiff_header, "bmp": _bmp_header, "webp": _webp_header,
            "pnm": _pnm_header}


# ---------------------------------------------------------------------------------------------- decode
def decode_raster(data: bytes, fmt: str, max_pixels: int) -> dict[str, Any]:
    """Check and decode a raster file.

    Args:
        data: the file bytes.
        fmt: ``png|jpeg|tiff|bmp|webp|pnm`` (from :func:`sniff_format`).
        max_pixels: limit on the declared width x height.

    Returns:
        Keyword arguments for :class:`MedicalImage`: ``pixels`` float32 (H, W) or (H, W, 3) RGB in [0, 1],
        ``stored`` (the integer samples for 16-bit and other non-8-bit images, else None), ``bit_depth``,
        ``metadata``.

    Raises:
        InputError: ``truncated``, ``corrupt_image`` or ``too_many_pixels``.
    """
    try:
        width, height, facts, short = _HEADERS[fmt](data)
    except (struct.error, IndexError) as exc:
        raise InputError("truncated", f"{fmt.upper()} header cut short: {exc}") from None
    if width <= 0 or (height <= 0 and fmt != "jpeg"):
        raise InputError("corrupt_image", f"{fmt.upper()} declares an empty image ({width}x{height})")
    # a JPEG may give its height 0 and declare it later (DNL marker): then OpenCV's own guard is the limit
    check_pixels(width * max(height, 1), max_pixels, f"{width}x{height}")
    if short is not None:  # a header bomb: the declared frame would be allocated in full, then mostly left grey
        raise InputError("truncated", short)

    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        # OpenCV's own pixel guard says "too big", "exceeds" or (imdecode, 4.x/5.x) fails its assertion
        # "pixels <= CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'"
        if any(k in text.lower() for k in ("too big", "exceed", "cv_io_max_image_pixels", "validateinputimagesize")):
            raise InputError(
                "too_many_pixels",
                f"OpenCV refused {width}x{height}: {text} (raise OPENCV_IO_MAX_IMAGE_PIXELS before import)",
            ) from None
        raise InputError("corrupt_image", f"OpenCV could not decode the {fmt.upper()}: {text}") from None
    if arr is None or arr.size == 0:
        raise InputError("corrupt_image", f"OpenCV could not decode the {fmt.upper()} image data")

    if arr.ndim == 3:
        channels = arr.shape[2]
        if channels == 1:
            arr = arr[:, :, 0]
        elif channels == 2:  # grey + alpha
            arr = arr[:, :, 0]
        else:
            arr = arr[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
            if np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 1], arr[:, :, 2]):
                arr = arr[:, :, 0]
        facts["channels"] = int(channels)
    else:
        facts["channels"] = 1
    arr = np.ascontiguousarray(arr)
    facts.update(width=int(arr.shape[1]), height=int(arr.shape[0]), dtype=str(arr.dtype))

    stored = None
    if arr.dtype == np.uint8:
        # a PGM/PPM may declare a maximum below 255 (a 4-bit scan): full scale is what it declares
        full = facts.get("maxval", 255)
        pixels = arr.astype(np.float32)
        pixels *= np.float32(1 / full)
        bit_depth = int(full).bit_length()
    elif arr.dtype == np.uint16:
        # a 12-bit PGM keeps its samples on 0..maxval: full scale is the declared maximum, not 65535
        full = facts.get("maxval", 65535)
        pixels = arr.astype(np.float32)
        pixels *= np.float32(1 / full)
        stored, bit_depth = arr, int(full).bit_length()
    else:  # signed or float samples (TIFF): no fixed full scale, so a robust min-max
        pixels, lo, hi = robust_unit(arr)
        stored, bit_depth = arr, arr.dtype.itemsize * 8
        facts.update(window_source="robust", window_low=lo, window_high=hi)
    return {"pixels": pixels, "stored": stored, "bit_depth": bit_depth, "metadata": facts}
