"""The small `medaudit bench` commands, end to end on tiny inputs, and the generated-docs sections."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.docs import update_section
from cli import main


def test_update_section_replaces_only_its_own_block(tmp_path):
    doc = tmp_path / "B.md"
    update_section(doc, "a", "A", "first", command="cmd a")
    update_section(doc, "b", "B", "other", command="cmd b")
    doc.write_text(doc.read_text() + "\nhand-written note\n")
    update_section(doc, "a", "A", "second", command="cmd a")
    text = doc.read_text()
    assert "second" in text and "first" not in text and "other" in text and "hand-written note" in text
    assert text.count("<!-- section:a -->") == 1 and "Machine:" in text and "`cmd a`" in text


def test_bench_scan_speed_writes_its_section_and_stores_its_figures(tmp_path):
    from benchmarks.store import ResultStore

    doc, db = tmp_path / "B.md", tmp_path / "r.sqlite"
    result = CliRunner().invoke(main, ["bench", "scan-speed", "-n", "3", "--size", "64", "--workers", "1",
                                       "--write-docs", str(doc), "--db", str(db)])
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    assert "<!-- section:scan-speed-metadata-64 -->\n## Scan throughput: metadata analyzers, 64²" in text
    assert "| png | 64² | 3 | local | 1 | metadata |" in text
    with ResultStore(db) as store:
        run_id = store.latest_run(evaluation="scan_speed")
        assert store.run(run_id)["evaluation"] == "scan_speed" and store.latest_run() is None  # no `bench run`
        rows = store.results(run_id)
    assert {(r["subset"], r["perturbation"], r["metric"]) for r in rows} == {
        ("png/64", "local", "images_per_s"), ("dicom/64", "local", "images_per_s")}
    assert all(r["value"] > 0 and r["detector"] == "scan_speed" for r in rows)


def test_bench_watermark_on_a_tiny_data_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cxr_kermany").mkdir()
    for i in range(3):
        img = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2)
        cv2.imwrite(str(tmp_path / "cxr_kermany" / f"x{i}.png"), (img / img.max() * 255).astype(np.uint8))
    result = CliRunner().invoke(main, ["bench", "watermark", "--data", str(tmp_path), "-n", "3", "--sizes", "native",
                                       "--generators", "0", "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0, result.output
    assert "| cxr_kermany | native | 3 |" in result.stdout


@pytest.mark.slow
def test_bench_screen_on_a_tiny_data_folder(tmp_path):
    from benchmarks.datasets import is_holdout

    rng = np.random.default_rng(0)
    for folder in ("cxr_kermany", "ct_lung_tcia"):
        (tmp_path / folder).mkdir()
        names = [f"x{i}.png" for i in range(200) if is_holdout(f"x{i}.png")][:5]  # one claim of each kind
        for name in names:
            yy, xx = np.mgrid[0:160, 0:160] / 160
            img = 0.45 + 0.2 * np.sin(3 * xx + 1) * np.cos(2 * yy) + rng.normal(0, 0.02, (160, 160))
            cv2.imwrite(str(tmp_path / folder / name), np.clip(img * 255, 0, 255).astype(np.uint8))
    doc = tmp_path / "B.md"
    result = CliRunner().invoke(main, ["bench", "screen", "--data", str(tmp_path), "--per-kind", "1",
                                       "--write-docs", str(doc), "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    assert "<!-- section:screen -->" in text and "**local**" in text and "**dask**" in text
    # (the test texture itself looks generated to the pixel detectors, so only the plumbing is checked here)
    for kind in ("clean", "original", "reused", "tampered", "synthetic"):
        assert text.count(f"| {kind} | 2 |") == 2  # one row per engine, both modalities counted
    assert "identical for 10 of 10 claims" in text


def test_bench_detectors_hands_its_options_to_the_evaluation(tmp_path, monkeypatch):
    from benchmarks import evaluations

    calls = []

    def fake_run(name, **kw):
        calls.append((name, kw))
        return "run-1", evaluations.Section("detectors", "Pixel detectors (frequency, cnn, fused)", "| table |")

    monkeypatch.setattr(evaluations, "run_evaluation", fake_run)
    doc = tmp_path / "B.md"
    result = CliRunner().invoke(main, ["bench", "detectors", "--data", str(tmp_path), "--lofo-budget", "0",
                                       "--db", str(tmp_path / "r.sqlite"), "--write-docs", str(doc)])
    assert result.exit_code == 0, result.output
    name, kw = calls[0]
    assert name == "detectors" and kw["data"] == tmp_path and kw["lofo_budget"] == 0.0
    assert kw["db"] == tmp_path / "r.sqlite" and "| table |" in result.stdout
    assert "<!-- section:detectors -->\n## Pixel detectors (frequency, cnn, fused)" in doc.read_text()
    help_text = CliRunner().invoke(main, ["bench", "detectors", "--help"]).output
    assert "--lofo-budget" in help_text and "three CNN fits" in help_text and "450" in help_text


@pytest.mark.parametrize("command", ["detectors", "reuse", "screen", "tamper", "generators", "watermark", "run",
                                     "resampling", "series", "utility"])
def test_data_commands_say_what_is_missing_without_a_data_folder(command, monkeypatch):
    monkeypatch.delenv("MEDAUDIT_DATA", raising=False)
    result = CliRunner().invoke(main, ["bench", command])
    assert result.exit_code == 2
    assert "no data folder: give --data DIR or set MEDAUDIT_DATA (a folder with cxr_kermany/" in result.output
    help_text = CliRunner().invoke(main, ["bench", command, "--help"]).output
    assert "MEDAUDIT_DATA" in help_text and "shared/" not in help_text


def test_data_folder_from_the_environment(tmp_path, monkeypatch):
    from benchmarks import evaluations

    calls = []
    monkeypatch.setattr(evaluations, "run_evaluation",
                        lambda name, **kw: calls.append(kw) or ("r", evaluations.Section("reuse", "T", "md")))
    monkeypatch.setenv("MEDAUDIT_DATA", str(tmp_path))
    result = CliRunner().invoke(main, ["bench", "reuse", "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0, result.output
    assert calls[0]["data"] == tmp_path and calls[0]["n_pos"] == 40 and calls[0]["write_thresholds"] is False


def test_every_bench_command_is_a_registered_evaluation():
    from benchmarks.evaluations import list_evaluations

    assert list_evaluations() == ["cold_start", "detectors", "generators", "privacy", "reader", "resampling_controls",
                                  "reuse", "scan_speed", "screen", "series", "speed", "tamper", "third_party",
                                  "utility", "watermark"]
