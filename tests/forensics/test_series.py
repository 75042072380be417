"""Series consistency: one tampered slice of a real-format DICOM series is flagged, in the right place; nothing else.

The series is pydicom's example CT made into 12 slices 2.5 mm apart: its anatomy smoothed (its own noise removed),
stretched by 0.4 % per slice (anatomy drifts slowly) and given fresh CT noise per slice (12 HU), written as a
DICOM CT series with positions and UIDs. ``generators.tamper`` injects a nodule into one slice's lung.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.series_eval import write_series
from forensics.scanner import ScanOptions, scan_paths
from generators.tamper import tamper_file

N_SLICES, TAMPERED = 12, 6


def _ct_series(folder: Path, seed: int = 0) -> list[Path]:
    from pydicom import examples

    ds = examples.ct
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    anatomy = cv2.GaussianBlur(hu, (0, 0), 1.5)
    h, w = anatomy.shape
    rng = np.random.default_rng(seed)
    slices = []
    for k in range(N_SLICES):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, 1.0 + 0.004 * (k - N_SLICES / 2))
        moved = cv2.warpAffine(anatomy, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        slices.append(np.round(moved + rng.normal(0, 12, moved.shape) + 1024).astype(np.int32))
    return write_series(slices, folder, spacing_mm=(0.66, 0.66), gap_mm=2.5, slope=1.0, intercept=-1024.0,
                        modality="CT", seed=seed)


def _lung_point(path: Path) -> tuple[int, int]:
    """A point deep in the lung (the darkest smoothed spot away from the border) where a nodule shows."""
    from forensics.io import load

    hu = cv2.GaussianBlur(load(path).stored.astype(np.float32), (0, 0), 6)
    h, w = hu.shape
    inner = np.full_like(hu, np.inf)
    inner[h // 5 : -h // 5, w // 5 : -w // 5] = hu[h // 5 : -h // 5, w // 5 : -w // 5]
    y, x = np.unravel_index(int(np.argmin(inner)), inner.shape)
    return int(x), int(y)


def _series_findings(results) -> dict[str, dict]:
    out = {}
    for r in results:
        assert r.status == "ok", r.error
        (f,) = [f for f in r.findings if f.analyzer == "series"]
        out[Path(r.path).name] = f
    return out


@pytest.fixture(scope="module")
def tampered_series(tmp_path_factory) -> tuple[Path, tuple[int, int]]:
    folder = tmp_path_factory.mktemp("ct") / "series"
    paths = _ct_series(folder)
    at = _lung_point(paths[TAMPERED])
    info = tamper_file(paths[TAMPERED], paths[TAMPERED], "inject", at, 7, stamp=False, seed=1, mask_path=None)
    assert info["mask_pixels"] > 50
    return folder, at


def test_only_the_tampered_slice_is_flagged_and_where(tampered_series):
    folder, at = tampered_series
    found = _series_findings(scan_paths([folder], ScanOptions(analyzers=["series"])))
    assert len(found) == N_SLICES
    flagged = {name for name, f in found.items() if f.evidence[0].code == "series.inconsistent_slice"}
    assert flagged == {f"slice_{TAMPERED:03d}.dcm"}
    f = found[f"slice_{TAMPERED:03d}.dcm"]
    x0, y0, x1, y1 = f.data["region"]["box"]
    assert x0 <= at[0] < x1 and y0 <= at[1] < y1, (f.data, at)
    assert f.data["index"] == TAMPERED and f.data["n_slices"] == N_SLICES
    assert [Path(p).name for p in f.data["neighbours"]] == [f"slice_{TAMPERED - 1:03d}.dcm",
                                                            f"slice_{TAMPERED + 1:03d}.dcm"]
    assert f.score >= 0.5 and f.kind == "local"
    hy, hx = np.unravel_index(int(np.argmax(f.heatmap)), f.heatmap.shape)
    cell = f.heatmap.shape[0] and 128 // f.heatmap.shape[0]
    assert abs((hx + 0.5) * cell - at[0]) <= 2 * cell and abs((hy + 0.5) * cell - at[1]) <= 2 * cell
    others = [f.score for name, f in found.items() if name != f"slice_{TAMPERED:03d}.dcm"]
    assert max(others) < 0.5


def test_an_untouched_series_gets_no_flag(tmp_path):
    _ct_series(tmp_path / "series", seed=3)
    found = _series_findings(scan_paths([tmp_path], ScanOptions(analyzers=["series"])))
    assert len(found) == N_SLICES
    assert all(f.evidence[0].code == "series.consistent" and f.score < 0.5 for f in found.values())


def test_workers_and_resume_compare_the_whole_series(tampered_series):
    folder, _ = tampered_series
    done = {(None, str(p)) for p in sorted(folder.iterdir())[: TAMPERED + 1] if p.name != f"slice_{TAMPERED:03d}.dcm"}
    results = list(scan_paths([folder], ScanOptions(analyzers=["series"]), workers=2, skip=done))
    found = _series_findings(results)
    assert len(found) == N_SLICES - len(done)
    assert found[f"slice_{TAMPERED:03d}.dcm"].evidence[0].code == "series.inconsistent_slice"
    assert all(f.score < 0.5 for name, f in found.items() if name != f"slice_{TAMPERED:03d}.dcm")


def test_a_bad_slice_is_an_error_record_and_the_rest_is_still_compared(tampered_series, tmp_path):
    folder, _ = tampered_series
    copy = tmp_path / "series"
    shutil.copytree(folder, copy)
    bad = copy / "slice_002.dcm"
    bad.write_bytes(bad.read_bytes()[:600])  # truncated: header only, the pixel data cut
    results = list(scan_paths([copy], ScanOptions(analyzers=["series"])))
    errors = [r for r in results if r.status == "error"]
    assert [Path(r.path).name for r in errors] == ["slice_002.dcm"]
    found = _series_findings([r for r in results if r.status == "ok"])
    assert found[f"slice_{TAMPERED:03d}.dcm"].evidence[0].code == "series.inconsistent_slice"


def test_a_slice_scanned_alone_and_other_images_are_not_compared(tampered_series, tmp_path):
    folder, _ = tampered_series
    (result,) = scan_paths([folder / f"slice_{TAMPERED:03d}.dcm"], ScanOptions(analyzers=["series"]))
    (f,) = result.findings
    assert f.score is None and f.evidence == []
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    (result,) = scan_paths([png], ScanOptions(analyzers=["series"]))
    assert result.findings[0].score is None


def test_the_series_comparison_is_opt_in_and_sees_only_the_run_s_slices(tampered_series, monkeypatch):
    import forensics.series

    folder, _ = tampered_series
    names = [f"slice_{k:03d}.dcm" for k in (TAMPERED - 1, TAMPERED, TAMPERED + 1)]
    paths = [folder / n for n in names]
    # on real series it costs more false alarms than it finds edits (docs/BENCHMARKS.md): not a default analyzer,
    # and a default run does not even read the slices for it
    real_survey = forensics.series.survey
    monkeypatch.setattr(forensics.series, "survey", lambda *a, **k: pytest.fail("surveyed without being asked"))
    assert not any(f.analyzer == "series" for r in scan_paths(paths, ScanOptions()) for f in r.findings)
    monkeypatch.setattr(forensics.series, "survey", real_survey)
    # three slices are a series of their own: the comparison sees only what the run was given
    results = list(scan_paths(paths, ScanOptions(analyzers=["metadata", "series"])))
    series = [f for r in results for f in r.findings if f.analyzer == "series"]
    assert len(series) == 3 and all(f.score is not None for f in series)


def test_scan_cli_reports_the_inconsistent_slice_in_its_json_line(tampered_series):
    import json

    from click.testing import CliRunner

    from cli import main

    folder, _ = tampered_series
    result = CliRunner().invoke(main, ["scan", str(folder), "--analyzers", "metadata,series", "--workers", "2", "-q"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    flagged = [Path(r["path"]).name for r in lines
               for f in r["findings"] if f["analyzer"] == "series" and f["evidence"]
               and f["evidence"][0]["code"] == "series.inconsistent_slice"]
    assert flagged == [f"slice_{TAMPERED:03d}.dcm"]
    (record,) = [r for r in lines if Path(r["path"]).name == flagged[0]]
    assert record["level"] == "medium"  # bounded local evidence: review, never high on its own
