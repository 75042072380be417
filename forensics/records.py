"""The records that flow through a scan: MedicalImage -> Finding* -> ScanResult (see DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LEVELS = ("low", "medium", "high")


@dataclass
class MedicalImage:
    """One decoded image.

    Attributes:
        pixels: float32 (H, W) or (H, W, 3) in [0, 1]; for DICOM after rescale and the file's window.
        path: where it was read from.
        sha256: hex digest of the file bytes.
        format: ``dicom|png|jpeg|tiff|bmp|webp|nifti``.
        raw: the file bytes (read once; parsers of metadata use them instead of reading the file again).
        stored: values as stored when they differ from ``pixels`` (e.g. int16 HU for CT), else None.
        modality: DICOM modality code (``CT``, ``CR``, ...) or None.
        spacing_mm: (row, col) pixel spacing in mm, or None.
        bit_depth: bits per sample as stored (8, 16, 12, ...).
        frames: number of frames in the file; ``pixels`` holds the middle one.
        metadata: plain-typed facts found while loading (never patient identifiers unless asked).
        dicom: the parsed pydicom Dataset, when the file is DICOM.
    """

    pixels: np.ndarray
    path: str
    sha256: str
    format: str
    raw: bytes = field(default=b"", repr=False)
    stored: np.ndarray | None = field(default=None, repr=False)
    modality: str | None = None
    spacing_mm: tuple[float, float] | None = None
    bit_depth: int = 8
    frames: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    dicom: Any = field(default=None, repr=False)


@dataclass
class Evidence:
    """One observation behind a score. ``code`` is stable (scripts match on it); ``weight`` in [0, 1]."""

    code: str
    message: str
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "weight": round(float(self.weight), 4)}


@dataclass
class Finding:
    """What one analyzer concluded about one image.

    Attributes:
        analyzer: registry name of the analyzer.
        score: P(synthetic or manipulated) in [0, 1], or None when the analyzer does not apply.
        evidence: the observations behind the score.
        heatmap: optional float32 (h, w) in [0, 1]; where in the image the evidence is.
        decisive: True when the evidence alone settles the question (our watermark, a generator signature).
        data: structured, plain-typed facts behind the evidence (e.g. the matches of the reuse analyzer).
        kind: how fusion uses the score - ``rules|mark|pixel|reuse|local``, stamped by the analyzer (see
            ``Analyzer.finding``). Not written to the JSON line (the analyzer's name implies it), so a record read
            back has ``""``: fusion then counts it only when decisive.
    """

    analyzer: str
    score: float | None
    evidence: list[Evidence] = field(default_factory=list)
    heatmap: np.ndarray | None = field(default=None, repr=False)
    decisive: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "analyzer": self.analyzer,
            "score": None if self.score is None else round(float(self.score), 4),
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if self.decisive:
            out["decisive"] = True
        if self.data:
            out["data"] = self.data
        if self.heatmap is not None:
            out["heatmap"] = np.round(self.heatmap.astype(float), 3).tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        heatmap = d.get("heatmap")
        return cls(
            analyzer=d["analyzer"],
            score=d.get("score"),
            evidence=[Evidence(e["code"], e["message"], e["weight"]) for e in d.get("evidence", [])],
            heatmap=None if heatmap is None else np.asarray(heatmap, dtype=np.float32),
            decisive=bool(d.get("decisive", False)),
            data=dict(d.get("data") or {}),
        )


@dataclass
class ScanError:
    """Why an input could not be scanned. ``code`` is stable: see docs/FORMATS.md for the list."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class ScanResult:
    """The verdict on one input: the JSON Lines record of DESIGN.md."""

    path: str
    status: str  # "ok" | "error"
    sha256: str | None = None
    risk: float | None = None
    level: str | None = None
    format: str | None = None
    modality: str | None = None
    elapsed_ms: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    error: ScanError | None = None
    width: int | None = None
    height: int | None = None
    claim_id: str | None = None  # set by claim screening
    # no DICOM modality: the one the pixels look like, {"code", "confidence"} (forensics.modality); else None
    modality_estimate: dict[str, Any] | None = None
    # For reports only, not in the JSON line: a small uint8 preview and header facts (PHI already redacted).
    thumbnail: np.ndarray | None = field(default=None, repr=False)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.claim_id is None else {"claim_id": self.claim_id}
        out |= {
            "path": self.path,
            "sha256": self.sha256,
            "status": self.status,
            "risk": None if self.risk is None else round(float(self.risk), 4),
            "level": self.level,
        }
        if self.status == "ok":
            out.update(format=self.format, modality=self.modality, modality_estimate=self.modality_estimate,
                       width=self.width, height=self.height)
        out["elapsed_ms"] = round(self.elapsed_ms, 1)
        out["findings"] = [f.to_dict() for f in self.findings]
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out

    def top_evidence(self) -> tuple[Finding, Evidence] | None:
        """The observation that weighs most: decisive findings first, then by weight, then by the finding's score."""
        best, best_key = None, None
        for f in self.findings:
            for e in f.evidence:
                key = (f.decisive, e.weight, -1.0 if f.score is None else f.score)
                if best_key is None or key > best_key:
                    best, best_key = (f, e), key
        return best

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanResult:
        """The record back from its JSON line (what ``--resume`` reads); thumbnails and details are not kept."""
        error = d.get("error")
        return cls(
            path=d["path"], status=d["status"], sha256=d.get("sha256"), risk=d.get("risk"), level=d.get("level"),
            format=d.get("format"), modality=d.get("modality"), elapsed_ms=d.get("elapsed_ms", 0.0),
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
            error=None if error is None else ScanError(error["code"], error["message"]),
            width=d.get("width"), height=d.get("height"), claim_id=d.get("claim_id"),
            modality_estimate=d.get("modality_estimate"),
        )
