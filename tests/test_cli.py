"""The command line, end to end through click's CliRunner on real files."""

from __future__ import annotations

import csv
import hashlib
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main


def _jsonl(text: str) -> dict[str, dict]:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {os.path.basename(r["path"]): r for r in records}


def _scan(*args: str):
    return CliRunner().invoke(main, ["scan", "--quiet", *args])


def test_scan_mixed_folder_one_record_per_file_with_levels_and_codes(mixed_folder):
    result = _scan(str(mixed_folder))
    assert result.exit_code == 0, result.output
    records = _jsonl(result.stdout)
    assert set(records) == {"ct.dcm", "mr.dcm", "a1111.png", "plain.png", "empty.dcm", "notes.txt", "cut.dcm"}
    assert records["a1111.png"]["level"] == "high"
    assert "png.a1111_parameters" in {e["code"] for f in records["a1111.png"]["findings"] for e in f["evidence"]}
    assert records["ct.dcm"]["level"] == "low"
    assert records["mr.dcm"]["risk"] is not None  # brain MRI is among the pixel detectors' modalities (issue 16)
    assert records["ct.dcm"]["format"] == "dicom" and records["ct.dcm"]["modality"] == "CT"
    assert records["empty.dcm"]["error"]["code"] == "empty_file"
    assert records["notes.txt"]["error"]["code"] == "unsupported_format"
    assert records["cut.dcm"]["error"]["code"] in {"truncated", "corrupt_image"}
    for r in records.values():
        assert {"path", "sha256", "status", "risk", "level", "elapsed_ms", "findings"} <= set(r)


def test_fail_on_high_exits_1_and_errors_do_not_change_status(mixed_folder):
    assert _scan(str(mixed_folder), "--fail-on", "high").exit_code == 1
    assert _scan(str(mixed_folder / "real"), "--fail-on", "high").exit_code == 0
    assert _scan(str(mixed_folder / "broken")).exit_code == 0
    assert _scan(str(mixed_folder / "broken"), "--fail-on-error").exit_code == 1


def test_usage_errors_exit_2(mixed_folder):
    assert _scan(str(mixed_folder), "--format", "xml").exit_code == 2
    assert _scan(str(mixed_folder), "--resume").exit_code == 2
    assert _scan(str(mixed_folder), "--analyzers", "nope").exit_code == 2
    assert _scan(str(mixed_folder), "--threshold-medium", "0.95").exit_code == 2


def test_workers_give_the_same_records_in_the_same_order(mixed_folder):
    one = [json.loads(x) for x in _scan(str(mixed_folder)).stdout.splitlines()]
    two = [json.loads(x) for x in _scan(str(mixed_folder), "--workers", "2").stdout.splitlines()]
    strip = lambda rs: [(r["path"], r["status"], r["risk"], r.get("error")) for r in rs]  # noqa: E731
    assert strip(one) == strip(two)


def test_csv_and_table_formats(mixed_folder, tmp_path):
    out = tmp_path / "r.csv"
    assert _scan(str(mixed_folder), "--format", "csv", "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 7 and {r["status"] for r in rows} == {"ok", "error"}
    table = _scan(str(mixed_folder), "--format", "table").stdout
    assert "high" in table and "empty_file" in table


def test_resume_skips_what_was_written(mixed_folder, tmp_path):
    out = tmp_path / "r.jsonl"
    assert _scan(str(mixed_folder / "real"), "-o", str(out)).exit_code == 0
    result = _scan(str(mixed_folder), "-o", str(out), "--resume")
    assert result.exit_code == 0
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert len(paths) == len(set(paths)) == 7


def test_inputs_are_never_modified(mixed_folder):
    def state():
        return {p: (hashlib.sha256(open(p, "rb").read()).hexdigest(), os.stat(p).st_mtime_ns)
                for p in (os.path.join(d, f) for d, _, fs in os.walk(mixed_folder) for f in fs)}

    before = state()
    assert _scan(str(mixed_folder), "--workers", "2").exit_code == 0
    assert state() == before


def test_progress_goes_to_stderr_and_stdout_stays_json(mixed_folder):
    result = CliRunner().invoke(main, ["scan", str(mixed_folder / "real")])
    assert result.exit_code == 0
    assert all(json.loads(line) for line in result.stdout.splitlines())
    assert "scanned 2" in result.stderr


def test_list_shows_availability():
    result = CliRunner().invoke(main, ["list", "--format", "json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout) if r["type"] == "analyzer"}
    assert rows["metadata"]["available"] is True
    assert {"watermark", "metadata"} <= set(rows)


def test_audit_writes_report_without_patient_names(mixed_folder, tmp_path):
    import pydicom

    name = str(pydicom.dcmread(mixed_folder / "real" / "ct.dcm").PatientName)
    assert name
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["audit", "--quiet", str(mixed_folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for kind in ("html", "json", "csv"):
        text = (out / f"report.{kind}").read_text()
        assert name not in text
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"]
    assert len(report["results"]) == 7
    shown = CliRunner().invoke(main, ["audit", "--quiet", str(mixed_folder / "real"), "--out", str(out),
                                      "--include-phi"])
    assert shown.exit_code == 0 and name in (out / "report.html").read_text()


@pytest.mark.slow
def test_demo_runs_and_writes_a_report(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--quiet", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    by_name = {os.path.basename(r["path"]): r for r in report["results"]}
    real = {n: r for n, r in by_name.items() if n.startswith(("pydicom_", "nibabel_"))}
    for name, r in real.items():
        if r["modality"] not in ("CT", "CR", "DX", "MR", "MG"):  # no pixel analyzer covers it (ultrasound)
            assert r["level"] == "unscored", name
        elif name == "pydicom_mr.dcm":  # a real 64 x 64 MR reaches medium (docs/BENCHMARKS.md, issue 16)
            assert r["level"] in ("low", "medium"), name
        else:  # real scanner files; nibabel's MR slices without pixel signal have nothing to score
            assert r["level"] in ("low", "unscored"), name
    assert by_name["a1111_parameters.png"]["level"] == "high"
    assert by_name["claim_notes.txt"]["status"] == "error"


@pytest.mark.slow
def test_dask_engine_gives_the_same_records_as_local(mixed_folder):
    pytest.importorskip("dask.distributed")
    local = [json.loads(x) for x in _scan(str(mixed_folder)).stdout.splitlines()]
    dask = _scan(str(mixed_folder), "--engine", "dask", "--workers", "2")
    assert dask.exit_code == 0, dask.output
    strip = lambda rs: [(r["path"], r["status"], r["risk"], r.get("error")) for r in rs]  # noqa: E731
    assert strip([json.loads(x) for x in dask.stdout.splitlines()]) == strip(local)


@pytest.mark.slow
def test_train_detector_from_folders_then_scan_with_it(tmp_path):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for kind in ("real", "fake"):
        (tmp_path / kind).mkdir()
    for i in range(16):  # "real": sharp heavy-tailed texture; "fake": the same, smoothed
        base = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 3)
        real = np.clip((base - base.min()) / np.ptp(base) + rng.standard_t(3, (96, 96)) * 0.05, 0, 1)
        cv2.imwrite(str(tmp_path / "real" / f"r{i}.png"), (real * 255).astype(np.uint8))
        cv2.imwrite(str(tmp_path / "fake" / f"f{i}.png"), (cv2.GaussianBlur(real, (0, 0), 1.5) * 255).astype(np.uint8))
    out = tmp_path / "detector"
    trained = CliRunner().invoke(main, ["train", "detector", "-q", "--real", str(tmp_path / "real"),
                                        "--fake", str(tmp_path / "fake"), "--out", str(out), "--time-budget", "15"])
    assert trained.exit_code == 0, trained.output
    assert {"fusion.json", "MODEL_CARD.md"} <= {p.name for p in out.iterdir()}
    assert (out / "cnn" / "weights.safetensors").is_file() and (out / "frequency" / "calibration.json").is_file()
    scanned = CliRunner().invoke(main, ["scan", "-q", str(tmp_path / "fake" / "f0.png"), "--weights", str(out)])
    record = json.loads(scanned.stdout)
    assert {f["analyzer"] for f in record["findings"] if f["score"] is not None} >= {"cnn", "frequency"}


def test_tamper_inject_keeps_dicom_identity_when_unstamped_and_labels_when_stamped(tmp_path):
    import pydicom
    import pydicom.examples

    src = pydicom.examples.get_path("ct")
    stamped, bare = tmp_path / "stamped.dcm", tmp_path / "bare.dcm"
    for out, extra in ((stamped, []), (bare, ["--no-stamp"])):
        result = CliRunner().invoke(main, ["tamper", "inject", str(src), "--at", "64,70", "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
    original, fake = pydicom.dcmread(src), pydicom.dcmread(bare)
    assert fake.SOPInstanceUID == original.SOPInstanceUID and fake.PatientName == original.PatientName
    assert not np.array_equal(fake.pixel_array, original.pixel_array)
    record = json.loads(CliRunner().invoke(main, ["scan", "-q", str(stamped)]).stdout)
    assert record["level"] == "high"
    assert CliRunner().invoke(main, ["tamper", "inject", str(src), "--at", "x", "--out", str(bare)]).exit_code == 2


def test_a_run_that_fails_exits_3_with_one_line_not_a_traceback(mixed_folder, monkeypatch):
    """Issue 15 row 8: disk full while writing used to end in a traceback and exit 1, the status that means
    "an image reached --fail-on". A failed run has its own status and says why in one line."""
    import errno

    import forensics.writers

    def disk_full(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(forensics.writers.ResultWriter, "_write", disk_full)
    for command in (["scan", "--quiet"], ["scan", "--quiet", "--format", "table"]):
        result = CliRunner().invoke(main, [*command, str(mixed_folder)])
        assert result.exit_code == 3, result.output
        assert result.stderr == "medaudit: failed: OSError: [Errno 28] No space left on device\n"


def test_an_unexpected_exception_exits_3_and_usage_errors_stay_2(mixed_folder, monkeypatch):
    import forensics.audit

    def bug(*args, **kwargs):
        raise KeyError("a bug\x1b[2J")

    monkeypatch.setattr(forensics.audit, "audit", bug)
    result = CliRunner().invoke(main, ["audit", str(mixed_folder), "--out", "unused", "-q"])
    assert result.exit_code == 3
    assert result.stderr == "medaudit: failed: KeyError: 'a bug\\x1b[2J'\n"
    assert CliRunner().invoke(main, ["scan", "--no-such-option", str(mixed_folder)]).exit_code == 2


def test_a_real_crash_in_a_child_process_exits_3(tmp_path):
    """The same through the installed command: -o below a file, so the output cannot be created."""
    import subprocess

    from benchmarks.fuzz import medaudit_command, seed_files

    image = tmp_path / "a.png"
    image.write_bytes(seed_files()["png_gray8"][0])
    done = subprocess.run([*medaudit_command(), "scan", str(image), "-o", str(image / "out.jsonl"), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("medaudit: failed: NotADirectoryError") and done.stderr.count("\n") == 1


def test_importing_the_cli_loads_no_numeric_library():
    """`medaudit --help` stays instant: option defaults that need the library are read when a command runs."""
    import subprocess
    import sys

    code = "import sys, cli; print(sorted(m for m in ('numpy', 'torch', 'cv2', 'forensics.io') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_max_bytes_defaults_to_one_gib_when_a_command_runs(tmp_path, monkeypatch):
    import forensics.scanner as scanner_mod

    seen = {}
    real = scanner_mod.Scanner.__init__

    def spy(self, options=None):
        seen["max_bytes"] = options.max_bytes
        real(self, options)

    monkeypatch.setattr(scanner_mod.Scanner, "__init__", spy)
    (tmp_path / "a.png").write_bytes(b"not an image")
    assert CliRunner().invoke(main, ["scan", str(tmp_path / "a.png"), "-q", "--analyzers", "metadata"]).exit_code == 0
    assert seen["max_bytes"] == 1 << 30
