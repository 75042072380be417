"""The end-to-end screening benchmark reads a claim's verdict from its level and top reason."""

from __future__ import annotations

import pytest

from benchmarks.screen_eval import render, verdict


@pytest.mark.parametrize(("level", "reason", "expected"), [
    ("low", "", "clean"),
    ("medium", "a.jpg: medium (reuse.match) same image as b.jpg filed under claim 7", "reused"),
    ("medium", "a.png: medium (localization.copied_texture) the fine grain of ...", "tampered"),
    ("high", "a.jpg: high (cnn.score) patch CNN: P(synthetic) = 1.00", "synthetic"),
    ("high", "a.jpg: high (watermark.medaudit) medaudit provenance watermark found", "synthetic"),
    ("medium", "a.dcm: medium (dicom.odd) header anomaly", "other"),
])
def test_verdict(level, reason, expected):
    assert verdict({"level": level, "reasons": [reason] if reason else []}) == expected


def test_render_counts_right_causes_and_compares_engines():
    rows = [("c1", "x", "clean"), ("c2", "y", "reused"), ("c3", "z", "tampered"), ("c4", "w", "synthetic")]
    found = {"c1": "clean", "c2": "reused", "c3": "clean", "c4": "synthetic"}
    md = render(rows, {"local": (found, 1.0), "dask": (dict(found, c3="tampered"), 2.0)})
    assert "| tampered | 1 | 1 | 0 | 0 | 0 | 0 | 0.00 |" in md
    assert "| reused | 1 | 0 | 1 | 0 | 0 | 0 | 1.00 |" in md
    assert "identical for 3 of 4 claims" in md
