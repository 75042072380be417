"""The records that flow through a scan: MedicalImage -> Finding* -> ScanResult.

Layout in docs/ARCHITECTURE.md; the JSON Lines fields, levels and exit codes in docs/FORMATS.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LEVELS = ("low", "medium", "high")
# An image no pixel analyzer could score (modality outside their training, a blank image, none selected) and with
# no decisive or review-level evidence: its risk is null, never "low" (docs/FORMATS.md, "Levels").
UNSCORED = "unscored"


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
        kind: how fusion uses the score - ``rules|mark|pixel|realness|reuse|local``, stamped by the analyzer (see
            ``Analyzer.finding``). Not written to the JSON line (the analyzer's name implies it), so a record read
            back has ``""``: fusion then counts it only when decisive.
        contribution: log-odds this finding added to the fused risk (``fusion.explain``); None when not fused.
    """

    analyzer: str
    score: float | None
    evidence: list[Evidence] = field(default_factory=list)
    heatmap: np.ndarray | None = field(default=None, repr=False)
    decisive: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    kind: str = ""
    contribution: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "analyzer": self.analyzer,
            "score": None if self.score is None else round(float(self.score), 4),
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if self.contribution is not None:
            out["contribution"] = round(float(self.contribution), 4)
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
            contribution=d.get("contribution"),
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
    """The verdict on one input: the JSON Lines record of docs/FORMATS.md."""

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
    # Which pixel analyzers scored the image, and the log-odds the findings' contributions start from and add up to
    # (prior_logit + sum of contributions == logit). None in records written before they existed.
    assessed_by: list[str] | None = None
    prior_logit: float | None = None
    logit: float | None = None
    # no DICOM modality: the one the pixels look like, {"code", "confidence"} (forensics.modality); else None
    modality_estimate: dict[str, Any] | None = None
    # For reports only, not in the JSON line: a small uint8 preview and header facts (PHI already redacted).
    thumbnail: np.ndarray | None = field(default=None, repr=False)
    details: dict[str, Any] = field(default_factory=dict)
    # For reports only: what the report's viewer shows (forensics.report.views.build_views), or None.
    views: dict[str, Any] | None = field(default=None, repr=False)

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
            if self.assessed_by is not None:
                out["assessed_by"] = list(self.assessed_by)
            if self.logit is not None and self.prior_logit is not None:
                out.update(prior_logit=round(float(self.prior_logit), 4), logit=round(float(self.logit), 4))
        out["elapsed_ms"] = round(self.elapsed_ms, 1)
        out["findings"] = [f.to_dict() for f in self.findings]
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out

    def top_evidence(self) -> tuple[Finding, Evidence] | None:
        """The top reason: the weightiest observation of the finding that raised the risk most (the largest positive
        contribution; a decisive finding first). None when no finding raised it. Records without contributions
        (written by an older medaudit) fall back to the weightiest observation with a weight above 0."""
        explained = any(f.contribution is not None for f in self.findings)
        best, best_key = None, None
        for f in self.findings:
            if explained and not (f.contribution or 0.0) > 0:
                continue
            for e in f.evidence:
                if not explained and not e.weight > 0:
                    continue
                key = (f.decisive, f.contribution or 0.0, e.weight, -1.0 if f.score is None else f.score)
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
            assessed_by=d.get("assessed_by"), prior_logit=d.get("prior_logit"), logit=d.get("logit"),
            modality_estimate=d.get("modality_estimate"),
        )
