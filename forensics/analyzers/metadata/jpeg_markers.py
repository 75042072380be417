"""A bounded JPEG marker walker: DQT tables and the IJG quality estimate, APP1 EXIF/XMP, APP11 JUMBF, COM, EOI.

Reads marker segments only (never the entropy-coded data beyond scanning it for the end marker). Broken
structure stops the walk and is reported in ``JpegInfo.malformed``; nothing raises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from forensics.analyzers.metadata._common import MAX_CHUNKS

SOI = b"\xff\xd8"
EXIF_HEADER = b"Exif\x00\x00"
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"

# ITU-T T.81 Annex K tables in natural (row-major) order; IJG scales these by quality.
_STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.int64,
)  # fmt: skip
_STD_CHROMA = np.full(64, 99, dtype=np.int64)
_STD_CHROMA[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 47, 66]
# Position in natural order of the k-th coefficient in zig-zag (file) order.
ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
     21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60,
     61, 54, 47, 55, 62, 63],
    dtype=np.int64,
)  # fmt: skip


def _ijg_tables(limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(100, 64) luminance and chrominance tables for q = 1..100, as libjpeg's ``jpeg_set_quality`` makes them."""
    q = np.arange(1, 101, dtype=np.int64)[:, None]
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
    luma = np.clip((_STD_LUMA[None] * scale + 50) // 100, 1, limit)
    chroma = np.clip((_STD_CHROMA[None] * scale + 50) // 100, 1, limit)
    return luma, chroma


_IJG = {255: _ijg_tables(255), 32767: _ijg_tables(32767)}


@dataclass
class JpegInfo:
    """What the markers say.

    Attributes:
        markers: (marker byte, offset) of each segment before the first scan and between scans, bounded.
        dqt: table id -> (64,) int array in natural order, and its precision (0: 8-bit, 1: 16-bit).
        exif: the TIFF stream of the first APP1 ``Exif`` segment, or None.
        xmp: XMP packets from APP1 segments.
        app11: payloads of APP11 segments (JPEG XT / JUMBF boxes: C2PA), in order.
        comments: COM segment texts.
        app_tags: short identifiers of APPn segments seen (``JFIF``, ``Exif``, ``XMP``, ``MPF``, ``Adobe``,
            ``Photoshop``, ``ICC``, ``JP``, ...).
        trailing: bytes after the end-of-image marker (0 when it was not reached).
        malformed: why the walk stopped early, or None.
    """

    markers: list[tuple[int, int]] = field(default_factory=list)
    dqt: dict[int, tuple[np.ndarray, int]] = field(default_factory=dict)
    exif: bytes | None = None
    xmp: list[bytes] = field(default_factory=list)
    app11: list[bytes] = field(default_factory=list)
    comments: list[bytes] = field(default_factory=list)
    app_tags: list[str] = field(default_factory=list)
    trailing: int = 0
    trailing_head: bytes = b""
    eoi_reached: bool = False
    malformed: str | None = None


_APP_IDS = (
    (b"JFIF\x00", "JFIF"),
    (b"JFXX\x00", "JFXX"),
    (EXIF_HEADER, "Exif"),
    (XMP_HEADER, "XMP"),
    (b"http://ns.adobe.com/xmp/extension/\x00", "XMP-ext"),
    (b"MPF\x00", "MPF"),
    (b"ICC_PROFILE\x00", "ICC"),
    (b"Adobe", "Adobe"),
    (b"Photoshop 3.0\x00", "Photoshop"),
    (b"Ducky", "Ducky"),
    (b"JP", "JP"),
    (b"FBMD", "FBMD"),
)


def _parse_dqt(body: bytes, info: JpegInfo) -> None:
    pos = 0
    while pos < len(body) and len(info.dqt) < 16:
        pq_tq = body[pos]
        precision, table_id = pq_tq >> 4, pq_tq & 0x0F
        size = 128 if precision else 64
        if precision > 1 or pos + 1 + size > len(body):
            info.malformed = info.malformed or "bad DQT segment"
            return
        raw = body[pos + 1 : pos + 1 + size]
        zz = np.frombuffer(raw, dtype=">u2" if precision else np.uint8).astype(np.int64)
        natural = np.empty(64, dtype=np.int64)
        natural[ZIGZAG] = zz
        info.dqt[table_id] = (natural, precision)
        pos += 1 + size


def _scan_to_eoi(data: bytes, pos: int, info: JpegInfo) -> int | None:
    """Skip entropy-coded data from ``pos``; return the offset of the next non-RST marker, or None at the end."""
    n = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= n:
            return None
        nxt = data[pos + 1]
        if nxt == 0x00 or nxt == 0xFF or 0xD0 <= nxt <= 0xD7:
            pos += 1 if nxt == 0xFF else 2
            continue
        return pos


def read_jpeg(data: bytes) -> JpegInfo:
    """Walk the marker segments of a JPEG file.

    Args:
        data: the whole file.

    Returns:
        A JpegInfo; ``malformed`` says why the walk stopped when the structure is broken.
    """
    info = JpegInfo()
    if not data.startswith(SOI):
        info.malformed = "no SOI marker"
        return info
    n = len(data)
    pos = 2
    for _ in range(MAX_CHUNKS):
        # Fill bytes (0xFF padding) may precede a marker.
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1
        if pos + 2 > n or data[pos] != 0xFF:
            info.malformed = "marker expected"
            return info
        marker = data[pos + 1]
        info.markers.append((marker, pos))
        if marker == 0xD9:  # EOI
            info.eoi_reached = True
            info.trailing = n - (pos + 2)
            info.trailing_head = data[pos + 2 : pos + 18]
            return info
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM / RSTn: no length
            pos += 2
            continue
        if pos + 4 > n:
            info.malformed = "truncated segment header"
            return info
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > n:
            info.malformed = f"segment 0x{marker:02X} overruns the file"
            return info
        body = data[pos + 4 : end]
        if marker == 0xDB:
            _parse_dqt(body, info)
        elif 0xE0 <= marker <= 0xEF:
            tag = next((name for prefix, name in _APP_IDS if body.startswith(prefix)), f"APP{marker - 0xE0}")
            info.app_tags.append(tag)
            if marker == 0xE1 and tag == "Exif" and info.exif is None:
                info.exif = body[len(EXIF_HEADER) :]
            elif marker == 0xE1 and tag == "XMP":
                info.xmp.append(body[len(XMP_HEADER) :])
            elif marker == 0xEB:
                info.app11.append(body)
        elif marker == 0xFE:
            info.comments.append(body)
        pos = end
        if marker == 0xDA:  # SOS: entropy-coded data follows
            nxt = _scan_to_eoi(data, pos, info)
            if nxt is None:
                info.malformed = "no end-of-image marker"
                return info
            pos = nxt
    info.malformed = "too many segments"
    return info


@dataclass
class QualityEstimate:
    """IJG quality of the tables. ``standard`` is True when every table equals IJG's table at ``quality``."""

    quality: int
    standard: bool
    tables: int


def estimate_quality(dqt: dict[int, tuple[np.ndarray, int]]) -> QualityEstimate | None:
    """Estimate the IJG quality factor (1..100) from DQT tables.

    Exact matches of IJG/Annex-K tables scaled by quality identify libjpeg-family encoders (OpenCV, Pillow,
    most web services); otherwise the quality whose tables are nearest (sum of absolute differences) is given
    and ``standard`` is False (a camera, Photoshop or another encoder).
    """
    if 0 not in dqt:
        return None
    luma_t, precision = dqt[0]
    luma_all, chroma_all = _IJG[32767 if precision else 255]
    err = np.abs(luma_all - luma_t[None]).sum(axis=1)
    chroma = dqt.get(1)
    if chroma is not None:
        err = err + np.abs(chroma_all - chroma[0][None]).sum(axis=1)
    best = int(np.argmin(err))
    standard = bool(err[best] == 0) and all(k in (0, 1) for k in dqt)
    return QualityEstimate(quality=best + 1, standard=standard, tables=len(dqt))
