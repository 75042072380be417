"""The ``reuse`` analyzer: is the scanned image one already filed in the reuse index under another claim?

Created only when a scan names an index (``medaudit scan --index FILE``). The scan's own claim comes from
``image.metadata["claim_id"]`` when the caller set it; then matches under that claim are ignored. Without a claim
id, any match to a *different file* counts (the same path filed before is the image itself).
"""

from __future__ import annotations

import os

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import Analyzer
from forensics.records import Evidence, Finding, MedicalImage
from forensics.reuse import hashing as H
from forensics.reuse.index import SAME_SERIES, SIMILAR, THRESHOLDS_FILE, UNVERIFIED, ReuseIndex, stored_path


@register_analyzer("reuse")
class ReuseAnalyzer(Analyzer):
    name = "reuse"
    version = "1"
    kind = "reuse"
    settings = ("index_path",)

    def __init__(self, index_path: str | os.PathLike | None = None, limit: int = 3):
        self.index_path = None if index_path is None else os.fspath(index_path)
        self.limit = limit
        self._index: ReuseIndex | None = None

    def availability(self) -> tuple[bool, str]:
        if not self.index_path:
            return False, "no reuse index given (scan --index FILE)"
        if not os.path.exists(self.index_path):
            return False, f"reuse index not found: {self.index_path}"
        return True, ""

    def model_files(self):
        return [THRESHOLDS_FILE] if THRESHOLDS_FILE.exists() else []

    def _open(self) -> ReuseIndex:
        # opened lazily, so each scan worker process gets its own connection (sqlite connections do not fork)
        if self._index is None or self._pid != os.getpid():
            self._index = ReuseIndex(self.index_path, readonly=True)
            self._pid = os.getpid()
        return self._index

    def analyze(self, image: MedicalImage) -> Finding:
        if not self.index_path:
            return self.finding(None)
        if not H.hashable(image.pixels):  # nothing to compare (a 1x1 image): abstain, the other analyzers still run
            return self.finding(None, [Evidence("reuse.too_small", "image too small to hash: not compared", 0.0)])
        claim = image.metadata.get("claim_id")
        claim = None if claim is None else str(claim)
        matches = self._open().query(image, exclude_claim=claim, limit=self.limit + 5)
        if claim is None:  # no claim to compare: the same file at the same path is the image itself
            here = stored_path(image.path)
            matches = [m for m in matches if m.path != here]
        matches = matches[: self.limit]
        if not matches:
            return self.finding(None)
        evidence = []
        for m in matches:
            where = f"{m.path} filed under claim {m.claim_id or '(none)'}"
            how = f"distance {m.distance}/64" + (f", {m.inliers} keypoint inliers" if m.inliers else "")
            checked = "" if m.similarity is None else f", fine-structure similarity {m.similarity:.2f}"
            if m.method == "sha256":
                evidence.append(Evidence("reuse.exact_duplicate", f"byte-identical to {where}", m.score))
            elif m.method == "pixels":
                evidence.append(Evidence("reuse.exact_duplicate", f"same pixels as {where} (file re-wrapped)", m.score))
            elif m.relation == SAME_SERIES:
                gap = "" if m.slice_gap_mm is None else f", {m.slice_gap_mm:g} mm apart"
                evidence.append(Evidence("reuse.same_series", f"another slice of the same DICOM series as {where}"
                                                              f"{gap}: not a reuse of it", 0.0))
            elif m.relation == SIMILAR:
                why = f"looks like {where} ({how}{checked}) but the pixels differ: similar (same series?), not the same"
                evidence.append(Evidence("reuse.similar", why + " image; review", m.score))
            else:
                note = " (not pixel-verified: filed by an older index)" if m.relation == UNVERIFIED else ""
                evidence.append(Evidence("reuse.match", f"same image as {where} (transform: {m.transform}; "
                                                        f"{how}{checked}){note}", m.score))
        data = {"matches": [{"path": m.path, "claim_id": m.claim_id, "sha256": m.sha256, "method": m.method,
                             "transform": m.transform, "distance": m.distance, "relation": m.relation,
                             "similarity": m.similarity, "slice_gap_mm": m.slice_gap_mm} for m in matches]}
        # The same bytes or pixels under another claim settle the question; perceptual matches stay bounded
        # evidence (fusion caps them at medium), because look-alike scans of different patients exist. A slice of
        # the same series scores nothing: it is evidence of the same exam, not of a copied image.
        decisive = any(m.method in ("sha256", "pixels") for m in matches)
        scores = [m.score for m in matches if m.score > 0]
        return self.finding(max(scores) if scores else None, evidence, decisive=decisive, data=data)
