"""Audit reports: one self-contained HTML page, a JSON document and a CSV table per scan.

Example::

    from forensics.report import write_report

    paths = write_report(results, "out/", {"tool_version": "0.1.0", "thresholds": {"medium": 0.5, "high": 0.9}})
    paths["html"]  # Path("out/report.html"); also paths["json"], paths["csv"]

- ``report.html``: summary counts by level, how to read the risk, a results table (sortable by clicking a header,
  risk descending by default) with thumbnails, per-image details (every finding and its evidence, heatmaps as
  colour overlays, header facts), the errors, and the provenance of the run (tool and analyzer versions, model
  file hashes, thresholds, command line, times, machine). Images are inline PNG data URIs, the CSS and the small
  sorting script are inline, and a Content-Security-Policy forbids any other script or network load. Every value
  that comes from an input file is HTML-escaped (jinja2 autoescape). Each image's details also hold its views
  (``views.py``, ``views.html``, ``views.js``): the image zoomable with window/level on the stored values, ELA
  for JPEG, the noise residual, heatmaps on the score's scale, the copy-move overlay and reuse matches side by
  side with the transform undone.
- ``report.json``: ``{"schema_version", "context", "summary", "results"}``; each result is ``ScanResult.to_dict()``
  plus its ``details`` (no thumbnails).
- ``report.csv``: one row per input (columns in ``CSV_COLUMNS``); cells that a spreadsheet would run as a formula
  are prefixed with ``'``.

All three, with any ``extra`` files of the same output set (screening's images.jsonl and claims.jsonl), are
replaced as one set (``forensics.atomic.write_set``); nothing else is written. Patient identifiers in ``details``
are redacted again here unless ``context["include_phi"]`` is true.
"""

from __future__ import annotations

from forensics.report.writer import CSV_COLUMNS, REPORT_SCHEMA_VERSION, RISK_NOTE, summarize, write_report

__all__ = ["CSV_COLUMNS", "REPORT_SCHEMA_VERSION", "RISK_NOTE", "summarize", "write_report"]
