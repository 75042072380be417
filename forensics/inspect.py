"""``medaudit inspect``: everything a file says about itself, as a tree an examiner can read (exiftool/dcmdump-like).

One record per file: ``{"path", "status", "format", "bytes", "sha256", "sections": [{"section", "entries"}]}``,
or ``{"path", "status": "error", "error": {"code", "message"}}``. An entry is ``{"name", "value"}`` with optional
``"children"`` (nested entries: sequence items, IFDs, table rows) and, for DICOM, ``"tag"``, ``"vr"``,
``"keyword"``. Identifiers (the names, IDs, dates and instance UIDs ``forensics.phi`` lists, and any other value
equal to one of them) become ``redacted:<hash>`` unless ``include_phi``.

The file is read once through the guarded reader (regular files, ``max_bytes``, the per-file time limit) and never
written. Parsing reuses the metadata analyzer's bounded readers (PNG chunks, JPEG markers and quantization tables,
EXIF, XMP, C2PA); only what they do not read (ICC header, IPTC-IIM, NIfTI header, DICOM element dump) is here.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from forensics.errors import InputError
from forensics.io.guarded import DEFAULT_MAX_BYTES, read_file, time_limit
from forensics.io.sniff import DICOM_SUFFIXES, describe, sniff_format
from forensics.phi import IDENTIFYING_VRS, is_identifying_element, redact

MAX_ENTRIES = 20000  # DICOM elements dumped per file (a hostile file can hold millions)
MAX_VALUE_CHARS = 1024  # characters of one text value
_HEX_HEAD = 16

Entry = dict[str, Any]


def entry(name: str, value: Any = None, children: list[Entry] | None = None, **extra: Any) -> Entry:
    out: Entry = {"name": name, "value": value, **extra}
    if children is not None:
        out["children"] = children
    return out


def _text(value: Any) -> str:
    s = str(value)
    return s if len(s) <= MAX_VALUE_CHARS else s[:MAX_VALUE_CHARS] + f"… ({len(s)} characters)"


class _Redactor:
    """Replaces identifiers, and any later value that contains one of them (a patient name copied into a
    private tag), with a salted hash; does nothing when PHI is to be shown."""

    def __init__(self, include_phi: bool):
        self.include_phi = include_phi
        self.known: set[str] = set()

    def __call__(self, value: Any, identifying: bool) -> tuple[Any, bool]:
        if self.include_phi or value in (None, ""):
            return value, False
        text = str(value)
        if identifying:
            for part in re.split(r"[\\^ ]+", text):
                if len(part) >= 4:
                    self.known.add(part.lower())
            return redact(text), True
        low = text.lower()
        if any(k in low for k in self.known):
            return redact(text), True
        return value, False


# --- files ----------------------------------------------------------------------------------------------------


def inspect_paths(paths: Iterable[str | os.PathLike], **options: Any) -> Iterator[dict[str, Any]]:
    """One record per file under ``paths`` (folders walked as ``scan`` walks them), in a stable order."""
    from forensics.inputs import iter_inputs

    for path, error in iter_inputs(paths):
        if error is not None:
            yield {"path": path, "status": "error", "error": {"code": error.code, "message": error.message}}
        else:
            yield inspect_file(path, **options)


def inspect_file(path: str | os.PathLike, *, include_phi: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
                 timeout_s: float = 60.0) -> dict[str, Any]:
    """The record of one file; an error record (code as in docs/FORMATS.md) when it cannot be read or parsed."""
    path = os.fspath(path)
    limit = time_limit(timeout_s)
    error: tuple[str, str] | None = None
    record: dict[str, Any] = {}
    try:
        with limit:
            data = read_file(path, max_bytes)
            record = inspect_bytes(data, path, include_phi=include_phi)
    except InputError as exc:
        error = (exc.code, exc.message)
    except (KeyboardInterrupt, SystemExit):
        raise
    except RecursionError:
        error = ("corrupt_image", "structure nested too deeply to list")
    except BaseException as exc:  # noqa: BLE001 - one hostile file must not end the run
        error = ("internal_error", f"{type(exc).__name__}: {exc}"[:500])
    if limit.expired:
        error = ("timeout", limit.message)
    if error is not None:
        return {"path": path, "status": "error", "error": {"code": error[0], "message": error[1]}}
    return record


def inspect_bytes(data: bytes, path: str = "<bytes>", *, include_phi: bool = False) -> dict[str, Any]:
    if not data:
        raise InputError("empty_file", "the file is empty (0 bytes)")
    name = os.path.basename(path).lower()
    suffix = ".nii.gz" if name.endswith(".nii.gz") else os.path.splitext(name)[1]
    fmt = sniff_format(data, suffix)
    guessed = fmt is None and suffix in DICOM_SUFFIXES  # maybe a bare data set: kept only if pydicom finds one
    if fmt is None and not guessed:
        raise InputError("unsupported_format", f"not an image: looks like {describe(data)}")
    red = _Redactor(include_phi)
    parsers = {"dicom": _dicom if not guessed else _bare_dicom, "png": _png, "jpeg": _jpeg, "tiff": _tiff,
               "webp": _webp, "bmp": _bmp, "pnm": _pnm, "nifti": _nifti}
    sections = parsers[fmt or "dicom"](data, red)
    fmt = fmt or "dicom"
    if fmt in ("dicom", "png", "jpeg"):
        sections.append(_signature_section(data, fmt))
    return {"path": path, "status": "ok", "format": fmt, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "phi_redacted": not include_phi, "sections": sections}


def _section(name: str, entries: list[Entry]) -> dict[str, Any]:
    return {"section": name, "entries": entries}


# --- DICOM ----------------------------------------------------------------------------------------------------


def _dicom(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    import pydicom

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            ds.keys()  # force=True reads lazily enough that a broken file fails here, not mid-dump
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on hostile bytes
            raise InputError("corrupt_image", f"DICOM parse failed: {type(exc).__name__}: {exc}"[:500]) from None
    if len(ds) == 0 and not getattr(ds, "file_meta", None):
        raise InputError("unsupported_format", f"not a DICOM data set: looks like {describe(data)}")
    budget = [MAX_ENTRIES]
    sections = []
    preamble = data[:128] if data[128:132] == b"DICM" else None
    file_entries = [entry("preamble", "absent (bare data set)" if preamble is None else _preamble(preamble))]
    if caught:
        file_entries.append(entry("pydicom warnings", len(caught)))  # counted, not quoted: they can echo values
    sections.append(_section("File", file_entries))
    meta = getattr(ds, "file_meta", None)
    if meta:
        sections.append(_section("DICOM file meta (group 0002)", _elements(meta, red, budget)))
    # Identifying values first, so a copy of them elsewhere (a private tag) is recognised wherever it sits.
    for elem in ds.iterall():
        if elem.VR != "SQ" and is_identifying_element(elem.keyword or "", elem.VR, elem.value):
            red(elem.value, True)
    sections.append(_section("DICOM data set", _elements(ds, red, budget)))
    if budget[0] <= 0:
        sections.append(_section("Limits", [entry("truncated", f"only the first {MAX_ENTRIES} elements are listed")]))
    return sections


_DICOM_MARKERS = ("SOPClassUID", "Modality", "StudyInstanceUID", "Rows", "PixelData")


def _bare_dicom(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    """As the loader: bytes without any magic count as DICOM only when pydicom finds standard attributes."""
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        found = any(k in ds for k in _DICOM_MARKERS)
    except Exception:  # noqa: BLE001 - not DICOM at all
        found = False
    if not found:
        raise InputError("unsupported_format", f"not an image: looks like {describe(data)}")
    return _dicom(data, red)


def _preamble(pre: bytes) -> str:
    if not pre.strip(b"\x00"):
        return "128 bytes, all zero"
    from forensics.analyzers.metadata.dicom_rules import _EXECUTABLE

    kind = next((what for magic, what in _EXECUTABLE.items() if pre.startswith(magic)), None)
    head = " ".join(f"{b:02x}" for b in pre[:8])
    return f"128 bytes, not zero (starts {head}" + (f": {kind})" if kind else ")")


def _elements(ds: Any, red: _Redactor, budget: list[int]) -> list[Entry]:
    out: list[Entry] = []
    for elem in ds:
        if budget[0] <= 0:
            break
        budget[0] -= 1
        out.append(_element(ds, elem, red, budget))
    return out


def _element(ds: Any, elem: Any, red: _Redactor, budget: list[int]) -> Entry:
    tag = elem.tag
    extra: dict[str, Any] = {"tag": f"({tag.group:04X},{tag.element:04X})", "vr": elem.VR}
    if elem.keyword:
        extra["keyword"] = elem.keyword
    name = elem.name
    if tag.is_private:
        extra["private"] = True
        if tag.element >= 0x1000:
            creator = ds.get((tag.group, tag.element >> 8))
            if creator is not None:
                extra["private_creator"] = str(creator.value)
    if elem.VR == "SQ":
        items = [entry(f"item {i + 1}", None, _elements(item, red, budget)) for i, item in enumerate(elem.value)]
        return entry(name, f"{len(items)} item(s)", items, **extra)
    value = _dicom_value(elem)
    identifying = is_identifying_element(elem.keyword or "", elem.VR, elem.value)
    if isinstance(value, str) and value.startswith("<") and elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        identifying = False  # a byte count, nothing of the value
    shown, redacted = red(value, identifying)
    if redacted:
        extra["redacted"] = True
    return entry(name, shown, **extra)


def _dicom_value(elem: Any) -> Any:
    value = elem.value
    if elem.tag == 0x7FE00010 or isinstance(value, (bytes, bytearray)):
        raw = bytes(value or b"")
        if elem.tag == 0x7FE00010 and getattr(elem, "is_undefined_length", False):
            return f"<encapsulated, {len(raw):,} bytes>"
        return f"<{len(raw):,} bytes>"
    if value is None:
        return None
    if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)):
        items = [v if isinstance(v, (int, float)) else _text(v) for v in list(value)[:256]]
        return items
    if isinstance(value, (int, float)):
        return value
    if elem.VR == "UI":
        from pydicom.uid import UID

        uid = UID(str(value))
        return f"{uid} ({uid.name})" if uid.name != str(uid) else str(uid)
    return _text(value)


# --- PNG ------------------------------------------------------------------------------------------------------

_PNG_COLOUR = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGB + alpha"}
_PNG_IDENTIFYING_KEYS = ("creation time", "author", "date", "time", "patient", "name")


def _png(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    from forensics.analyzers.metadata.png_chunks import read_png

    info = read_png(data)
    chunks, text, extra = [], [], []
    for ctype, start, length in info.spans:
        body = data[start : start + length] if ctype != "IDAT" else b""
        crc_ok = zlib.crc32(data[start - 4 : start + length]) == struct.unpack_from(">I", data, start + length)[0]
        chunks.append(entry(ctype, f"{length:,} bytes" + ("" if crc_ok else ", CRC WRONG")))
        if ctype == "IHDR" and length >= 13:
            w, h, depth, colour, comp, filt, interlace = struct.unpack_from(">IIBBBBB", body)
            extra.append(entry("IHDR", None, [
                entry("width", w), entry("height", h), entry("bit depth", depth),
                entry("colour type", f"{colour} ({_PNG_COLOUR.get(colour, 'invalid')})"),
                entry("compression", comp), entry("filter", filt), entry("interlace", "Adam7" if interlace else "none"),
            ]))
        elif ctype == "pHYs" and length >= 9:
            x, y, unit = struct.unpack_from(">IIB", body)
            extra.append(entry("pHYs", f"{x} x {y} pixels per {'metre' if unit == 1 else 'unit (aspect only)'}"))
        elif ctype == "gAMA" and length >= 4:
            extra.append(entry("gAMA", struct.unpack_from(">I", body)[0] / 100000))
        elif ctype == "sRGB" and length >= 1:
            extra.append(entry("sRGB", f"rendering intent {body[0]}"))
        elif ctype == "sBIT":
            extra.append(entry("sBIT", list(body[:4])))
        elif ctype == "tIME" and length >= 7:
            y, mo, d, hh, mi, ss = struct.unpack_from(">HBBBBB", body)
            extra.append(entry("tIME", red(f"{y:04d}-{mo:02d}-{d:02d} {hh:02d}:{mi:02d}:{ss:02d}", True)[0]))
        elif ctype == "iCCP":
            name_, _, rest = body.partition(b"\x00")
            profile = zlib.decompressobj().decompress(rest[1:], 1 << 22) if rest else b""
            extra.append(entry("iCCP", name_[:79].decode("latin-1"), _icc(profile)))
    from forensics import provenance

    for key, value, ctype in info.text:
        if key == provenance.XMP_KEYWORD:  # listed property by property in the XMP section (dates redacted there)
            text.append(entry(key, f"<{len(value):,} characters of XMP: see the XMP section>", chunk=ctype))
            continue
        identifying = any(k in key.lower() for k in _PNG_IDENTIFYING_KEYS)
        shown, redacted = red(_text(value), identifying)
        text.append(entry(key, shown, chunk=ctype, **({"redacted": True} if redacted else {})))
    sections = [_section("PNG chunks", chunks)]
    if extra:
        sections.append(_section("PNG image header and ancillary chunks", extra))
    if text:
        sections.append(_section("PNG text (tEXt/zTXt/iTXt)", text))
    sections += _container_trailer(info.malformed, info.trailing, "IEND")
    if info.exif:
        sections.append(_exif_section(info.exif, red, "EXIF (eXIf chunk)"))
    packets = [v for k, v, _ in info.text if k == provenance.XMP_KEYWORD]
    if packets:
        sections.append(_xmp_section(packets, red))
    if info.cabx:
        from forensics.analyzers.metadata.c2pa import read_jumbf

        sections.append(_c2pa_section(read_jumbf(b"".join(info.cabx)), "caBX chunk"))
    return sections


def _container_trailer(malformed: str | None, trailing: int, end: str) -> list[dict[str, Any]]:
    out = []
    if malformed:
        out.append(entry("structure", f"walk stopped: {malformed}"))
    if trailing:
        out.append(entry(f"bytes after {end}", trailing))
    return [_section("Structure", out)] if out else []


# --- JPEG -----------------------------------------------------------------------------------------------------

_SOF = {0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive", 0xC3: "lossless",
        0xC5: "differential sequential", 0xC6: "differential progressive", 0xC7: "differential lossless",
        0xC9: "extended sequential, arithmetic", 0xCA: "progressive, arithmetic", 0xCB: "lossless, arithmetic"}
_MARKER_NAMES = {0xD8: "SOI", 0xD9: "EOI", 0xDA: "SOS", 0xDB: "DQT", 0xC4: "DHT", 0xDD: "DRI", 0xFE: "COM",
                 0xCC: "DAC", 0xDC: "DNL"}
# ITU-T T.81 Annex K.3 code-length counts (BITS) of the example Huffman tables: what an encoder writes when it does
# not optimize (libjpeg's default); optimized tables are fitted to the image.
_STD_HUFFMAN_BITS = {
    (0, 0): bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
    (0, 1): bytes([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]),
    (1, 0): bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]),
    (1, 1): bytes([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77]),
}


def _jpeg(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    from forensics.analyzers.metadata.jpeg_markers import _APP_IDS, estimate_quality, read_jpeg

    info = read_jpeg(data)
    segments, frame, huffman, app = [], [], [], []
    icc_parts: list[tuple[int, bytes]] = []
    iptc_bodies: list[bytes] = []
    for marker, pos in info.markers:
        name = _MARKER_NAMES.get(marker) or (f"SOF{marker - 0xC0}" if marker in _SOF else None) or \
            (f"APP{marker - 0xE0}" if 0xE0 <= marker <= 0xEF else f"0x{marker:02X}")
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            segments.append(entry(name, f"at {pos}"))
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0] if pos + 4 <= len(data) else 0
        body = data[pos + 4 : pos + 2 + length]
        label = name
        if 0xE0 <= marker <= 0xEF:
            tag = next((t for prefix, t in _APP_IDS if body.startswith(prefix)), None)
            label = f"{name} {tag}" if tag else name
            if body.startswith(b"ICC_PROFILE\x00") and len(body) >= 14:
                icc_parts.append((body[12], body[14:]))
            elif body.startswith(b"Photoshop 3.0\x00"):
                iptc_bodies.append(body[14:])
            elif body.startswith(b"JFIF\x00") and len(body) >= 12:
                major, minor, units, xd, yd = struct.unpack_from(">BBBHH", body, 5)
                unit = {0: "aspect only", 1: "dpi", 2: "dots/cm"}.get(units, str(units))
                app.append(entry("JFIF", f"version {major}.{minor:02d}, density {xd} x {yd} {unit}"))
            elif body.startswith(b"Adobe") and len(body) >= 12:
                transform = {0: "none (RGB/CMYK)", 1: "YCbCr", 2: "YCCK"}.get(body[11], str(body[11]))
                app.append(entry("Adobe APP14", f"DCTEncodeVersion {struct.unpack_from('>H', body, 5)[0]}, "
                                                f"transform {transform}"))
        segments.append(entry(label, f"at {pos}, {length:,} bytes"))
        if marker in _SOF and len(body) >= 6:
            precision, h, w, nc = struct.unpack_from(">BHHB", body)
            comps = []
            for i in range(min(nc, 4)):
                if 6 + 3 * i + 3 <= len(body):
                    cid, hv, tq = body[6 + 3 * i : 9 + 3 * i]
                    comps.append(entry(f"component {cid}", f"sampling {hv >> 4}x{hv & 15}, quantization table {tq}"))
            frame.append(entry("frame", f"{_SOF[marker]}, {w} x {h}, {precision}-bit, {nc} component(s)", comps))
        elif marker == 0xC4:
            p = 0
            while p + 17 <= len(body):
                tc_th, bits = body[p], body[p + 1 : p + 17]
                std = _STD_HUFFMAN_BITS.get((tc_th >> 4, min(tc_th & 15, 1))) == bits
                huffman.append(entry(f"{'AC' if tc_th >> 4 else 'DC'} table {tc_th & 15}",
                                     "standard (Annex K)" if std else "custom (optimized)"))
                p += 17 + sum(bits)
        elif marker == 0xDD and len(body) >= 2:
            frame.append(entry("restart interval", struct.unpack_from(">H", body)[0]))
    sections = [_section("JPEG segments", segments)]
    if frame or app:
        sections.append(_section("JPEG frame", frame + app))
    quality = estimate_quality(info.dqt)
    tables = [entry(f"table {tid}", f"{'16' if prec else '8'}-bit",
                    [entry(f"row {r}", [int(v) for v in table[8 * r : 8 * r + 8]]) for r in range(8)])
              for tid, (table, prec) in sorted(info.dqt.items())]
    if tables:
        sections.append(_section("JPEG quantization tables", tables + [entry("encoder", _encoder(quality, info))]))
    if huffman:
        sections.append(_section("JPEG Huffman tables", huffman))
    if info.comments:
        sections.append(_section("JPEG comments (COM)", [entry(f"COM {i + 1}", _text(c.decode("latin-1")))
                                                         for i, c in enumerate(info.comments[:16])]))
    sections += _container_trailer(info.malformed, info.trailing, "EOI")
    if info.exif:
        sections.append(_exif_section(info.exif, red, "EXIF (APP1)"))
    if info.xmp:
        sections.append(_xmp_section(info.xmp, red))
    if iptc_bodies:
        sections.append(_section("Photoshop resources and IPTC (APP13)", _photoshop(b"".join(iptc_bodies), red)))
    if icc_parts:
        sections.append(_section("ICC profile (APP2)", _icc(b"".join(p for _, p in sorted(icc_parts)))))
    if info.app11:
        from forensics.analyzers.metadata.c2pa import join_app11, read_jumbf

        sections.append(_c2pa_section(read_jumbf(join_app11(info.app11)), "APP11"))
    return sections


def _encoder(quality: Any, info: Any) -> str:
    """What the tables point to. Exact IJG tables: libjpeg and everything built on it (libjpeg-turbo, OpenCV,
    Pillow, ImageMagick's default); otherwise the nearest IJG quality, with the APP markers as a hint."""
    if quality is None:
        return "no luminance table: cannot estimate"
    if quality.standard:
        return f"IJG libjpeg tables at quality {quality.quality} (libjpeg/libjpeg-turbo: OpenCV, Pillow, ImageMagick)"
    hint = ""
    if "Photoshop" in info.app_tags or "Adobe" in info.app_tags or "Ducky" in info.app_tags:
        hint = "; Adobe/Photoshop markers present (Photoshop writes its own tables)"
    elif "Exif" in info.app_tags:
        hint = "; EXIF present (cameras write their own tables)"
    return f"not IJG tables: nearest IJG quality {quality.quality} (a camera, Photoshop or another encoder){hint}"


# --- EXIF, XMP, IPTC, ICC, C2PA -------------------------------------------------------------------------------

_EXIF_IDENTIFYING = re.compile(r"Date|Time|GPS|Artist|Author|Owner|SerialNumber|ImageUniqueID|XPAuthor")


def _exif_section(data: bytes, red: _Redactor, title: str) -> dict[str, Any]:
    from forensics.analyzers.metadata.exif import dump_exif

    entries, problem = dump_exif(data[6:] if data.startswith(b"Exif\x00\x00") else data)  # some writers keep it
    by_ifd: dict[str, list[Entry]] = {}
    for e in entries:
        identifying = bool(_EXIF_IDENTIFYING.search(e.name)) and e.ifd != "Interop"
        shown, redacted = red(_text(e.value) if isinstance(e.value, str) else e.value, identifying)
        by_ifd.setdefault(e.ifd, []).append(entry(e.name, shown, tag=f"0x{e.tag:04X}", type=e.type,
                                                  **({"redacted": True} if redacted else {})))
    out = [entry(ifd, f"{len(items)} tag(s)", items) for ifd, items in by_ifd.items()]
    if problem:
        out.append(entry("structure", problem))
    return _section(title, out)


_XMP_PROPERTY = re.compile(
    r"<([A-Za-z][\w.-]{0,40}):([A-Za-z][\w.-]{0,60})(?:\s[^<>]{0,400})?>([^<>]{1,2000})</\1:\2>"
    r"|\s([A-Za-z][\w.-]{0,40}):([A-Za-z][\w.-]{0,60})\s*=\s*\"([^\"<>]{0,2000})\""
)
_XMP_IDENTIFYING = re.compile(r"date|time|creator|author|person|owner|by-?line|gps|contact|name", re.IGNORECASE)


def _xmp_section(packets: list[Any], red: _Redactor) -> dict[str, Any]:
    from forensics.analyzers.metadata.xmp import read_xmp

    summary = read_xmp(packets)
    out = [entry("DigitalSourceType", summary.source_types or None),
           entry("CreatorTool", summary.creator_tools or None),
           entry("medaudit provenance namespace", summary.medaudit)]
    props = []
    for packet in packets[:16]:
        text = packet[: 1 << 20]
        text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        for m in _XMP_PROPERTY.finditer(text):
            prefix, local, value = (m.group(1), m.group(2), m.group(3)) if m.group(1) else m.group(4, 5, 6)
            if prefix in ("xmlns", "rdf", "x") or not value.strip():
                continue
            identifying = bool(_XMP_IDENTIFYING.search(local)) and "tool" not in local.lower()
            shown, redacted = red(_text(value.strip()), identifying)
            props.append(entry(f"{prefix}:{local}", shown, **({"redacted": True} if redacted else {})))
            if len(props) >= 2000:
                break
    out.append(entry("properties", f"{len(props)}", props))
    return _section("XMP", out)


_IPTC_NAMES = {5: "ObjectName", 25: "Keywords", 40: "SpecialInstructions", 55: "DateCreated", 60: "TimeCreated",
               62: "DigitalCreationDate", 63: "DigitalCreationTime", 65: "OriginatingProgram", 70: "ProgramVersion",
               80: "By-line", 85: "By-lineTitle", 90: "City", 92: "Sub-location", 95: "Province-State",
               101: "Country", 103: "OriginalTransmissionReference", 105: "Headline", 110: "Credit", 115: "Source",
               116: "CopyrightNotice", 118: "Contact", 120: "Caption-Abstract", 122: "Writer-Editor"}
_IPTC_IDENTIFYING = {55, 60, 62, 63, 80, 85, 90, 92, 95, 101, 118, 122}


def _photoshop(data: bytes, red: _Redactor) -> list[Entry]:
    """Image resource blocks (``8BIM``); resource 0x0404 holds IPTC-IIM datasets, which are listed by name."""
    out, pos = [], 0
    while pos + 12 <= len(data) and data[pos : pos + 4] == b"8BIM" and len(out) < 512:
        rid = struct.unpack_from(">H", data, pos + 4)[0]
        nlen = data[pos + 6]
        npad = nlen + 1 + ((nlen + 1) & 1)
        p = pos + 6 + npad
        if p + 4 > len(data):
            break
        size = struct.unpack_from(">I", data, p)[0]
        body = data[p + 4 : p + 4 + size]
        if rid == 0x0404:
            out.append(entry("IPTC-NAA (0x0404)", f"{size} bytes", _iptc(body, red)))
        else:
            out.append(entry(f"resource 0x{rid:04X}", f"{size} bytes"))
        pos = p + 4 + size + (size & 1)
    return out


def _iptc(data: bytes, red: _Redactor) -> list[Entry]:
    out, pos = [], 0
    while pos + 5 <= len(data) and data[pos] == 0x1C and len(out) < 1024:
        record, dataset, size = data[pos + 1], data[pos + 2], struct.unpack_from(">H", data, pos + 3)[0]
        if size & 0x8000:  # extended length: not used for text; stop rather than guess
            break
        value = data[pos + 5 : pos + 5 + size].decode("utf-8", errors="replace")
        name = _IPTC_NAMES.get(dataset, f"dataset {dataset}") if record == 2 else f"record {record}:{dataset}"
        shown, redacted = red(_text(value), record == 2 and dataset in _IPTC_IDENTIFYING)
        out.append(entry(name, shown, **({"redacted": True} if redacted else {})))
        pos += 5 + size
    return out


def _icc(profile: bytes) -> list[Entry]:
    """The ICC header (ICC.1:2022 section 7.2) and the profile description; the tag table by signature."""
    if len(profile) < 132:
        return [entry("profile", f"{len(profile)} bytes: too short for an ICC header")]

    def sig(off: int) -> str:
        return profile[off : off + 4].decode("latin-1").strip("\x00 ") or "-"

    size = struct.unpack_from(">I", profile)[0]
    major, minor = profile[8], profile[9] >> 4
    out = [entry("size", size), entry("preferred CMM", sig(4)), entry("version", f"{major}.{minor}"),
           entry("class", sig(12)), entry("colour space", sig(16)), entry("PCS", sig(20)),
           entry("platform", sig(40)), entry("manufacturer", sig(48)), entry("model", sig(52)),
           entry("creator", sig(80)), entry("rendering intent", struct.unpack_from(">I", profile, 64)[0])]
    count = min(struct.unpack_from(">I", profile, 128)[0], 256)
    tags = []
    for i in range(count):
        p = 132 + 12 * i
        if p + 12 > len(profile):
            break
        tsig, off, tsize = profile[p : p + 4].decode("latin-1"), *struct.unpack_from(">II", profile, p + 4)
        tags.append(tsig)
        if tsig in ("desc", "cprt") and off + tsize <= len(profile):
            out.append(entry("description" if tsig == "desc" else "copyright", _icc_text(profile[off : off + tsize])))
    out.append(entry("tags", tags))
    return out


def _icc_text(body: bytes) -> str:
    kind = body[:4]
    if kind == b"desc" and len(body) >= 12:
        n = struct.unpack_from(">I", body, 8)[0]
        return _text(body[12 : 12 + n].decode("latin-1").rstrip("\x00"))
    if kind == b"text":
        return _text(body[8:].decode("latin-1").rstrip("\x00"))
    if kind == b"mluc" and len(body) >= 28:
        n, _rec = struct.unpack_from(">II", body, 8)
        length, offset = struct.unpack_from(">II", body, 20)
        return _text(body[offset : offset + length].decode("utf-16-be", errors="replace")) if n else ""
    return f"<{kind.decode('latin-1')}>"


def _c2pa_section(info: Any, where: str) -> dict[str, Any]:
    return _section(f"C2PA manifest ({where}; signatures not verified)", [
        entry("manifest present", info.present), entry("claim generators", info.claim_generators or None),
        entry("actions", info.actions or None), entry("digital source types", info.source_types or None),
        entry("JUMBF labels", info.labels[:64] or None),
        *([entry("structure", info.malformed)] if info.malformed else []),
    ])


def _signature_section(data: bytes, fmt: str) -> dict[str, Any]:
    """What the metadata analyzer's signature check concludes (C2PA in PNG/JPEG, PS3.15 in DICOM): verified, unlike
    the manifest listing above, with no trust list (``scan --trust-list`` says whether the signer is trusted)."""
    from forensics.analyzers.metadata.signatures import dicom_signature, raster_signature
    from forensics.io import load

    title = "Signature (verified; no trust list given)"
    try:
        image = load("inspected", data=data)
    except InputError as exc:
        return _section(title, [entry("not checked", f"{exc.code}: {exc.message}")])
    evidence = dicom_signature(image.dicom, None) if fmt == "dicom" else raster_signature(image, fmt, None)
    return _section(title, [entry(e.code, e.message) for e in evidence]
                    or [entry("not checked", "c2pa-python is not installed")])


# --- TIFF, WebP, BMP, NIfTI -----------------------------------------------------------------------------------


def _tiff(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    return [_exif_section(data, red, "TIFF IFDs")]


def _webp(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    size = struct.unpack_from("<I", data, 4)[0]
    end, pos = min(len(data), 8 + size), 12
    chunks, sections = [], []
    while pos + 8 <= end and len(chunks) < 4096:
        fourcc, length = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : min(end, pos + 8 + length)]
        name = fourcc.decode("latin-1")
        chunks.append(entry(name, f"{length:,} bytes"))
        if fourcc == b"EXIF":
            sections.append(_exif_section(body[6:] if body.startswith(b"Exif\x00\x00") else body, red, "EXIF"))
        elif fourcc == b"XMP ":
            sections.append(_xmp_section([body], red))
        elif fourcc == b"ICCP":
            sections.append(_section("ICC profile", _icc(body)))
        elif fourcc == b"C2PA":
            from forensics.analyzers.metadata.c2pa import read_jumbf

            sections.append(_c2pa_section(read_jumbf(body), "C2PA chunk"))
        pos += 8 + length + (length & 1)
    trailing = len(data) - (8 + size)
    return [_section("WebP RIFF chunks", chunks), *sections, *_container_trailer(None, max(trailing, 0), "RIFF")]


def _bmp(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    if len(data) < 30:
        raise InputError("truncated", "BMP header cut short")
    file_size, offset, dib = struct.unpack_from("<I4xII", data, 2)
    out = [entry("declared file size", file_size), entry("pixel data offset", offset), entry("DIB header size", dib)]
    if dib >= 40 and len(data) >= 54:
        w, h, planes, bpp, comp = struct.unpack_from("<iiHHI", data, 18)
        out += [entry("width", w), entry("height", h), entry("bits per pixel", bpp), entry("compression", comp)]
    return [_section("BMP header", out)]


def _pnm(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    from forensics.io.raster import pnm_fields  # late: the raster module imports OpenCV

    width, height, maxval, start = pnm_fields(data)
    out = [entry("type", "PPM (RGB)" if data[:2] == b"P6" else "PGM (grey)"), entry("width", width),
           entry("height", height), entry("maximum value", maxval)]
    # free-text comments may name a patient or a date: redacted unless PHI is asked for
    for comment in re.findall(rb"#([^\n]*)", data[:start]):
        value, hidden = red(comment.decode("latin-1").strip(), True)
        out.append(entry("comment", value, redacted=hidden) if hidden else entry("comment", value))
    return [_section("Netpbm header", out)]


_NIFTI_FREE_TEXT = ("descrip", "aux_file", "db_name", "intent_name")
_TIME_IN_TEXT = re.compile(r"(?:time|date)\s*=\s*[^;]*|\b(?:19|20)\d{6}\b", re.IGNORECASE)


def _nifti(data: bytes, red: _Redactor) -> list[dict[str, Any]]:
    import nibabel as nib
    import numpy as np

    head = data[:544]
    if data[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, 544)
        except zlib.error as exc:
            raise InputError("corrupt_image", f"gzip stream broken: {exc}") from None
    two = head[4:8] == b"n+2\x00" or head[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c")
    cls = nib.Nifti2Header if two else nib.Nifti1Header
    if len(head) < cls.sizeof_hdr:
        raise InputError("truncated", "NIfTI header cut short")
    try:
        header = cls(binaryblock=head[: cls.sizeof_hdr], check=False)
    except Exception as exc:  # noqa: BLE001 - nibabel raises HeaderDataError and others on hostile headers
        raise InputError("corrupt_image", f"NIfTI header unreadable: {type(exc).__name__}: {exc}"[:500]) from None
    out = []
    for key in header.keys():
        value = header[key]
        if isinstance(value, np.ndarray) and value.shape:
            shown: Any = [v.item() if hasattr(v, "item") else v for v in value.ravel()[:64]]
        else:
            shown = value.item() if hasattr(value, "item") else value
        if isinstance(shown, bytes):
            shown = shown.rstrip(b"\x00").decode("latin-1")
        if isinstance(shown, float) and not np.isfinite(shown):
            shown = str(shown)
        if isinstance(shown, list):
            shown = [str(v) if isinstance(v, float) and not np.isfinite(v) else v for v in shown]
        if key in _NIFTI_FREE_TEXT and isinstance(shown, str) and not red.include_phi:
            shown = _TIME_IN_TEXT.sub(lambda m: redact(m.group(0)), shown)  # dcm2niix writes "Time=<acquisition>"
        out.append(entry(key, shown))
    out.append(entry("data type", str(header.get_data_dtype())))
    ext = head[cls.sizeof_hdr : cls.sizeof_hdr + 4]
    if len(ext) == 4:
        out.append(entry("extensions", "present" if ext[0] else "none"))
    return [_section(f"NIfTI-{2 if two else 1} header", out)]


# --- text -----------------------------------------------------------------------------------------------------


def to_text(record: dict[str, Any]) -> str:
    """exiftool/dcmdump-style lines: sections, then indented ``name: value`` (DICOM lines start with tag and VR)."""
    from forensics.writers import printable

    lines = [f"== {printable(record['path'])}"]
    if record["status"] != "ok":
        lines.append(f"error {record['error']['code']}: {printable(record['error']['message'])}")
        return "\n".join(lines)
    lines.append(f"format {record['format']}, {record['bytes']:,} bytes, sha256 {record['sha256']}"
                 + (", identifiers redacted" if record.get("phi_redacted") else ""))
    for section in record["sections"]:
        lines.append(f"-- {section['section']}")
        _lines(section["entries"], 1, lines, printable)
    return "\n".join(lines)


def _lines(entries: list[Entry], depth: int, lines: list[str], printable) -> None:
    pad = "  " * depth
    for e in entries:
        head = f"{e['tag']} {e['vr']} " if "tag" in e and "vr" in e else ""
        creator = f" [{e['private_creator']}]" if "private_creator" in e else ""
        value = e.get("value")
        text = "" if value is None else (", ".join(map(str, value)) if isinstance(value, list) else str(value))
        lines.append(printable(f"{pad}{head}{e['name']}{creator}" + (f": {text}" if text else "")))
        if e.get("children"):
            _lines(e["children"], depth + 1, lines, printable)


__all__ = ["IDENTIFYING_VRS", "inspect_bytes", "inspect_file", "inspect_paths", "to_text"]
