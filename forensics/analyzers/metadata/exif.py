"""A minimal, bounded TIFF/EXIF IFD reader: the few tags that name a writer or carry generator text.

Input is a TIFF stream (``II*\\0`` or ``MM\\0*``): the payload of a JPEG APP1 ``Exif`` segment, a PNG/WebP
eXIf chunk, or a whole TIFF file. Malformed structure yields whatever was read before it; nothing raises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from forensics.analyzers.metadata._common import MAX_TEXT, latin1

_MAX_ENTRIES = 1024
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}

IFD0_TEXT = {
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0131: "Software",
    0x013B: "Artist",
    0x8298: "Copyright",
    0x0132: "DateTime",
}
EXIF_TEXT = {0x9003: "DateTimeOriginal", 0x9004: "DateTimeDigitized"}
_EXIF_POINTER = 0x8769
_USER_COMMENT = 0x9286
_XP_COMMENT = 0x9C9C  # Windows XPComment, UTF-16LE
_XMP_TAG = 0x02BC
_THUMB_OFFSET, _THUMB_LENGTH = 0x0201, 0x0202


@dataclass
class ExifInfo:
    """Decoded text tags (names as in the EXIF spec) plus a few structural facts."""

    tags: dict[str, str] = field(default_factory=dict)
    xmp: bytes | None = None
    thumbnail: bytes | None = None
    malformed: str | None = None


def decode_user_comment(value: bytes, big_endian: bool) -> str:
    """Decode an EXIF UserComment: an 8-byte charset prefix (``ASCII``, ``UNICODE``, ``JIS``, zeros) then data.

    ``UNICODE`` is UTF-16; writers disagree on its byte order (piexif writes big-endian even in little-endian
    files), so the order is guessed from where the zero bytes sit.
    """
    prefix, body = value[:8], value[8:]
    if prefix.startswith(b"UNICODE"):
        if len(body) >= 2 and body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return body.decode("utf-16", errors="replace").rstrip("\x00 ")
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        if even_zeros == odd_zeros:
            encoding = "utf-16-be" if big_endian else "utf-16-le"
        else:
            encoding = "utf-16-be" if even_zeros > odd_zeros else "utf-16-le"
        return body[: len(body) // 2 * 2].decode(encoding, errors="replace").rstrip("\x00 ")
    if prefix.startswith(b"ASCII") or prefix == b"\x00" * 8:
        return latin1(body).rstrip("\x00 ")
    if prefix.startswith(b"JIS"):
        return body.decode("shift_jis", errors="replace").rstrip("\x00 ")
    return latin1(value).rstrip("\x00 ")  # no valid prefix: many writers omit it


def read_exif(data: bytes) -> ExifInfo:
    """Read IFD0, the Exif sub-IFD and IFD1 (thumbnail) of a TIFF stream."""
    info = ExifInfo()
    if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
        info.malformed = "no TIFF header"
        return info
    big = data[:2] == b"MM"
    e = ">" if big else "<"
    n = len(data)

    def entries(offset: int):
        if offset < 8 or offset + 2 > n:
            return None, 0
        (count,) = struct.unpack_from(e + "H", data, offset)
        count = min(count, _MAX_ENTRIES)
        out = []
        for i in range(count):
            p = offset + 2 + 12 * i
            if p + 12 > n:
                info.malformed = "IFD overruns the stream"
                break
            tag, typ, cnt = struct.unpack_from(e + "HHI", data, p)
            size = _TYPE_SIZE.get(typ, 1) * cnt
            if size <= 4:
                value = data[p + 8 : p + 8 + size]
            else:
                (voff,) = struct.unpack_from(e + "I", data, p + 8)
                if voff + size > n or size > MAX_TEXT:
                    continue
                value = data[voff : voff + size]
            out.append((tag, typ, cnt, value))
        next_p = offset + 2 + 12 * count
        nxt = struct.unpack_from(e + "I", data, next_p)[0] if next_p + 4 <= n else 0
        return out, nxt

    def number(typ: int, value: bytes) -> int | None:
        if typ == 3 and len(value) >= 2:
            return struct.unpack_from(e + "H", value)[0]
        if typ == 4 and len(value) >= 4:
            return struct.unpack_from(e + "I", value)[0]
        return None

    (ifd0_off,) = struct.unpack_from(e + "I", data, 4)
    ifd0, ifd1_off = entries(ifd0_off)
    exif_off = None
    for tag, typ, _cnt, value in ifd0 or []:
        if tag in IFD0_TEXT:
            info.tags[IFD0_TEXT[tag]] = latin1(value).rstrip("\x00 ")
        elif tag == _EXIF_POINTER:
            exif_off = number(typ, value)
        elif tag == _XMP_TAG:
            info.xmp = value
        elif tag == _XP_COMMENT:
            info.tags["XPComment"] = value[: len(value) // 2 * 2].decode("utf-16-le", errors="replace").rstrip("\x00")
    if exif_off is not None and exif_off != ifd0_off:
        sub, _ = entries(exif_off)
        for tag, _typ, _cnt, value in sub or []:
            if tag == _USER_COMMENT:
                info.tags["UserComment"] = decode_user_comment(value, big)
            elif tag in EXIF_TEXT:
                info.tags[EXIF_TEXT[tag]] = latin1(value).rstrip("\x00 ")
    if ifd1_off and ifd1_off not in (ifd0_off, exif_off):
        ifd1, _ = entries(ifd1_off)
        fields = {tag: number(typ, value) for tag, typ, _cnt, value in ifd1 or []}
        off, length = fields.get(_THUMB_OFFSET), fields.get(_THUMB_LENGTH)
        if off and length and off + length <= n:
            info.thumbnail = data[off : off + length]
    return info
