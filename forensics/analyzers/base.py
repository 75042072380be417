"""What every analyzer is: a name, a version, whether it can run here, and ``analyze(image) -> Finding``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from forensics.records import Finding, MedicalImage

# DICOM modalities of the images the bundled pixel detectors learned from: chest X-ray (CR, DX), CT, and
# photographs/dermoscopy (XC); OT/SC for secondary captures. On anything else (MR, US, NM …) their scores mean
# nothing, so they abstain. Files without a modality (PNG, JPEG) are always analysed.
TRAINED_MODALITIES = frozenset({"CR", "DX", "CT", "XC", "OT", "SC"})
# Where the tamper localizer was trained: chest CT and chest X-ray.
TAMPER_MODALITIES = frozenset({"CR", "DX", "CT", "OT", "SC"})


class Analyzer:
    """Base class. Subclasses set ``name`` and ``version`` and implement ``analyze``.

    ``kind`` tells fusion how to use the finding: ``rules`` (metadata evidence), ``mark`` (watermark,
    provenance), ``pixel`` (learned, calibrated scores), ``reuse`` (matches in an index).
    """

    name: str = "base"
    version: str = "0"
    kind: str = "rules"
    modalities: frozenset[str] | None = None  # DICOM modalities it applies to; None: every image
    default: bool = True  # runs when no --analyzers are named; experimental ones opt in

    def applies_to(self, image: MedicalImage) -> bool:
        return self.modalities is None or image.modality is None or image.modality in self.modalities

    def availability(self) -> tuple[bool, str]:
        """(True, "") when the analyzer can run; else (False, why not), as pydicom's decoder plugins do."""
        return True, ""

    def model_files(self) -> list[Path]:
        """Files whose hashes go into reports (weights, calibration)."""
        return []

    def model_hashes(self) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in self.model_files()}

    def analyze(self, image: MedicalImage) -> Finding:
        raise NotImplementedError
