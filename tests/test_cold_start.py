"""Cold start: a handful of files is scanned in this process, whatever --workers says (no pool to start, no second
copy of torch and the models); the bundled CNN loads without timm. Timing itself is `medaudit bench cold-start`."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
from click.testing import CliRunner

import forensics.scanner as scanner_mod
from cli import main


def test_a_handful_of_files_starts_no_worker_pool(tmp_path, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr(scanner_mod, "_execute_pool", no_pool)
    for i in range(scanner_mod.IN_PROCESS_MAX):
        cv2.imwrite(str(tmp_path / f"x{i}.png"), np.full((32, 32), 40 * i, np.uint8))
    one = CliRunner().invoke(main, ["scan", "-q", "-j", "4", "--analyzers", "metadata", str(tmp_path / "x0.png")])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["status"] == "ok"
    few = CliRunner().invoke(main, ["scan", "-q", "-j", "4", "--analyzers", "metadata", str(tmp_path)])
    assert few.exit_code == 0, few.output and len(few.stdout.splitlines()) == scanner_mod.IN_PROCESS_MAX


def test_scanning_with_the_bundled_cnn_does_not_import_timm(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), (np.random.default_rng(0).random((96, 96)) * 255).astype(np.uint8))
    code = ("import sys; from forensics.scanner import Scanner, ScanOptions; "
            f"r = Scanner(ScanOptions(analyzers=['cnn'])).scan_file({str(tmp_path / 'x.png')!r}); "
            "assert r.status == 'ok', r.error; print('timm' in sys.modules, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cold_start_is_a_registered_benchmark():
    from benchmarks.evaluations import list_evaluations

    assert "cold_start" in list_evaluations()
    assert CliRunner().invoke(main, ["bench", "cold-start", "--help"]).exit_code == 0
