"""What every analyzer is: a name, a version, whether it can run here, and ``analyze(image) -> Finding``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from forensics.records import Evidence, Finding, MedicalImage

# DICOM modalities of the images the bundled pixel detectors (cnn, frequency) learned from: chest X-ray (CR, DX),
# CT, photographs/dermoscopy (XC), brain MRI (MR) and mammography (MG); OT/SC for secondary captures. On anything
# else (US, NM, PT …) their scores mean nothing, so they abstain. Files without a modality (PNG, JPEG, NIfTI) are
# judged by the modality their pixels look like (forensics.modality): an estimate of OT (none of the known ones)
# makes them abstain too.
TRAINED_MODALITIES = frozenset({"CR", "DX", "CT", "XC", "MR", "MG", "OT", "SC"})
# Where the real-image (residual) model was fitted: chest X-ray, CT and dermoscopy only.
RESIDUAL_MODALITIES = TRAINED_MODALITIES - {"MR", "MG"}
# Where the tamper localizer was fitted and measured: chest CT, chest X-ray, brain MRI, mammography.
TAMPER_MODALITIES = frozenset({"CR", "DX", "CT", "MR", "MG", "OT", "SC"})


class Analyzer:
    """Base class. Subclasses set ``name`` and ``version`` and implement ``analyze``, building its result with
    :meth:`finding`.

    ``kind`` tells fusion how to use the finding: ``rules`` (metadata evidence), ``mark`` (watermark,
    provenance), ``pixel`` (learned, calibrated scores), ``realness`` (a model of real images only: raises the pixel
    risk to its score, never lowers it), ``reuse`` (matches in an index), ``local`` (traces of a local edit).
    ``settings`` names the ``ScanOptions`` fields the constructor takes as keyword arguments; the Scanner passes each
    analyzer those (when set) and nothing else.
    """

    name: str = "base"
    version: str = "0"
    kind: str = "rules"
    settings: tuple[str, ...] = ()
    modalities: frozenset[str] | None = None  # DICOM modalities it applies to; None: every image
    default: bool = True  # runs when no --analyzers are named; experimental ones opt in

    def finding(self, score: float | None, evidence: list[Evidence] | None = None, **kw) -> Finding:
        """A Finding stamped with this analyzer's name and kind (fusion reads the kind from it); ``kw``: the other
        Finding fields (heatmap, decisive, data)."""
        return Finding(self.name, score, evidence if evidence is not None else [], kind=self.kind, **kw)

    def applies_to(self, image: MedicalImage) -> bool:
        """True when the image's modality is one this analyzer learned: the DICOM header's, else the estimate from
        its pixels (computed once per image), where ``OT`` means "unlike every known modality", not a capture."""
        if self.modalities is None:
            return True
        if image.modality is not None:
            return image.modality in self.modalities
        from forensics.modality import UNKNOWN, estimate_for

        code = estimate_for(image)["code"]
        return code != UNKNOWN and code in self.modalities

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
