"""Claim screening: a CSV of (claim_id, path) rows -> per-image records, per-claim summaries and a report.

The run files every image of the batch in a reuse index under its claim before scanning, so an image filed
under two claims is caught whether the other copy arrived earlier (a persistent ``index_path``) or in the same
batch. Filing reads each file as the scan does (the guarded reader: regular files only, ``max_bytes``, the per-file
time limit), so a folder or a FIFO named in the CSV is an error record in both steps. Paths are confined to a root
(the CSV's folder by default): one outside it is refused without being looked at. Per-image records stream to
``images.jsonl.partial`` (resumable); ``images.jsonl``, ``claims.jsonl`` and the report then replace the previous
set as a whole.
Screening runs every analyzer by default, the opt-in ones included: local tampering (``localization``) is one of the
three frauds a claim screen is for, and worth its cost here.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from forensics.fusion import level_of
from forensics.records import UNSCORED, ScanError, ScanResult
from forensics.scanner import ScanOptions

REQUIRED_COLUMNS = ("claim_id", "path")
INCOMPLETE = "incomplete"  # a claim level: an image of the claim is missing or unreadable


def read_claims(csv_path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(path, claim_id)`` per row, in order; relative paths are taken relative to the CSV's folder. A row
    repeating an earlier (claim_id, path) is the same image listed twice and counted once (``--resume`` keys its
    records by that pair, so a resumed run and a clean one agree).

    Raises:
        ValueError: a missing column or an empty claim id or path (with the row number).
    """
    csv_path = Path(csv_path)
    # surrogateescape: a file name that is not UTF-8 is read back as the bytes the file system has (as os.fsdecode)
    with open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}")
        items = []
        for row_number, row in enumerate(reader, start=2):
            claim, path = (row.get("claim_id") or "").strip(), (row.get("path") or "").strip()
            if not claim or not path:
                raise ValueError(f"{csv_path}:{row_number}: empty claim_id or path")
            items.append((str(csv_path.parent / path) if not os.path.isabs(path) else path, claim))
    return list(dict.fromkeys(items))


OUTSIDE_ROOT = "outside the screening root (the CSV's folder or --root); not read (--allow-outside to permit)"


def outside_root(path: str, root: str | os.PathLike) -> bool:
    """True when ``path``, symbolic links resolved, is not under ``root``. Decided from the path alone, and the
    refusal reads the same whether the file exists or not, so a CSV cannot probe the file system with it."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) != real_root


def claim_level(max_risk: float | None, errors: int, unscored: int, options: ScanOptions) -> str:
    """A claim's level: medium/high from its riskiest image whatever else it holds; otherwise ``incomplete`` when an
    image is missing or unreadable (it could hide anything), ``unscored`` when an image could not be assessed, else
    ``low``."""
    level = None if max_risk is None else level_of(max_risk, options.fusion)
    if level in ("medium", "high"):
        return level
    if errors:
        return INCOMPLETE
    return UNSCORED if unscored or level is None else level


def summarize_claims(results: Iterable[ScanResult], options: ScanOptions) -> list[dict]:
    """One summary per claim, highest risk first: images, errors, unscored images, max risk, level (see
    ``claim_level``), reuse hits and reasons."""
    claims: dict[str, dict] = {}
    for r in results:
        c = claims.setdefault(r.claim_id or "", {"claim_id": r.claim_id or "", "images": 0, "errors": 0,
                                                 "unscored": 0, "max_risk": None, "level": None, "reuse_hits": [],
                                                 "reasons": []})
        c["images"] += 1
        name = os.path.basename(r.path)
        if r.status != "ok":
            c["errors"] += 1
            c["reasons"].append(f"{name}: unreadable ({r.error.code if r.error else 'error'})")
            continue
        if r.level == UNSCORED or r.risk is None:
            c["unscored"] += 1
            c["reasons"].append(f"{name}: unscored (no pixel analyzer could assess it)")
        elif c["max_risk"] is None or r.risk > c["max_risk"]:
            c["max_risk"] = r.risk
        for f in r.findings:
            for e in f.evidence:
                if e.code.startswith("reuse.") and e.weight > 0:
                    c["reuse_hits"].append({"path": r.path, "code": e.code, "message": e.message,
                                            "matched_claim": _matched_claim(f)})
        if r.level in ("medium", "high"):
            top = r.top_evidence()  # the finding that raised the risk most
            if top is not None:
                c["reasons"].append(f"{name}: {r.level} ({top[1].code}) {top[1].message}")
    for c in claims.values():
        c["max_risk"] = None if c["max_risk"] is None else round(c["max_risk"], 4)
        c["level"] = claim_level(c["max_risk"], c["errors"], c["unscored"], options)
    rank = {"high": 4, "medium": 3, INCOMPLETE: 2, UNSCORED: 1, "low": 0}
    return sorted(claims.values(), key=lambda c: (-rank[c["level"]], -(c["max_risk"] or 0.0)))


def _matched_claim(finding) -> str | None:
    """The other claim's id, as the reuse analyzer records it on the finding."""
    for match in finding.data.get("matches", []):
        if isinstance(match, Mapping) and match.get("claim_id"):
            return str(match["claim_id"])
    return None


def screen_claims(
    items: list[tuple[str, str]],
    out_dir: str | os.PathLike,
    options: ScanOptions,
    *,
    index_path: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    resume: bool = False,
    workers: int = 1,
    progress: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
) -> tuple[list[dict], dict[str, Path]]:
    """Screen ``(path, claim_id)`` items into ``out_dir``; returns the claim summaries and the files written.

    ``root``: items whose path is outside it get an ``outside_root`` error record and are never read; None reads
    every path. ``resume`` continues an interrupted run: images already filed under their claim are not read again,
    images already recorded are not scanned again.
    """
    from dataclasses import replace

    from forensics.audit import now_utc, run_context
    from forensics.report import write_report
    from forensics.reuse import add_files
    from forensics.scanner import scan_items
    from forensics.writers import ResultWriter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = Path(index_path) if index_path else out / "reuse.sqlite"
    refused = [(path, claim) for path, claim in items if root is not None and outside_root(path, root)]
    if refused:
        refused_set = frozenset(refused)
        items = [item for item in items if item not in refused_set]
    by_claim: dict[str, list[str]] = {}
    for path, claim in items:
        by_claim.setdefault(claim, []).append(path)
    for claim, paths in by_claim.items():  # filing is idempotent: a resumed run re-files nothing twice
        add_files(str(index), paths, claim, timeout_s=options.timeout_s, max_bytes=options.max_bytes, resume=resume)
    options = replace(options, index_path=str(index))
    if options.analyzers is None:
        from forensics.analyzers import list_analyzers

        options = replace(options, analyzers=list_analyzers())

    started = now_utc()
    writer = ResultWriter("jsonl", out / "images.jsonl", resume=resume)
    fresh: dict[tuple[str | None, str], ScanResult] = {}
    try:
        for path, claim in refused:
            if (claim, path) not in writer.done:
                writer.write(ScanResult(path=path, status="error", claim_id=claim,
                                        error=ScanError("outside_root", OUTSIDE_ROOT)))
        for result in scan_items(items, options, workers=workers, skip=writer.done, progress=progress,
                                 engine=engine, scheduler=scheduler):
            writer.write(result)
            fresh[(result.claim_id, result.path)] = result
    finally:
        writer.close(complete=False)  # images.jsonl is replaced below, together with the rest of the set

    # The whole batch, from the file (a resumed run's earlier records included), with this run's thumbnails.
    records = writer.partial.read_bytes()
    results = []
    for line in records.decode("utf-8", errors="surrogateescape").splitlines():
        record = ScanResult.from_dict(json.loads(line))
        results.append(fresh.get((record.claim_id, record.path), record))
    summaries = summarize_claims(results, options)
    claims_jsonl = "".join(json.dumps(s) + "\n" for s in summaries).encode("utf-8")
    context = dict(run_context(options), started=started, reuse_index=str(index))
    written = write_report(results, out, context, claims=summaries,
                           extra={"images.jsonl": records, "claims.jsonl": claims_jsonl})
    writer.partial.unlink()
    return summaries, {"images": out / "images.jsonl", "claims": out / "claims.jsonl", **written}
