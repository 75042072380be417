"""A bounded PNG chunk reader (stdlib ``struct`` + ``zlib``): text chunks, eXIf, caBX, trailing bytes.

Reads only the container; never inflates image data. Malformed structure stops the walk and is reported in
``PngInfo.malformed``; nothing raises.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from forensics.analyzers.metadata._common import MAX_CHUNKS, MAX_TEXT, MAX_TEXT_TOTAL, latin1, utf8

SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class PngInfo:
    """What the container says.

    Attributes:
        text: (keyword, value, chunk type) for every tEXt/zTXt/iTXt chunk, in file order.
        chunk_types: the chunk types in file order (bounded by ``MAX_CHUNKS``).
        spans: (type, body offset, body length) of each of those chunks, for a full dump (``medaudit inspect``).
        exif: payload of the first eXIf chunk (a TIFF stream), or None.
        cabx: payloads of caBX chunks (C2PA JUMBF), in order.
        trailing: number of bytes after the IEND chunk.
        malformed: why the walk stopped early, or None.
    """

    text: list[tuple[str, str, str]] = field(default_factory=list)
    chunk_types: list[str] = field(default_factory=list)
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    exif: bytes | None = None
    cabx: list[bytes] = field(default_factory=list)
    trailing: int = 0
    trailing_head: bytes = b""
    malformed: str | None = None

    def get(self, keyword: str) -> str | None:
        """The first text value stored under ``keyword`` (exact match), or None."""
        for key, value, _ in self.text:
            if key == keyword:
                return value
        return None


def _inflate(data: bytes, budget: int) -> bytes | None:
    """Inflate at most ``budget`` bytes (decompression-bomb guard); None when the stream is broken."""
    try:
        d = zlib.decompressobj()
        out = d.decompress(data, max(1, budget))
        return out
    except zlib.error:
        return None


def read_png(data: bytes) -> PngInfo:
    """Walk the chunks of a PNG file.

    Args:
        data: the whole file.

    Returns:
        A PngInfo; ``malformed`` says why the walk stopped when the structure is broken.
    """
    info = PngInfo()
    if not data.startswith(SIGNATURE):
        info.malformed = "no PNG signature"
        return info
    pos = len(SIGNATURE)
    n = len(data)
    inflated_total = 0
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            info.malformed = "truncated before IEND"
            return info
        length, ctype_raw = struct.unpack_from(">I4s", data, pos)
        ctype = latin1(ctype_raw)
        body_start = pos + 8
        body_end = body_start + length
        if length > 0x7FFFFFFF or body_end + 4 > n:
            info.malformed = f"chunk {ctype!r} overruns the file"
            return info
        info.chunk_types.append(ctype)
        info.spans.append((ctype, body_start, length))
        body = data[body_start:body_end] if ctype != "IDAT" else b""
        if ctype == "tEXt":
            key, _, value = body.partition(b"\x00")
            info.text.append((latin1(key[:79]), latin1(value[:MAX_TEXT]), ctype))
        elif ctype == "zTXt":
            key, _, rest = body.partition(b"\x00")
            if rest:
                budget = min(MAX_TEXT, MAX_TEXT_TOTAL - inflated_total)
                value = _inflate(rest[1:], budget) if budget > 0 else None
                if value is not None:
                    inflated_total += len(value)
                    info.text.append((latin1(key[:79]), latin1(value), ctype))
        elif ctype == "iTXt":
            key, _, rest = body.partition(b"\x00")
            if len(rest) >= 2:
                compressed, rest = rest[0], rest[2:]
                _lang, _, rest = rest.partition(b"\x00")
                _tkey, _, value = rest.partition(b"\x00")
                if compressed:
                    budget = min(MAX_TEXT, MAX_TEXT_TOTAL - inflated_total)
                    value = _inflate(value, budget) if budget > 0 else None
                    if value is not None:
                        inflated_total += len(value)
                if value is not None:
                    info.text.append((utf8(key[:79]), utf8(value[:MAX_TEXT]), ctype))
        elif ctype == "eXIf" and info.exif is None:
            info.exif = body
        elif ctype == "caBX":
            info.cabx.append(body)
        pos = body_end + 4  # skip CRC: a wrong CRC is the loader's business, not evidence
        if ctype == "IEND":
            info.trailing = n - pos
            info.trailing_head = data[pos : pos + 16]
            return info
    info.malformed = "too many chunks"
    return info
