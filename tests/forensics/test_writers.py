from __future__ import annotations

import csv
import json

import pytest

from forensics.records import Evidence, Finding, ScanError, ScanResult
from forensics.writers import ResultWriter, csv_safe


def _ok(path: str, risk: float = 0.2) -> ScanResult:
    return ScanResult(path=path, status="ok", sha256="ab" * 32, risk=risk, level="low", format="png",
                      findings=[Finding("metadata", risk, [Evidence("dicom.date_order", "dates", risk)])])


def test_output_appears_only_when_complete(tmp_path):
    out = tmp_path / "r.jsonl"
    writer = ResultWriter("jsonl", out)
    writer.write(_ok("a.png"))
    assert not out.exists() and (tmp_path / "r.jsonl.partial").exists()
    writer.close()
    assert out.exists() and not (tmp_path / "r.jsonl.partial").exists()
    assert json.loads(out.read_text())["path"] == "a.png"


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_drops_a_cut_line_and_skips_recorded_paths(tmp_path, fmt):
    out = tmp_path / f"r.{fmt}"
    writer = ResultWriter(fmt, out)
    writer.write(_ok("a.png"))
    writer.write(_ok("=b.png"))
    writer.close(complete=False)
    partial = tmp_path / f"r.{fmt}.partial"
    partial.write_bytes(partial.read_bytes() + b'{"path": "c.png", "sta')  # killed mid-line
    resumed = ResultWriter(fmt, out, resume=True)
    assert resumed.done == {(None, "a.png"), (None, "=b.png")}
    resumed.write(_ok("c.png"))
    resumed.close()
    text = out.read_text()
    if fmt == "jsonl":
        assert [json.loads(line)["path"] for line in text.splitlines()] == ["a.png", "=b.png", "c.png"]
    else:
        rows = list(csv.DictReader(text.splitlines()))
        assert [r["path"] for r in rows] == ["a.png", "'=b.png", "c.png"]


def test_resume_needs_a_file_and_a_machine_format():
    with pytest.raises(ValueError):
        ResultWriter("jsonl", None, resume=True)
    with pytest.raises(ValueError):
        ResultWriter("table", "x.txt", resume=True)


def test_csv_cells_cannot_become_formulas():
    assert csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_safe("@SUM") == "'@SUM"
    assert csv_safe("ok.png") == "ok.png"


def test_error_record_has_the_contract_fields():
    record = ScanResult(path="x.txt", status="error", error=ScanError("unsupported_format", "not an image")).to_dict()
    assert record["risk"] is None and record["level"] is None
    assert record["error"] == {"code": "unsupported_format", "message": "not an image"}


def test_resume_of_a_csv_with_other_columns_is_refused(tmp_path):
    from forensics.writers import ResultWriter

    out = tmp_path / "scan.csv"
    (tmp_path / "scan.csv.partial").write_text("path,sha256,status,risk,level\nold.png,,ok,0.1,low\n")
    with pytest.raises(ValueError, match="CSV columns are not this version's"):
        ResultWriter("csv", out, resume=True)
