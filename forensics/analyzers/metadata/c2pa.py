"""C2PA manifest stores (JUMBF) read without validation: labels, the claim generator and AI source types.

This says what a manifest *claims*; it does not check signatures or hashes (use ``c2pa-python`` for that).
JPEG carries the store in APP11 segments (``JP`` + box instance + sequence number + boxes), PNG in ``caBX``
chunks, WebP in a ``C2PA`` chunk. Everything is bounded; broken input gives what was read before the break.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

_MAX_BOXES = 4096
_MAX_DEPTH = 12
_MAX_CBOR_ITEMS = 20000
_MAX_STORE = 16 << 20


@dataclass
class C2paInfo:
    """What the manifest store asserts.

    Attributes:
        labels: JUMBF description labels in file order (``c2pa``, ``urn:c2pa:…``, ``c2pa.actions.v2``, …).
        claim_generators: ``claim_generator`` strings and ``claim_generator_info`` names.
        actions: action names (``c2pa.created``, ``c2pa.edited``, …).
        source_types: digital source type terms found in actions (last URI component).
        malformed: why reading stopped, or None.
    """

    labels: list[str] = field(default_factory=list)
    claim_generators: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    source_types: list[str] = field(default_factory=list)
    malformed: str | None = None

    @property
    def present(self) -> bool:
        return "c2pa" in self.labels or any(label.startswith("urn:c2pa:") for label in self.labels)


def join_app11(payloads: list[bytes]) -> bytes:
    """Reassemble JUMBF boxes from JPEG APP11 payloads (JPEG XT: ``JP``, En, Z; continuations repeat the header)."""
    parts: dict[int, list[tuple[int, bytes]]] = {}
    for p in payloads:
        if len(p) < 16 or not p.startswith(b"JP"):
            continue
        en, z = struct.unpack_from(">HI", p, 2)
        parts.setdefault(en, []).append((z, p[8:]))
    out = bytearray()
    for en in sorted(parts):
        for i, (_z, chunk) in enumerate(sorted(parts[en], key=lambda t: t[0])):
            if i:
                lbox = struct.unpack_from(">I", chunk)[0] if len(chunk) >= 4 else 0
                chunk = chunk[16:] if lbox == 1 else chunk[8:]
            out += chunk
            if len(out) > _MAX_STORE:
                return bytes(out)
    return bytes(out)


class _Cbor:
    """A minimal bounded CBOR decoder (RFC 8949 major types 0-7) for claim and action assertions."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.items = 0

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None or self.pos + size > len(self.data):
            raise ValueError("bad CBOR argument")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "big")
        self.pos += size
        return value

    def item(self, depth: int = 0) -> Any:
        self.items += 1
        if depth > _MAX_DEPTH or self.items > _MAX_CBOR_ITEMS or self.pos >= len(self.data):
            raise ValueError("CBOR too deep, too long or truncated")
        head = self.data[self.pos]
        self.pos += 1
        major, info = head >> 5, head & 0x1F
        if major == 7:
            if info in (25, 26, 27):
                self.pos += {25: 2, 26: 4, 27: 8}[info]
                return None
            return {20: False, 21: True}.get(info)
        if info == 31:
            raise ValueError("indefinite-length CBOR not supported")
        arg = self._arg(info)
        if major in (0, 1):
            return arg if major == 0 else -1 - arg
        if major in (2, 3):
            if self.pos + arg > len(self.data):
                raise ValueError("CBOR string overruns")
            raw = self.data[self.pos : self.pos + arg]
            self.pos += arg
            return raw if major == 2 else raw.decode("utf-8", errors="replace")
        if major == 4:
            if arg > len(self.data):
                raise ValueError("CBOR array too long")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if arg > len(self.data):
                raise ValueError("CBOR map too long")
            out = {}
            for _ in range(arg):
                key = self.item(depth + 1)
                value = self.item(depth + 1)
                if isinstance(key, (str, int)):
                    out[key] = value
            return out
        return self.item(depth + 1)  # major 6: a tag; the tagged item is what matters


def decode_cbor(data: bytes) -> Any:
    """Decode one CBOR item; None when it is malformed or exceeds the bounds."""
    try:
        return _Cbor(data).item()
    except (ValueError, IndexError, RecursionError):
        return None


def _walk(data: bytes, start: int, end: int, depth: int, state: dict[str, Any], info: C2paInfo) -> None:
    pos = start
    label = None
    while pos + 8 <= end:
        state["boxes"] += 1
        if state["boxes"] > _MAX_BOXES:
            info.malformed = "too many boxes"
            return
        lbox, tbox = struct.unpack_from(">I4s", data, pos)
        header = 8
        if lbox == 1:
            if pos + 16 > end:
                info.malformed = "truncated box header"
                return
            lbox = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif lbox == 0:
            lbox = end - pos
        if lbox < header or pos + lbox > end:
            info.malformed = "box overruns its parent"
            return
        body_start, body_end = pos + header, pos + lbox
        if tbox == b"jumb" and depth < _MAX_DEPTH:
            _walk(data, body_start, body_end, depth + 1, state, info)
        elif tbox == b"jumd" and body_end - body_start >= 17:
            toggles = data[body_start + 16]
            if toggles & 0x02:
                nul = data.find(b"\x00", body_start + 17, body_end)
                raw = data[body_start + 17 : nul if nul >= 0 else body_end]
                label = raw[:256].decode("utf-8", errors="replace")
                info.labels.append(label)
        elif tbox == b"cbor" and label is not None:
            if label.startswith("c2pa.claim"):
                _read_claim(decode_cbor(data[body_start:body_end]), info)
            elif label.startswith("c2pa.actions"):
                _read_actions(decode_cbor(data[body_start:body_end]), info)
        pos = body_end


def _read_claim(claim: Any, info: C2paInfo) -> None:
    if not isinstance(claim, dict):
        return
    gen = claim.get("claim_generator")
    if isinstance(gen, str):
        info.claim_generators.append(gen)
    gen_info = claim.get("claim_generator_info")
    for entry in gen_info if isinstance(gen_info, list) else [gen_info]:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            version = entry.get("version")
            name = entry["name"] + (f" {version}" if isinstance(version, str) else "")
            info.claim_generators.append(name)


def _read_actions(assertion: Any, info: C2paInfo) -> None:
    if not isinstance(assertion, dict) or not isinstance(assertion.get("actions"), list):
        return
    for action in assertion["actions"][:256]:
        if not isinstance(action, dict):
            continue
        if isinstance(action.get("action"), str):
            info.actions.append(action["action"])
        dst = action.get("digitalSourceType")
        if isinstance(dst, str):
            info.source_types.append(dst.rsplit("/", 1)[-1])


def read_jumbf(store: bytes) -> C2paInfo:
    """Read a JUMBF manifest store (the boxes themselves, without any APP11 framing)."""
    info = C2paInfo()
    store = store[:_MAX_STORE]
    _walk(store, 0, len(store), 0, {"boxes": 0}, info)
    # Byte-level fallback: a store that our walk could not follow may still name its source type.
    for term in (b"compositeWithTrainedAlgorithmicMedia", b"/trainedAlgorithmicMedia"):
        if term in store and term.lstrip(b"/").decode() not in info.source_types:
            info.source_types.append(term.lstrip(b"/").decode())
    if not info.claim_generators:
        idx = store.find(b"\x6fclaim_generator")  # CBOR text(15) "claim_generator"
        if idx >= 0:
            value = decode_cbor(store[idx + 16 : idx + 16 + 1024])
            if isinstance(value, str):
                info.claim_generators.append(value)
    info.labels = info.labels[:256]
    info.claim_generators = list(dict.fromkeys(info.claim_generators))[:8]
    info.actions = list(dict.fromkeys(info.actions))[:32]
    info.source_types = list(dict.fromkeys(info.source_types))[:16]
    return info
