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


def _ifd_entry(data: bytes, e: str, p: int) -> tuple[int, int, int, bytes | None]:
    """(tag, type, count, value bytes) of the 12-byte IFD entry at ``p``; the value is None when it points outside
    ``data`` or is longer than MAX_TEXT."""
    tag, typ, cnt = struct.unpack_from(e + "HHI", data, p)
    size = _TYPE_SIZE.get(typ, 1) * cnt
    if size <= 4:
        return tag, typ, cnt, data[p + 8 : p + 8 + size]
    (voff,) = struct.unpack_from(e + "I", data, p + 8)
    if voff + size > len(data) or size > MAX_TEXT:
        return tag, typ, cnt, None
    return tag, typ, cnt, data[voff : voff + size]


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
            tag, typ, cnt, value = _ifd_entry(data, e, p)
            if value is None:
                continue
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


# --- every tag, for `medaudit inspect` ---------------------------------------------------------------------------

_GPS_POINTER, _INTEROP_POINTER = 0x8825, 0xA005
# Names of the tags seen in practice (TIFF 6, EXIF 2.32); others are listed by number.
TAG_NAMES = {
    0x00FE: "NewSubfileType", 0x0100: "ImageWidth", 0x0101: "ImageLength", 0x0102: "BitsPerSample",
    0x0103: "Compression", 0x0106: "PhotometricInterpretation", 0x010D: "DocumentName", 0x0111: "StripOffsets",
    0x0112: "Orientation", 0x0115: "SamplesPerPixel", 0x0116: "RowsPerStrip", 0x0117: "StripByteCounts",
    0x011A: "XResolution", 0x011B: "YResolution", 0x011C: "PlanarConfiguration", 0x0128: "ResolutionUnit",
    0x013C: "HostComputer", 0x013D: "Predictor", 0x0142: "TileWidth", 0x0143: "TileLength", 0x0144: "TileOffsets",
    0x0145: "TileByteCounts", 0x0153: "SampleFormat", 0x0213: "YCbCrPositioning", 0x0214: "ReferenceBlackWhite",
    0x829A: "ExposureTime", 0x829D: "FNumber", 0x8822: "ExposureProgram", 0x8827: "ISOSpeedRatings",
    0x8773: "InterColorProfile", 0x83BB: "IPTC-NAA", 0x8649: "PhotoshopSettings", 0x9000: "ExifVersion",
    0x9010: "OffsetTime", 0x9011: "OffsetTimeOriginal", 0x9012: "OffsetTimeDigitized",
    0x9101: "ComponentsConfiguration", 0x9201: "ShutterSpeedValue", 0x9202: "ApertureValue",
    0x9204: "ExposureBiasValue", 0x9207: "MeteringMode", 0x9209: "Flash", 0x920A: "FocalLength",
    0x927C: "MakerNote", 0x9290: "SubSecTime", 0x9291: "SubSecTimeOriginal", 0x9292: "SubSecTimeDigitized",
    0x9C9B: "XPTitle", 0x9C9D: "XPAuthor", 0x9C9E: "XPKeywords", 0x9C9F: "XPSubject", 0xA000: "FlashpixVersion",
    0xA001: "ColorSpace", 0xA002: "PixelXDimension", 0xA003: "PixelYDimension", 0xA402: "ExposureMode",
    0xA403: "WhiteBalance", 0xA406: "SceneCaptureType", 0xA420: "ImageUniqueID", 0xA430: "CameraOwnerName",
    0xA431: "BodySerialNumber", 0xA433: "LensMake", 0xA434: "LensModel", 0xA435: "LensSerialNumber",
    0x0000: "GPSVersionID", 0x0001: "GPSLatitudeRef", 0x0002: "GPSLatitude", 0x0003: "GPSLongitudeRef",
    0x0004: "GPSLongitude", 0x0005: "GPSAltitudeRef", 0x0006: "GPSAltitude", 0x0007: "GPSTimeStamp",
    0x001D: "GPSDateStamp", 0x0201: "JPEGInterchangeFormat", 0x0202: "JPEGInterchangeFormatLength",
    _EXIF_POINTER: "ExifIFDPointer", _GPS_POINTER: "GPSInfoIFDPointer", _INTEROP_POINTER: "InteroperabilityIFDPointer",
    _USER_COMMENT: "UserComment", _XP_COMMENT: "XPComment", _XMP_TAG: "XMLPacket",
    **IFD0_TEXT, **EXIF_TEXT,
}
_TYPE_NAMES = {1: "BYTE", 2: "ASCII", 3: "SHORT", 4: "LONG", 5: "RATIONAL", 6: "SBYTE", 7: "UNDEFINED",
               8: "SSHORT", 9: "SLONG", 10: "SRATIONAL", 11: "FLOAT", 12: "DOUBLE"}
_MAX_DUMPED = 4096  # entries over all IFDs
_MAX_VALUES = 64  # numbers shown per entry


@dataclass
class ExifEntry:
    """One IFD entry: where it sits, what it is, its decoded value (text, numbers, or a byte count)."""

    ifd: str
    tag: int
    name: str
    type: str
    count: int
    value: str | list | int | float | None


def dump_exif(data: bytes) -> tuple[list[ExifEntry], str | None]:
    """Every entry of IFD0, the Exif, GPS and Interoperability sub-IFDs and IFD1, decoded; bounded like
    :func:`read_exif`. Returns (entries, why the walk stopped early or None)."""
    if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
        return [], "no TIFF header"
    big = data[:2] == b"MM"
    e = ">" if big else "<"
    n = len(data)
    out: list[ExifEntry] = []
    seen: set[int] = set()
    problem: str | None = None

    def decode(typ: int, cnt: int, value: bytes):
        if typ == 2:
            return latin1(value).rstrip("\x00 ")
        if typ in (1, 6) and cnt <= _MAX_VALUES:
            return list(struct.unpack_from(f"{e}{cnt}{'B' if typ == 1 else 'b'}", value))
        fmt = {3: "H", 4: "I", 8: "h", 9: "i", 11: "f", 12: "d"}.get(typ)
        if fmt:
            k = min(cnt, _MAX_VALUES, len(value) // struct.calcsize(fmt))
            nums = list(struct.unpack_from(f"{e}{k}{fmt}", value))
            return nums[0] if cnt == 1 and nums else nums
        if typ in (5, 10):
            k = min(cnt, _MAX_VALUES, len(value) // 8)
            pairs = struct.unpack_from(f"{e}{2 * k}{'I' if typ == 5 else 'i'}", value)
            nums = [f"{a}/{b}" for a, b in zip(pairs[0::2], pairs[1::2], strict=True)]
            return nums[0] if cnt == 1 and nums else nums
        return f"<{len(value)} bytes>"

    def walk(offset: int, name: str) -> None:
        nonlocal problem
        if offset in seen or offset < 8 or offset + 2 > n or len(out) >= _MAX_DUMPED:
            return
        seen.add(offset)
        (count,) = struct.unpack_from(e + "H", data, offset)
        subs = []
        for i in range(min(count, _MAX_ENTRIES)):
            p = offset + 2 + 12 * i
            if p + 12 > n or len(out) >= _MAX_DUMPED:
                problem = problem or f"{name} overruns the stream"
                break
            tag, typ, cnt, found = _ifd_entry(data, e, p)
            value = b"" if found is None else found
            label = TAG_NAMES.get(tag, f"Tag0x{tag:04X}") if name != "GPS" or tag > 0x1F else \
                TAG_NAMES.get(tag, f"GPSTag0x{tag:04X}")
            if tag == _USER_COMMENT:
                shown = decode_user_comment(value, big)
            elif tag in (_XP_COMMENT, 0x9C9B, 0x9C9D, 0x9C9E, 0x9C9F):
                shown = value[: len(value) // 2 * 2].decode("utf-16-le", errors="replace").rstrip("\x00")
            elif tag == _XMP_TAG:
                shown = f"<{len(value)} bytes of XMP>"
            else:
                shown = decode(typ, cnt, value) if found is not None else \
                    f"<{_TYPE_SIZE.get(typ, 1) * cnt} bytes outside the stream>"
            out.append(ExifEntry(name, tag, label, _TYPE_NAMES.get(typ, str(typ)), cnt, shown))
            if tag in (_EXIF_POINTER, _GPS_POINTER, _INTEROP_POINTER) and isinstance(shown, int):
                subs.append((shown, {_EXIF_POINTER: "Exif", _GPS_POINTER: "GPS", _INTEROP_POINTER: "Interop"}[tag]))
        next_p = offset + 2 + 12 * min(count, _MAX_ENTRIES)
        for sub_offset, sub_name in subs:
            walk(sub_offset, sub_name)
        if name == "IFD0" and next_p + 4 <= n:
            walk(struct.unpack_from(e + "I", data, next_p)[0], "IFD1")

    walk(struct.unpack_from(e + "I", data, 4)[0], "IFD0")
    return out, problem
