"""The metadata analyzer: deterministic rules over what the file says about itself.

Generator signatures (PNG text, EXIF, XMP, C2PA), JPEG quantization and re-save traces, trailing data, DICOM
consistency and medaudit's own provenance labels. See README.md in this folder for every evidence code.

Metadata is an assertion by whoever wrote the file last: a signature is strong but can be planted, and the
absence of metadata is never evidence of authenticity, so a file with no findings scores None, not 0. Cryptographic
signatures (C2PA, DICOM PS3.15) are the exception: they are verified here (``signatures.py``), against the user's
trust list when one is given.
"""

from __future__ import annotations

import io
from typing import Any

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import Analyzer
from forensics.analyzers.metadata.codes import CODES, is_decisive
from forensics.analyzers.metadata.containers import jpeg_evidence, png_evidence, tiff_evidence, webp_evidence
from forensics.analyzers.metadata.dicom_rules import DicomContext, dicom_rules
from forensics.analyzers.metadata.signatures import dicom_signature, raster_signature
from forensics.io.sniff import sniff_format
from forensics.records import Evidence, Finding, MedicalImage

DECISIVE_SCORE = 0.99


def combine(evidence: list[Evidence]) -> tuple[float | None, bool]:
    """(score, decisive): noisy-OR over weighted evidence; None when nothing with weight fired."""
    weights = [min(max(e.weight, 0.0), 1.0) for e in evidence if e.weight > 0]
    if not weights:
        return None, False
    keep = 1.0
    for w in weights:
        keep *= 1.0 - w
    score = 1.0 - keep
    decisive = any(is_decisive(e) for e in evidence)
    if decisive:
        score = max(score, DECISIVE_SCORE)
    return score, decisive


@register_analyzer("metadata")
class MetadataAnalyzer(Analyzer):
    """Rules over file metadata and DICOM headers; ``analyze(image) -> Finding``.

    Args:
        parse_dicom: parse DICOM bytes with pydicom when the record carries no dataset.
        trust_list: PEM certificates; a signature chaining to one of them is reported as trusted.
    """

    name = "metadata"
    version = "1.1.0"
    kind = "rules"
    codes = CODES
    settings = ("trust_list",)

    def __init__(self, parse_dicom: bool = True, trust_list: str | None = None):
        self.parse_dicom = parse_dicom
        self.trust_list = trust_list

    def analyze(self, image: MedicalImage) -> Finding:
        raw = image.raw or b""
        container = sniff_format(raw) or image.format  # the bytes decide: a wrong extension must not hide a signature
        evidence: list[Evidence] = []
        try:
            if container == "png":
                evidence = png_evidence(raw)
                evidence += self._signature(lambda: raster_signature(image, "png", self.trust_list))
            elif container == "jpeg":
                evidence = jpeg_evidence(raw)
                evidence += self._signature(lambda: raster_signature(image, "jpeg", self.trust_list))
            elif container == "tiff":
                evidence = tiff_evidence(raw)
            elif container == "webp":
                evidence = webp_evidence(raw)
            elif container == "dicom" or image.dicom is not None:
                ds = image.dicom if image.dicom is not None else self._read_dicom(raw)
                if ds is not None:
                    evidence = dicom_rules(DicomContext(ds=ds, raw=raw, stored=image.stored))
                    evidence += self._signature(lambda: dicom_signature(ds, self.trust_list))
        except Exception as exc:  # noqa: BLE001 - last line of defence: hostile bytes never fail a scan
            evidence.append(Evidence("file.malformed", f"metadata parser stopped: {type(exc).__name__}", 0.0))
        evidence = _dedupe(evidence)
        score, decisive = combine(evidence)
        return self.finding(score, evidence, decisive=decisive)

    @staticmethod
    def _signature(check) -> list[Evidence]:
        """A signature check that cannot complete is itself a finding (a broken signature), never a failed scan."""
        try:
            return check()
        except Exception as exc:  # noqa: BLE001 - hostile signature structures must not stop the other rules
            return [Evidence("signature.invalid", f"signature could not be checked: {type(exc).__name__}",
                             CODES["signature.invalid"].weight)]

    def _read_dicom(self, raw: bytes) -> Any:
        if not self.parse_dicom or not raw:
            return None
        import pydicom

        try:
            return pydicom.dcmread(io.BytesIO(raw), force=True)
        except Exception:  # noqa: BLE001 - not readable as DICOM: no header evidence
            return None


def _dedupe(evidence: list[Evidence]) -> list[Evidence]:
    """One entry per code (the heaviest), so the same label found twice does not count twice."""
    best: dict[str, Evidence] = {}
    for e in evidence:
        if e.code not in best or e.weight > best[e.code].weight:
            best[e.code] = e
    return list(best.values())


__all__ = ["MetadataAnalyzer", "CODES", "combine"]
