"""Small helpers shared by the metadata parsers: bounded text decoding and safe message snippets."""

from __future__ import annotations

import re

# Hard bounds that keep every parser linear and small on hostile input.
MAX_CHUNKS = 4096  # PNG chunks / JPEG segments / RIFF chunks walked per file
MAX_TEXT = 1 << 20  # bytes of one decoded text value (zTXt/iTXt inflate limit)
MAX_TEXT_TOTAL = 8 << 20  # bytes of inflated text over a whole file

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def snippet(text: str, limit: int = 60) -> str:
    """A short, single-line, printable excerpt of ``text`` for an evidence message (never a whole prompt)."""
    text = _UNPRINTABLE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def latin1(data: bytes) -> str:
    return data.decode("latin-1", errors="replace")


def utf8(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
