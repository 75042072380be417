"""Write the three audit-report files: ``report.html``, ``report.json`` and ``report.csv``."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from forensics.atomic import write_set
from forensics.phi import PHI_KEYWORDS, redact
from forensics.records import ScanResult
from forensics.report.images import overlay_uri, thumbnail_uri
from forensics.report.views import page_views
from forensics.writers import CSV_COLUMNS, csv_row, csv_safe

REPORT_SCHEMA_VERSION = "1.0"


SUMMARY_KEYS = ("total", "low", "medium", "high", "error", "unscored")

RISK_NOTE = (
    "Risk is the calibrated probability that the image is synthetic or manipulated. "
    "Metadata absence is not evidence of authenticity: a clean or stripped header says nothing about the pixels."
)

_HERE = Path(__file__).resolve().parent
_LEVEL_RANK = {"high": 3, "medium": 2, "low": 1}


# ----------------------------------------------------------------------------------------------- public API


def write_report(
    results: list[ScanResult],
    out_dir: str | Path,
    context: Mapping[str, Any] | None,
    claims: list[Mapping[str, Any]] | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> dict[str, Path]:
    """Write the audit report for ``results`` into ``out_dir`` (created when missing).

    Args:
        results: one record per input, ok or error, in any order.
        out_dir: folder for ``report.html``, ``report.json`` and ``report.csv``; nothing else is written.
        context: run facts for the provenance block: ``tool_version``, ``command``, ``started``, ``finished``
            (ISO 8601 UTC), ``thresholds`` ({"medium": 0.5, "high": 0.9}), ``analyzers`` (list of {name, version,
            available, reason, model_hashes}), ``include_phi`` and ``machine``. Any may be missing.
        claims: per-claim summaries from claim screening (``forensics.screening``), shown above the images; with
            them, report.csv gets a ``claim_id`` column first.
        extra: more files of the same output set, by name in ``out_dir`` (screening's images.jsonl and
            claims.jsonl), written together with the report.

    Returns:
        ``{"html": path, "json": path, "csv": path}``. The files are replaced as one set (``atomic.write_set``):
        a failure leaves the previous set whole, never new files beside old ones.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = dict(context or {})
    results = list(results)
    include_phi = bool(context.get("include_phi", False))
    summary = summarize(results)

    # Render everything before writing anything: a failure leaves the previous report whole.
    texts = {
        "json": render_json(results, context, summary, include_phi, claims),
        "csv": render_csv(results, with_claims=claims is not None),
        "html": render_html(results, context, summary, include_phi, claims),
    }
    paths = {kind: out / f"report.{kind}" for kind in ("html", "json", "csv")}
    # backslashreplace: a file name that is not UTF-8 (surrogate-escaped) shows as \udcff, never crashes the write
    files = {paths[kind]: text.encode("utf-8", "backslashreplace") for kind, text in texts.items()}
    write_set({**{out / name: data for name, data in (extra or {}).items()}, **files})
    return paths


def summarize(results: Iterable[ScanResult]) -> dict[str, int]:
    """Counts by level; ``error`` counts failed inputs, ``unscored`` ok inputs without a level."""
    counts = dict.fromkeys(SUMMARY_KEYS, 0)
    for r in results:
        counts["total"] += 1
        if r.status != "ok":
            counts["error"] += 1
        elif r.level in ("low", "medium", "high"):
            counts[r.level] += 1
        else:
            counts["unscored"] += 1
    return counts


# ----------------------------------------------------------------------------------------------- JSON


def render_json(
    results: list[ScanResult],
    context: Mapping[str, Any],
    summary: Mapping[str, int],
    include_phi: bool,
    claims: list[Mapping[str, Any]] | None = None,
) -> str:
    doc = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "context": dict(context),
        "summary": dict(summary),
        "results": [dict(r.to_dict(), details=_scrub_phi(r.details, include_phi)) for r in results],
        **({"claims": [dict(c) for c in claims]} if claims else {}),
    }
    return json.dumps(_json_safe(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _json_safe(value: Any) -> Any:
    """Plain JSON types only: numpy values unwrapped, NaN/inf as null, bytes as hex, anything else as str."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _scrub_phi(details: Mapping[str, Any] | None, include_phi: bool) -> dict[str, Any]:
    """``details`` with patient identifiers redacted, unless the user opted in.

    Producers redact already; this is a second line of defence so that a report never leaks PHI because one
    producer forgot. Values already in ``redacted:`` form are left alone, so equal values stay equal.
    """
    if not isinstance(details, Mapping):
        return {}
    if include_phi:
        return dict(details)

    def scrub(key: Any, value: Any) -> Any:
        if isinstance(key, str) and key in PHI_KEYWORDS:
            if value is None or value == "" or (isinstance(value, str) and value.startswith("redacted:")):
                return value
            return redact(value)
        if isinstance(value, Mapping):
            return {k: scrub(k, v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [scrub(None, v) for v in value]
        return value

    return {k: scrub(k, v) for k, v in details.items()}


# ----------------------------------------------------------------------------------------------- CSV


def render_csv(results: list[ScanResult], with_claims: bool = False) -> str:
    """The rows ``medaudit scan --format csv`` writes, one per input, under a header; ``with_claims`` (screening)
    puts each row's claim id in a first column, ``claim_id``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if with_claims:
        writer.writerow(("claim_id", *CSV_COLUMNS))
        writer.writerows([csv_safe(r.claim_id), *csv_row(r)] for r in results)
    else:
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(r) for r in results)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- HTML


def render_html(
    results: list[ScanResult],
    context: Mapping[str, Any],
    summary: Mapping[str, int],
    include_phi: bool,
    claims: list[Mapping[str, Any]] | None = None,
) -> str:
    title = "medaudit screening report" if claims is not None else "medaudit audit report"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE)),
        autoescape=True,  # every value from a file is hostile until escaped
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    template = env.get_template("report.html")
    script = "\n" + "\n".join((_HERE / name).read_text(encoding="utf-8") for name in ("report.js", "views.js")) + "\n"
    ordered = sorted(results, key=lambda r: (r.status != "ok", -_num(r.risk, -1.0)))
    return template.render(
        title=title,
        summary=summary,
        provenance=_provenance(context, include_phi),
        risk_note=RISK_NOTE,
        thresholds=_thresholds(context.get("thresholds")),
        rows=[_row(i, r, include_phi) for i, r in enumerate(ordered)],
        errors=[r for r in ordered if r.status != "ok"],
        claims=claims or [],
        views=page_views(ordered),  # per row: the zoomable image and the views behind it (views.html)
        css="\n".join((_HERE / name).read_text(encoding="utf-8") for name in ("report.css", "views.css")),
        script=script,
        # The CSP allows only this exact script: should escaping ever fail, injected markup still cannot run code.
        script_hash="sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii"),
    )


def _row(index: int, r: ScanResult, include_phi: bool) -> dict[str, Any]:
    top = r.top_evidence()
    level = r.level if r.status == "ok" else "error"
    findings = []
    for f in r.findings:
        findings.append(
            {
                "analyzer": f.analyzer,
                "score": "n/a" if f.score is None else f"{_num(f.score):.3f}",
                "decisive": bool(f.decisive),
                "evidence": [
                    {"code": e.code, "message": e.message, "weight": f"{_num(e.weight):.2f}"} for e in f.evidence
                ],
                "overlay": overlay_uri(f.heatmap, r.thumbnail),
                "contribution": "—" if f.contribution is None else f"{f.contribution:+.2f}",
            }
        )
    facts = [(str(k), _fact_text(v)) for k, v in _scrub_phi(r.details, include_phi).items()]
    kind = " · ".join(str(x).upper() if x == r.format else str(x) for x in (r.format, r.modality) if x)
    return {
        "id": f"r{index}",
        "path": r.path,
        "sha256": r.sha256 or "",
        "sha_short": (r.sha256 or "")[:12],
        "status": r.status,
        "kind": kind,
        "format": r.format or "",
        "risk": r.risk,
        "risk_text": _fmt_risk(r.risk) or "—",
        "risk_pct": round(min(max(_num(r.risk), 0.0), 1.0) * 100, 1),
        "risk_sort": _num(r.risk, -1.0),
        "level": level or "unscored",
        "level_rank": _LEVEL_RANK.get(level or "", 0),
        "top": top[1].message if top else None,
        "top_code": top[1].code if top else None,
        "top_analyzer": top[0].analyzer if top else None,
        "error": r.error,
        "thumb": thumbnail_uri(r.thumbnail),
        "size": f"{r.width} × {r.height} px" if r.width and r.height else None,
        "elapsed": f"{_num(r.elapsed_ms):.1f} ms",
        "findings": findings,
        "facts": facts,
        "assessed_by": r.assessed_by,
        "waterfall": waterfall(r),
    }


WATERFALL_SPAN = 10.0  # log-odds shown either side of 0 (risk 0.00005 .. 0.99995); steps beyond are clipped


def waterfall(r: ScanResult) -> list[dict[str, Any]]:
    """Bars from the prior to the fused log-odds, one per finding that moved them (largest first): ``label``,
    ``delta`` (log-odds, signed), ``left``/``width`` (percent of the axis), ``end`` (P after the step). Empty for
    errors and for records written before contributions existed."""
    if r.status != "ok" or r.prior_logit is None or r.logit is None:
        return []

    def pos(x: float) -> float:
        return round((min(max(x, -WATERFALL_SPAN), WATERFALL_SPAN) + WATERFALL_SPAN) / (2 * WATERFALL_SPAN) * 100, 2)

    def bar(label: str, start: float, end: float, kind: str) -> dict[str, Any]:
        left, right = sorted((pos(start), pos(end)))
        return {"label": label, "delta": f"{end - start:+.2f}", "left": left, "width": max(right - left, 0.6),
                "end": f"{1 / (1 + math.exp(-end)):.4f}", "kind": kind}

    at = float(r.prior_logit)
    bars = [bar("prior", at, at, "prior")]
    moved = [f for f in r.findings if f.contribution]
    for f in sorted(moved, key=lambda f: -abs(f.contribution)):
        bars.append(bar(f.analyzer, at, at + f.contribution, "up" if f.contribution > 0 else "down"))
        at += f.contribution
    bars.append(bar("fused", float(r.logit), float(r.logit), "total"))
    return bars


def _provenance(context: Mapping[str, Any], include_phi: bool) -> dict[str, Any]:
    analyzers = []
    for a in context.get("analyzers") or []:
        if not isinstance(a, Mapping):
            analyzers.append({"name": str(a), "version": "", "available": None, "reason": "", "hashes": []})
            continue
        hashes = a.get("model_hashes") or {}
        analyzers.append(
            {
                "name": a.get("name", "?"),
                "version": a.get("version", ""),
                "available": a.get("available"),
                "reason": a.get("reason") or "",
                "hashes": sorted((str(k), str(v)) for k, v in hashes.items()) if isinstance(hashes, Mapping) else [],
            }
        )
    known = {"tool_version", "command", "started", "finished", "thresholds", "analyzers", "include_phi", "machine"}
    extra = [(str(k), _fact_text(v)) for k, v in context.items() if k not in known]
    return {
        "tool_version": context.get("tool_version"),
        "command": context.get("command"),
        "started": context.get("started"),
        "finished": context.get("finished"),
        "machine": context.get("machine"),
        "include_phi": include_phi,
        "analyzers": analyzers,
        "extra": extra,
    }


def _thresholds(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, Mapping):
        return []
    order = sorted(value.items(), key=lambda kv: _num(kv[1]))
    return [(str(k), f"{_num(v):g}") for k, v in order]


def _fact_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(_json_safe(value), ensure_ascii=False)


def _fmt_risk(risk: float | None) -> str | None:
    if risk is None or not math.isfinite(float(risk)):
        return None
    return f"{float(risk):.4f}"


def _num(value: Any, default: float = 0.0) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default

