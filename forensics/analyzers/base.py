"""What every analyzer is: a name, a version, whether it can run here, and ``analyze(image) -> Finding``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from forensics.records import Finding, MedicalImage


class Analyzer:
    """Base class. Subclasses set ``name`` and ``version`` and implement ``analyze``.

    ``kind`` tells fusion how to use the finding: ``rules`` (metadata evidence), ``mark`` (watermark,
    provenance), ``pixel`` (learned, calibrated scores), ``reuse`` (matches in an index).
    """

    name: str = "base"
    version: str = "0"
    kind: str = "rules"

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
