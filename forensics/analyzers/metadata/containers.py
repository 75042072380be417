"""Per-container extraction: turn file bytes into Evidence using the parsers beside this module.

One function per container (PNG, JPEG, TIFF, WebP). Each returns Evidence only; malformed structure becomes an
informational ``file.malformed`` entry, never an exception.
"""

from __future__ import annotations

import json
import struct

from forensics import provenance
from forensics.analyzers.metadata._common import MAX_CHUNKS, snippet
from forensics.analyzers.metadata.c2pa import C2paInfo, join_app11, read_jumbf
from forensics.analyzers.metadata.codes import evidence
from forensics.analyzers.metadata.exif import read_exif
from forensics.analyzers.metadata.generators import creator_tool_rules, exif_rules, generator_name, png_text_rules
from forensics.analyzers.metadata.jpeg_markers import estimate_quality, read_jpeg
from forensics.analyzers.metadata.png_chunks import read_png
from forensics.analyzers.metadata.xmp import XmpInfo, read_xmp
from forensics.records import Evidence

_AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
_NEUTRAL_ACTIONS = (
    "c2pa.created",
    "c2pa.opened",
    "c2pa.placed",
    "c2pa.published",
    "c2pa.converted",
    "c2pa.transcoded",
    "c2pa.repackaged",
    "c2pa.watermarked",
)


def _looks_like_padding(head: bytes, length: int) -> bool:
    return length <= 64 and not head.strip(b"\x00\xff \r\n\t")


def xmp_evidence(info: XmpInfo, where: str) -> list[Evidence]:
    found: list[Evidence] = []
    if info.medaudit:
        found.append(evidence("medaudit.provenance", f"medaudit provenance namespace in {where} XMP"))
    terms = set(info.source_types)
    if "trainedAlgorithmicMedia" in terms:
        found.append(
            evidence(
                "xmp.trained_algorithmic_media",
                f"{where} XMP DigitalSourceType is trainedAlgorithmicMedia (created by a generative model)",
            )
        )
    if "compositeWithTrainedAlgorithmicMedia" in terms:
        found.append(
            evidence(
                "xmp.composite_trained_algorithmic_media",
                f"{where} XMP DigitalSourceType is "
                "compositeWithTrainedAlgorithmicMedia (generated elements composited in)",
            )
        )
    if terms & {"algorithmicMedia", "compositeSynthetic"}:
        found.append(
            evidence(
                "xmp.algorithmic_media",
                f"{where} XMP DigitalSourceType is "
                f"{', '.join(sorted(terms & {'algorithmicMedia', 'compositeSynthetic'}))}",
            )
        )
    found += creator_tool_rules(info.creator_tools)
    return found


def c2pa_evidence(info: C2paInfo, where: str) -> list[Evidence]:
    if not info.present:
        return []
    generator = info.claim_generators[0] if info.claim_generators else "unnamed claim generator"
    ai_terms = [t for t in _AI_SOURCE_TYPES if t in info.source_types]
    named = next((g for g in info.claim_generators if generator_name(g)), None)
    base = f"C2PA manifest in {where}, claim generator '{snippet(generator, 80)}'"
    if ai_terms:
        return [evidence("c2pa.manifest", f"{base}; actions declare {', '.join(ai_terms)}", 1.0)]
    if named:
        return [evidence("c2pa.manifest", f"{base}; the claim generator is an image generator", 1.0)]
    edits = [a for a in info.actions if a not in _NEUTRAL_ACTIONS]
    if edits:
        return [
            evidence("c2pa.manifest", f"{base}; edit actions {', '.join(edits[:4])} (signatures not verified)", 0.15)
        ]
    return [evidence("c2pa.manifest", f"{base}; no generative or edit action (signatures not verified)", 0.0)]


def _exif_evidence(data: bytes | None, where: str) -> tuple[list[Evidence], dict[str, str], bytes | None]:
    if not data:
        return [], {}, None
    info = read_exif(data)
    found = exif_rules(info.tags, where)
    if info.xmp:
        found += xmp_evidence(read_xmp([info.xmp]), where)
    return found, info.tags, info.thumbnail


def png_evidence(data: bytes) -> list[Evidence]:
    info = read_png(data)
    found: list[Evidence] = []
    if info.malformed:
        found.append(evidence("file.malformed", f"PNG: {info.malformed}"))
    for key, value, ctype in info.text:
        if key == provenance.PNG_KEYWORD:
            try:
                label = json.loads(value) if len(value) < 65536 else {}
            except ValueError:
                label = {}
            label = label if isinstance(label, dict) else {}
            facts = ", ".join(f"{k} {snippet(str(label[k]), 40)}" for k in ("generator", "version") if k in label)
            found.append(
                evidence(
                    "medaudit.provenance",
                    f"medaudit provenance label in PNG {ctype}{' (' + facts + ')' if facts else ''}",
                )
            )
            break
    found += png_text_rules(info.text)
    xmp_packets = [v for k, v, _ in info.text if k == provenance.XMP_KEYWORD]
    if xmp_packets:
        found += xmp_evidence(read_xmp(xmp_packets), "PNG iTXt")
    exif_found, _, _ = _exif_evidence(info.exif, "PNG eXIf")
    found += exif_found
    if info.cabx:
        found += c2pa_evidence(read_jumbf(b"".join(info.cabx)), "PNG caBX")
    if info.trailing and not _looks_like_padding(info.trailing_head, info.trailing):
        found.append(evidence("file.trailing_data", f"{info.trailing} bytes after the PNG IEND chunk"))
    return found


def jpeg_evidence(data: bytes) -> list[Evidence]:
    info = read_jpeg(data)
    found: list[Evidence] = []
    if info.malformed:
        found.append(evidence("file.malformed", f"JPEG: {info.malformed}"))
    exif_found, tags, thumbnail = _exif_evidence(info.exif, "EXIF")
    found += exif_found
    if info.xmp:
        found += xmp_evidence(read_xmp(info.xmp), "JPEG APP1")
    if info.app11:
        found += c2pa_evidence(read_jumbf(join_app11(info.app11)), "JPEG APP11")
    for comment in info.comments[:8]:
        name = generator_name(comment[:4096].decode("latin-1"))
        if name:
            found.append(evidence("exif.software_generator", f"JPEG COM segment names a generator: {snippet(name)}"))
            break
    quality = estimate_quality(info.dqt)
    if quality is not None:
        kind = "standard IJG tables" if quality.standard else "non-IJG tables, nearest IJG quality"
        found.append(evidence("jpeg.quality", f"estimated JPEG quality {quality.quality} ({kind})"))
        if not quality.standard:
            found.append(
                evidence(
                    "jpeg.nonstandard_tables",
                    "quantization tables are not IJG-scaled (camera, Adobe or another encoder)",
                )
            )
        else:
            camera = " ".join(tags.get(k, "") for k in ("Make", "Model")).strip()
            thumb_q = estimate_quality(read_jpeg(thumbnail).dqt) if thumbnail else None
            if camera and not generator_name(camera):
                found.append(
                    evidence(
                        "jpeg.resaved",
                        f"EXIF names a camera ({snippet(camera, 40)}) but the image "
                        f"uses IJG tables at quality {quality.quality}: re-encoded by software",
                    )
                )
            elif thumb_q is not None and not thumb_q.standard:
                found.append(
                    evidence(
                        "jpeg.resaved",
                        "the EXIF thumbnail has non-IJG (camera) tables but the image "
                        f"uses IJG tables at quality {quality.quality}: re-encoded by software",
                    )
                )
    if info.trailing and not _looks_like_padding(info.trailing_head, info.trailing):
        mpf = "MPF" in info.app_tags and info.trailing_head.startswith(b"\xff\xd8")
        if not mpf:
            found.append(evidence("file.trailing_data", f"{info.trailing} bytes after the JPEG end-of-image marker"))
    return found


def tiff_evidence(data: bytes) -> list[Evidence]:
    found, _, _ = _exif_evidence(data, "TIFF")
    return found


def webp_evidence(data: bytes) -> list[Evidence]:
    found: list[Evidence] = []
    if len(data) < 12:
        return [evidence("file.malformed", "WebP: truncated RIFF header")]
    (size,) = struct.unpack_from("<I", data, 4)
    end = min(len(data), 8 + size)
    pos = 12
    for _ in range(MAX_CHUNKS):
        if pos + 8 > end:
            break
        fourcc, length = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : min(end, pos + 8 + length)]
        if fourcc == b"EXIF":
            exif_found, _, _ = _exif_evidence(body[6:] if body.startswith(b"Exif\x00\x00") else body, "WebP EXIF")
            found += exif_found
        elif fourcc == b"XMP ":
            found += xmp_evidence(read_xmp([body]), "WebP")
        elif fourcc == b"C2PA":
            found += c2pa_evidence(read_jumbf(body), "WebP C2PA chunk")
        pos += 8 + length + (length & 1)
    trailing = len(data) - (8 + size)
    if trailing > 0 and not _looks_like_padding(data[8 + size : 8 + size + 16], trailing):
        found.append(evidence("file.trailing_data", f"{trailing} bytes after the WebP RIFF container"))
    return found
