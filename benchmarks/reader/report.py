"""The study's pages and exports: Jinja templates beside this module (CSS and JS inlined), the ROC as inline SVG,
CSV of readers and of answers. Used by the web app and by `medaudit reader results`."""

from __future__ import annotations

import csv
import io
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import escape

from benchmarks.reader.store import Study
from forensics.writers import csv_safe

HERE = Path(__file__).resolve().parent


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=True, trim_blocks=True,
                              lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def render(template: str, **context: Any) -> str:
    """A page; ``nonce`` is the CSP nonce its inline script and style carry."""
    context.setdefault("nonce", "")
    context.setdefault("login", False)
    return _env().get_template(template).render(**context)


def results_of(study: Study) -> dict[str, Any]:
    from benchmarks.reader.stats import study_results

    return study_results(study.answers(), study.images_table(), study.meta("thresholds", {}), study.meta("name", ""))


def results_html(results: dict[str, Any]) -> str:
    """The results page as one self-contained file (no script needed)."""
    return render("results.html", r=results, svg=roc_svg(results))


def roc_svg(results: dict[str, Any], size: int = 320) -> str:
    """The detector's ROC curve with each reader as a point (1 - specificity, sensitivity), as inline SVG."""
    pad = 36
    span = size - 2 * pad

    def xy(fpr: float, tpr: float) -> tuple[float, float]:
        return pad + fpr * span, size - pad - tpr * span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" height="{size}" '
             'role="img" aria-label="ROC: detector curve, readers as points" class="roc">',
             f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="#fff" stroke="#888"/>',
             f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" stroke="#ccc" stroke-dasharray="4 4"/>']
    for t in (0.25, 0.5, 0.75):
        x, y = xy(t, t)
        parts.append(f'<text x="{x:.1f}" y="{size - pad + 14}" font-size="10" text-anchor="middle">{t}</text>')
        parts.append(f'<text x="{pad - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{t}</text>')
    parts.append(f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">1 − specificity</text>')
    parts.append(f'<text x="12" y="{size / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {size / 2})">sensitivity</text>')
    roc = results["detector"].get("roc")
    if roc:
        points = " ".join("{:.1f},{:.1f}".format(*xy(f, t)) for f, t in roc)
        parts.append(f'<polyline points="{points}" fill="none" stroke="#1f6fb2" stroke-width="2"/>')
    for name, point in results["detector"]["points"].items():
        sens, spec = point["sensitivity"]["value"], point["specificity"]["value"]
        if sens is not None and spec is not None:
            x, y = xy(1 - spec, sens)
            parts.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="#1f6fb2">'
                         f'<title>detector at {escape(name)} ({point["threshold"]})</title></rect>')
    for i, r in enumerate(results["readers"]):
        sens, spec = r["sensitivity"]["value"], r["specificity"]["value"]
        if sens is None or spec is None:
            continue
        x, y = xy(1 - spec, sens)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#d9480f" class="reader-point">'
                     f'<title>{escape(r["reader"])}</title></circle>')
        parts.append(f'<text x="{x + 7:.1f}" y="{y - 6:.1f}" font-size="10">{i + 1}</text>')
    parts.append("</svg>")
    return "".join(parts)


def readers_csv(results: dict[str, Any]) -> str:
    """One row per reader (value and 95% interval of each figure), then the detector at its thresholds."""
    figures = ("accuracy", "sensitivity", "specificity", "auc")
    cols = ["who", "mode", "answered"] + [f"{f}{s}" for f in figures for s in ("", "_lo", "_hi")] + ["median_s"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in results["readers"]:
        row = [csv_safe(r["reader"]), r["mode"], r["answered"]]
        row += [_cell(r[f][k]) for f in figures for k in ("value", "lo", "hi")] + [_cell(r["median_s"])]
        writer.writerow(row)
    det = results["detector"]
    for name, point in det["points"].items():
        row = [f"detector@{name}", "", det["images"]]
        row += [_cell(point[f][k]) if f in point else "" for f in figures[:3] for k in ("value", "lo", "hi")]
        row += [_cell(det["auc"][k]) for k in ("value", "lo", "hi")] + [""]
        writer.writerow(row)
    return buf.getvalue()


def answers_csv(study: Study) -> str:
    """Every answer (reader, image id, truth, answer, confidence, click, milliseconds, the detector's risk)."""
    cols = ["reader", "mode", "image_id", "position", "truth", "answer", "confidence", "x", "y", "client_ms",
            "server_ms", "risk", "level"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for a in study.answers():
        writer.writerow([csv_safe(a["reader"]) if c == "reader" else _cell(a[c]) for c in cols])
    return buf.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
