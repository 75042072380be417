"""The audit report: JSON schema, CSV rows and injection quoting, HTML escaping, atomic writes, a real browser."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from forensics.records import Evidence, Finding, ScanError, ScanResult
from forensics.report import CSV_COLUMNS, REPORT_SCHEMA_VERSION, write_report

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
SHA = "ab" * 32


def _thumb_gray() -> np.ndarray:
    yy, xx = np.mgrid[0:96, 0:128]
    return ((np.sin(xx / 9.0) * np.cos(yy / 13.0) + 1) * 127).astype(np.uint8)


def _thumb_rgb() -> np.ndarray:
    img = np.zeros((120, 120, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, 120, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(255, 0, 120, dtype=np.uint8)[:, None]
    return img


def _results() -> list[ScanResult]:
    heat = np.zeros((8, 8), np.float32)
    heat[2:5, 3:7] = 1.0
    heat[5, 1] = 0.5
    high = ScanResult(
        path=f"claims/17/{XSS_SCRIPT}.dcm",
        status="ok",
        sha256=SHA,
        risk=0.97,
        level="high",
        format="dicom",
        modality="CR",
        elapsed_ms=41.2,
        width=1024,
        height=768,
        thumbnail=_thumb_gray(),
        findings=[
            Finding(
                "watermark",
                1.0,
                [Evidence("watermark.medaudit", f"medaudit watermark found {XSS_ATTR}", 1.0)],
                decisive=True,
            ),
            Finding("cnn", 0.88, [Evidence("cnn.patch_score", "patches look generated", 0.6)], heatmap=heat),
        ],
        details={
            "PatientName": "redacted:0badc0de",
            "PatientID": "12345",  # a producer forgot to redact: the report must not leak it
            f"<b onmouseover=alert(1)>{XSS_SCRIPT}": f'it\'s "quoted" {XSS_ATTR}',
            "Rows": np.int64(768),
            "WindowCenter": [40.0, float("nan")],
        },
    )
    medium = ScanResult(
        path='=HYPERLINK("http://evil")/mri.png',
        status="ok",
        sha256="cd" * 32,
        risk=0.61,
        level="medium",
        format="png",
        thumbnail=_thumb_rgb(),
        findings=[
            Finding("metadata", 0.6, [Evidence("png.a1111_parameters", "+cmd|' /C calc'!A0", 0.7)]),
            Finding("frequency", None),
        ],
    )
    low = ScanResult(path="-low.jpg", status="ok", sha256="ef" * 32, risk=0.03, level="low", format="jpeg")
    error = ScanResult(
        path=f"claims/17/{XSS_ATTR}.txt",
        status="error",
        error=ScanError("unsupported_format", f"not an image: {XSS_SCRIPT}"),
    )
    return [low, error, high, medium]


CONTEXT = {
    "tool_version": "0.1.0",
    "command": f"medaudit scan claims/ --report out/ {XSS_ATTR}",
    "started": "2024-05-01T10:00:00Z",
    "finished": "2024-05-01T10:00:03Z",
    "thresholds": {"medium": 0.5, "high": 0.9},
    "analyzers": [
        {"name": "cnn", "version": "1.2", "available": True, "reason": "", "model_hashes": {"cnn.safetensors": SHA}},
        {"name": "frequency", "version": "1.0", "available": False, "reason": f"weights missing {XSS_SCRIPT}"},
    ],
    "include_phi": False,
    "machine": "scanner-box / Linux-6.1-x86_64",
}


class _Tags(HTMLParser):
    """Start tags and their attributes, as a browser's tokenizer sees them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    @classmethod
    def parse(cls, html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser.tags


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, Path]:
    return write_report(_results(), tmp_path_factory.mktemp("report") / "out", CONTEXT)


def test_returns_three_paths_inside_out_dir(report):
    assert set(report) == {"html", "json", "csv"}
    out = report["html"].parent
    assert all(p.parent == out and p.is_file() for p in report.values())
    assert sorted(os.listdir(out)) == ["report.csv", "report.html", "report.json"]  # no temp files, no assets


def test_json_schema(report):
    doc = json.loads(report["json"].read_text(encoding="utf-8"))
    assert set(doc) == {"schema_version", "context", "summary", "results"}
    assert doc["schema_version"] == REPORT_SCHEMA_VERSION
    assert doc["summary"] == {"total": 4, "low": 1, "medium": 1, "high": 1, "error": 1, "unscored": 0}
    assert doc["context"]["thresholds"] == {"medium": 0.5, "high": 0.9}
    assert len(doc["results"]) == 4
    by_level = {r["level"] or r["status"]: r for r in doc["results"]}
    high = by_level["high"]
    assert {"path", "sha256", "status", "risk", "level", "findings", "details"} <= set(high)
    assert "thumbnail" not in high
    assert high["findings"][1]["heatmap"][2][3] == 1.0
    assert high["details"]["Rows"] == 768 and high["details"]["WindowCenter"] == [40.0, None]
    assert by_level["error"]["error"] == {"code": "unsupported_format", "message": f"not an image: {XSS_SCRIPT}"}


def test_phi_redacted_again_unless_opted_in(report, tmp_path):
    doc = json.loads(report["json"].read_text(encoding="utf-8"))
    details = next(r["details"] for r in doc["results"] if r["level"] == "high")
    assert details["PatientName"] == "redacted:0badc0de"
    assert details["PatientID"].startswith("redacted:")
    assert "12345" not in report["html"].read_text(encoding="utf-8")

    paths = write_report(_results(), tmp_path, dict(CONTEXT, include_phi=True))
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert next(r["details"] for r in doc["results"] if r["level"] == "high")["PatientID"] == "12345"


def test_csv_rows_and_columns(report):
    with open(report["csv"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == 4
    high = next(r for r in rows if r["level"] == "high")
    assert high["risk"] == "0.9700" and high["format"] == "dicom" and high["modality"] == "CR"
    assert high["evidence_codes"] == "watermark.medaudit;cnn.patch_score"
    assert high["top_evidence"].startswith("medaudit watermark found")  # decisive evidence wins
    err = next(r for r in rows if r["status"] == "error")
    assert err["error_code"] == "unsupported_format" and err["risk"] == "" and err["level"] == ""


def test_csv_injection_quoted(report):
    with open(report["csv"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    medium = next(r for r in rows if r["level"] == "medium")
    assert medium["path"] == '\'=HYPERLINK("http://evil")/mri.png'
    assert medium["top_evidence"] == "'+cmd|' /C calc'!A0"
    assert next(r for r in rows if r["level"] == "low")["path"] == "'-low.jpg"
    for row in rows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


def test_html_escapes_hostile_values(report):
    html = report["html"].read_text(encoding="utf-8")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<b onmouseover" not in html
    assert "it&#39;s &#34;quoted&#34;" in html
    tags = _Tags.parse(html)
    # as a browser parses it: no event-handler attribute anywhere, no <b> or stray <img>, one script (ours)
    assert not [(t, a) for t, attrs in tags for a, _ in attrs if a.startswith("on")]
    assert [t for t, _ in tags].count("script") == 1
    assert "b" not in [t for t, _ in tags]
    assert all(dict(attrs).get("src", "data:").startswith("data:") for t, attrs in tags)


def test_html_is_self_contained(report):
    html = report["html"].read_text(encoding="utf-8")
    links = [v for _, attrs in _Tags.parse(html) for a, v in attrs if a in ("src", "href", "action", "srcset")]
    assert links and all(v.startswith("data:image/png;base64,") for v in links)
    assert "http://" not in html.replace("http://evil", "") and "https://" not in html
    assert "Content-Security-Policy" in html


def test_html_contents(report):
    html = report["html"].read_text(encoding="utf-8")
    assert html.count('<tr class="result">') == 4
    assert html.count("<details>") == 4
    assert "calibrated probability that the image is synthetic or manipulated" in html
    assert "Metadata absence is not evidence of authenticity" in html
    for text in ("0.1.0", "cnn.safetensors", SHA, "2024-05-01T10:00:03Z", "scanner-box", "weights missing",
                 "watermark.medaudit", "unsupported_format", "cnn heatmap", "decisive"):  # fmt: skip
        assert text in html, text
    assert f'title="{SHA}"' in html and SHA[:12] + "…" in html
    # default order: risk descending, errors last
    order = [html.index(p) for p in ("claims/17/&lt;script", "=HYPERLINK", "-low.jpg", "unsupported_format</code>")]
    assert order == sorted(order)


def test_missing_context_and_empty_results(tmp_path):
    paths = write_report([], tmp_path / "a" / "b", {})
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["summary"]["total"] == 0 and doc["results"] == [] and doc["context"] == {}
    assert "No inputs" in paths["html"].read_text(encoding="utf-8")
    assert paths["csv"].read_text(encoding="utf-8").splitlines() == [",".join(CSV_COLUMNS)]


def test_odd_images_do_not_break_the_report(tmp_path):
    odd = [
        ScanResult("float.png", "ok", risk=0.5, level="medium", thumbnail=np.random.default_rng(0).random((300, 200))),
        ScanResult("rgba.png", "ok", risk=0.2, level="low", thumbnail=np.zeros((10, 10, 4), np.uint8)),
        ScanResult("bad.png", "ok", risk=float("nan"), thumbnail=np.zeros((0, 5), np.uint8)),
        ScanResult(
            "heat-only.png",
            "ok",
            risk=0.4,
            level="low",
            findings=[Finding("cnn", 0.4, heatmap=np.full((4, 6), np.nan, np.float32))],
        ),  # fmt: skip
    ]
    paths = write_report(odd, tmp_path, {"thresholds": "not a dict", "analyzers": ["bare-name"]})
    html = paths["html"].read_text(encoding="utf-8")
    assert html.count('<tr class="result">') == 4
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))  # NaN risk became null, not invalid JSON
    assert doc["summary"]["unscored"] == 1


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path, monkeypatch):
    write_report(_results(), tmp_path, CONTEXT)
    before = (tmp_path / "report.json").read_bytes()

    import forensics.report.writer as writer

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "render_html", boom)
    with pytest.raises(RuntimeError):
        write_report(_results()[:1], tmp_path, CONTEXT)
    assert sorted(os.listdir(tmp_path)) == ["report.csv", "report.html", "report.json"]
    assert (tmp_path / "report.json").read_bytes() == before  # rendering failed: nothing was replaced
    monkeypatch.undo()

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(RuntimeError):
        write_report(_results()[:2], tmp_path, CONTEXT)
    assert sorted(os.listdir(tmp_path)) == ["report.csv", "report.html", "report.json"]  # temp file removed
    assert (tmp_path / "report.json").read_bytes() == before


# ------------------------------------------------------------------------------------------------ browser

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (/usr/bin/chromium or on PATH)")
def test_browser_renders_and_sorts(tmp_path):
    paths = write_report(_results(), tmp_path / "out", CONTEXT)
    url = paths["html"].resolve().as_uri()

    dom = _chromium(["--dump-dom", url], tmp_path).stdout
    assert re.search(r"<body[^>]*data-ready=\"1\"", dom), "sorting script did not run to the end"
    assert dom.count('<tr class="result">') == 4
    assert 'data-key="risk" data-type="num" aria-sort="descending"' in dom
    assert "<script>alert" not in dom

    shot = tmp_path / "report.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,1600", url], tmp_path)
    assert shot.is_file() and shot.stat().st_size > 0

    import cv2

    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (1600, 1280)
    assert float(img.std()) > 20
    colours = np.unique((img[::4, ::4] // 32).reshape(-1, 3), axis=0)
    assert len(colours) >= 8
    keep = os.environ.get("MEDAUDIT_REPORT_SCREENSHOT")
    if keep:  # for a person to look at
        shutil.copy(shot, keep)
