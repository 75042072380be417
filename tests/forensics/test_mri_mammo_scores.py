"""Brain MRI and mammography get pixel scores from the shipped detectors (trained on both), not ``unscored``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main

# real images: $MEDAUDIT_DATA, else ../shared/data next to the checkout (or next to its worktree folder)
_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDAUDIT_DATA") or next(
    (p / "shared" / "data" for p in (_ROOT.parent, _ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
    _ROOT.parent / "shared" / "data"))
PIXEL = "cnn,frequency"


def _scan(*paths: Path) -> dict[str, dict]:
    out = CliRunner().invoke(main, ["scan", "-q", "--analyzers", PIXEL, *map(str, paths)])
    assert out.exit_code == 0, out.output
    return {Path(r["path"]).name: r for r in map(json.loads, out.stdout.splitlines())}


def _assert_scored(rec: dict) -> None:
    assert rec["status"] == "ok" and rec["level"] != "unscored" and rec["risk"] is not None
    scores = {f["analyzer"]: f["score"] for f in rec["findings"]}
    assert set(scores) == {"cnn", "frequency"} and None not in scores.values(), rec["findings"]


def _heldout(folder: str, pattern: str) -> Path:
    from benchmarks.datafiles import is_heldout

    return next(p for p in sorted((SHARED / folder).glob(pattern)) if is_heldout(p))


@pytest.mark.skipif(not (SHARED / "mri_brain").is_dir(), reason="needs ../shared/data/mri_brain (real MRI), absent")
def test_a_real_mri_slice_png_and_its_nifti_volume_are_scored(tmp_path):
    from forensics.io.training_sources import volume_slices

    volume = _heldout("mri_brain", "IXI*.nii.gz")  # a subject the detectors never trained on
    slices = volume_slices(volume)
    png = tmp_path / "slice.png"
    cv2.imwrite(str(png), (slices[len(slices) // 2] * 255).round().astype(np.uint8))
    records = _scan(png, volume)
    assert records["slice.png"]["modality_estimate"]["code"] == "MR"
    _assert_scored(records["slice.png"])
    _assert_scored(records[volume.name])  # NIfTI: the middle slice, modality estimated from its pixels


@pytest.mark.skipif(not (SHARED / "mammo").is_dir(), reason="needs ../shared/data/mammo (real mammograms), absent")
def test_a_real_mammogram_png_is_scored(tmp_path):
    from forensics.io import load

    film = _heldout("mammo", "mdb*.pgm")
    png = tmp_path / "mammogram.png"
    cv2.imwrite(str(png), (load(film).pixels * 255).round().astype(np.uint8))
    (rec,) = _scan(png).values()
    assert rec["modality_estimate"]["code"] == "MG"
    _assert_scored(rec)


def test_dicom_with_modality_mr_or_mg_is_scored(tmp_path):
    """The header's modality decides: MR and MG are now among the detectors' modalities."""
    import pydicom.examples

    out = CliRunner().invoke(main, ["generate", "mammo_gan", "-n", "1", "--out", str(tmp_path / "mg"),
                                    "--format", "dicom", "-q"])
    assert out.exit_code == 0, out.output
    (mg,) = (tmp_path / "mg").glob("*.dcm")
    records = _scan(Path(pydicom.examples.get_path("mr")), mg)
    assert records["MR_small.dcm"]["modality"] == "MR" and records[mg.name]["modality"] == "MG"
    for rec in records.values():
        _assert_scored(rec)
