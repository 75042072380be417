"""The Scanner: ``score`` is the one scoring path (``scan_file`` is loading + ``score``), and each analyzer gets
exactly the options it declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.analyzers.cnn import DEFAULT_WEIGHTS_DIR
from forensics.io import load
from forensics.scanner import Scanner, ScanOptions


@pytest.fixture
def ct_path() -> str:
    import pydicom.examples

    return str(pydicom.examples.get_path("ct"))


def test_each_analyzer_gets_only_the_settings_it_declares(tmp_path, ct_path):
    from forensics.reuse import add_paths

    weights = tmp_path / "weights"  # trained detectors: the bundled ones, linked
    weights.mkdir()
    for sub in ("cnn", "frequency"):
        (weights / sub).symlink_to(DEFAULT_WEIGHTS_DIR / sub)
    index = tmp_path / "reuse.sqlite"
    add_paths(index, [ct_path], "c1")
    options = ScanOptions(analyzers=["metadata", "cnn", "frequency", "localization", "reuse"],
                          weights_dir=str(weights), index_path=str(index))
    scanner = Scanner(options)  # metadata's constructor takes neither option: passing one would raise TypeError
    by_name = {a.name: a for a in scanner.analyzers}
    assert set(by_name) == {"metadata", "cnn", "frequency", "localization", "reuse"}, scanner.skipped
    assert by_name["cnn"].weights_dir == by_name["frequency"].weights_dir == weights
    assert by_name["localization"].weights_dir is None  # its own weights folder, not the detectors'
    assert by_name["reuse"].index_path == str(index)


def test_unset_settings_leave_the_analyzers_defaults():
    scanner = Scanner(ScanOptions(analyzers=["cnn", "reuse"]))
    assert [a.name for a in scanner.analyzers] == ["cnn"]
    assert scanner.analyzers[0].weights_dir == DEFAULT_WEIGHTS_DIR
    assert "no reuse index" in scanner.skipped["reuse"]


def test_scan_file_is_load_then_score(ct_path):
    scanner = Scanner(ScanOptions(analyzers=["metadata", "watermark", "frequency", "cnn"]))
    scanned = scanner.scan_file(ct_path, claim_id="c7").to_dict()
    image = load(ct_path)
    image.metadata["claim_id"] = "c7"
    scored = scanner.score(image)
    assert scored.to_dict() | {"elapsed_ms": scanned["elapsed_ms"]} == scanned
    assert scored.claim_id == "c7" and scored.status == "ok" and scored.level in ("low", "medium", "high")
    assert [f.kind for f in scored.findings] == ["rules", "mark", "pixel", "pixel"]


def test_score_abstains_outside_an_analyzers_modalities():
    import pydicom.examples

    scanner = Scanner(ScanOptions(analyzers=["frequency"]))
    result = scanner.score(load(Path(pydicom.examples.get_path("rgb_color"))))  # an ultrasound: never trained on
    (finding,) = result.findings
    assert finding.score is None and finding.kind == "pixel"
    assert finding.evidence[0].code == "frequency.out_of_domain"
    assert result.risk is None and result.level == "unscored" and result.assessed_by == []  # never "low"


def test_the_kind_stays_out_of_the_json_line_and_old_records_read_back(ct_path):
    from forensics.records import ScanResult

    result = Scanner(ScanOptions(analyzers=["metadata", "frequency"])).scan_file(ct_path)
    line = result.to_dict()
    assert all("kind" not in f for f in line["findings"])  # the JSONL record is unchanged (DESIGN.md contract)
    back = ScanResult.from_dict(line)
    assert back.to_dict() == line
    assert [f.kind for f in back.findings] == ["", ""]  # unknown once read back: used again only if decisive
