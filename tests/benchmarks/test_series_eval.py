"""`bench series` end to end on one real MRI volume written as a DICOM series (skipped without the data folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.series_eval import evaluate, nifti_series, render, summarize

# real images: $MEDAUDIT_DATA, else ../shared/data next to the checkout (or next to its worktree folder)
_ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MEDAUDIT_DATA") or next(
    (p / "shared" / "data" for p in (_ROOT.parent, _ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
    _ROOT.parent / "shared" / "data"))
MRI = DATA / "mri_brain"


@pytest.mark.skipif(not MRI.is_dir(), reason=f"no real MRI volumes at {MRI}")
def test_a_volume_becomes_a_series_the_loader_reads_in_order(tmp_path):
    from forensics.io import load
    from forensics.series import group_series, read_ref

    volume = sorted(MRI.glob("IXI*.nii.gz"))[0]
    paths = nifti_series(volume, tmp_path / "s")
    (series,) = group_series([read_ref(str(p), 1 << 30) for p in reversed(paths)])
    assert [Path(r.path).name for r in series] == [p.name for p in paths]
    img = load(paths[len(paths) // 2])
    assert img.modality == "MR" and img.spacing_mm == (2.0, 2.0) and img.stored.max() > 100


@pytest.mark.skipif(not MRI.is_dir(), reason=f"no real MRI volumes at {MRI}")
def test_bench_series_measures_untouched_and_tampered_series():
    res = evaluate(DATA, n=1, methods=("inject", "remove"))
    summary = summarize(res)
    assert [(s["method"], s["radius_mm"]) for s in summary["methods"]] == [
        ("inject", 5.0), ("remove", 5.0), ("inject", 10.0), ("remove", 10.0)]
    assert all(s["n"] == 2 for s in summary["methods"])  # the IXI volume and the TCGA one
    untouched = sum(u["slices"] for u in summary["untouched"].values())
    assert untouched == 90 + 26
    text = render(res, summary)
    assert "| inject | inject | no | 5 mm | 2 |" in text and "| remove | remove | no | 10 mm | 2 |" in text
