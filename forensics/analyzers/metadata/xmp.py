"""XMP packets read by pattern, never by an XML parser: no entity is ever resolved, nothing can expand.

Finds the IPTC ``DigitalSourceType`` values (attribute, element or ``rdf:resource`` form), ``xmp:CreatorTool``
and medaudit's own provenance properties.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from forensics.analyzers.metadata._common import MAX_TEXT

IPTC_DST_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"

_DST = re.compile(
    r"DigitalSourceType\s{0,64}(?:=\s*[\"']([^\"'<>]{0,256})[\"']"
    r"|>([^<>]{0,256})<"
    r"|[^>]{0,64}?rdf:resource\s*=\s*[\"']([^\"'<>]{0,256})[\"'])",
    re.IGNORECASE,
)
_DST_URI = re.compile(r"cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]{1,64})")
# Element text is matched without surrounding \s* (stripped afterwards): overlapping whitespace quantifiers made
# the match quadratic on a padded packet.
_CREATOR_TOOL = re.compile(r"CreatorTool\s*(?:=\s*[\"']([^\"'<>]{0,512})[\"']|>([^<>]{0,512})<)", re.IGNORECASE)
_MEDAUDIT = re.compile(r"xmlns:medaudit\s*=|<medaudit:|\smedaudit:[A-Za-z]+\s*=")


@dataclass
class XmpInfo:
    """Values found in one or more XMP packets.

    Attributes:
        source_types: IPTC digital source type terms (the last path component, e.g. ``trainedAlgorithmicMedia``).
        creator_tools: ``xmp:CreatorTool`` values.
        medaudit: True when medaudit's own provenance namespace is present.
    """

    source_types: list[str] = field(default_factory=list)
    creator_tools: list[str] = field(default_factory=list)
    medaudit: bool = False


def _term(value: str) -> str:
    value = value.strip()
    return value.rsplit("/", 1)[-1] if "/" in value else value


def read_xmp(packets: list[bytes | str], into: XmpInfo | None = None) -> XmpInfo:
    """Scan XMP packets (bytes are decoded as UTF-8 with replacement; each is bounded to 1 MiB)."""
    info = into or XmpInfo()
    for packet in packets[:16]:
        text = packet[:MAX_TEXT]
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        for m in _DST.finditer(text):
            value = next(g for g in m.groups() if g is not None)
            if value.strip():
                info.source_types.append(_term(value))
        # Any full IPTC URI counts too (e.g. inside xmpMM:History or a bag written by an unusual tool).
        for m in _DST_URI.finditer(text):
            info.source_types.append(m.group(1))
        for m in _CREATOR_TOOL.finditer(text):
            value = next(g for g in m.groups() if g is not None).strip()
            if value:
                info.creator_tools.append(value)
        if _MEDAUDIT.search(text):
            info.medaudit = True
    info.source_types = list(dict.fromkeys(info.source_types))[:32]
    info.creator_tools = list(dict.fromkeys(info.creator_tools))[:32]
    return info
