"""Training-data listing of NIfTI volumes (axial slices, split by subject) and PGM mammograms (split by woman)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.datafiles import SLICES_PER_VOLUME, image_files, is_heldout, load_images, source_group


def _volume(path: Path, depth: int = 40, empty: int = 10, seed: int = 0) -> Path:
    """A head-like int16 volume: ``empty`` air slices on top, a bright ellipse with noise in the rest."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :40]
    head = ((yy - 24) / 20) ** 2 + ((xx - 20) / 16) ** 2 < 1
    vol = np.zeros((40, 48, depth), np.int16)
    for k in range(depth - empty):
        vol[:, :, k] = (head.T * (800 + 100 * rng.standard_normal((40, 48)))).astype(np.int16)
    nib.save(nib.Nifti1Image(vol, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    return path


def test_volume_gives_axial_slices_skipping_near_empty_ones(tmp_path):
    from forensics.io.training_sources import volume_slices

    path = _volume(tmp_path / "IXI001-HH-0001_T1.nii.gz", depth=40, empty=10)
    every = volume_slices(path)
    assert len(every) == 30  # the 10 air slices are left out
    assert all(s.shape == (48, 40) and s.dtype == np.float32 for s in every)
    assert 0.0 <= min(float(s.min()) for s in every) and max(float(s.max()) for s in every) <= 1.0
    assert len(volume_slices(path, max_slices=5)) == 5


def test_volume_slices_share_one_intensity_scale(tmp_path):
    """Normalized per volume, not per slice: a darker slice stays darker."""
    import nibabel as nib

    from forensics.io.training_sources import volume_slices

    vol = np.full((32, 32, 4), 100, np.int16)
    vol[:, :, 2:] = 400
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "v.nii.gz"))
    slices = volume_slices(tmp_path / "v.nii.gz", min_foreground=0.0)
    assert slices[0].mean() < 0.5 < slices[3].mean()


def test_listing_expands_volumes_and_keeps_each_subject_on_one_side(tmp_path):
    folder = tmp_path / "mri_brain"
    folder.mkdir()
    for i in range(6):
        _volume(folder / f"IXI{100 + i:03d}-HH-{1000 + i}_T1.nii.gz", depth=30, empty=5, seed=i)
    for seq in ("T1", "FLAIR"):
        _volume(folder / f"TCGA-FG-6692_{seq}.nii.gz", depth=20, empty=0)
    paths = image_files([folder])
    assert len(paths) == 8
    ims, listed = load_images(paths)
    assert len(ims) == len(listed) == 6 * SLICES_PER_VOLUME + 2 * SLICES_PER_VOLUME
    groups = {source_group(p) for p in listed}
    assert len(groups) == 7  # one per IXI subject, one for the TCGA patient's two sequences
    assert source_group(folder / "TCGA-FG-6692_T1.nii.gz") == source_group(folder / "TCGA-FG-6692_FLAIR.nii.gz")
    for g in groups:  # the held-out rule is decided per subject: every slice of it lands on the same side
        assert len({is_heldout(p) for p in listed if source_group(p) == g}) == 1


def test_subject_split_holds_out_whole_subjects():
    names = [f"d/mri_brain/IXI{i:03d}-HH-{i}_T1.nii.gz" for i in range(200)]
    held = sum(is_heldout(n) for n in names)
    assert 20 < held < 60  # about a fifth of the subjects
    assert source_group("d/mri_brain/IXI012-HH-1211_T1.nii.gz") == "mri_brain/IXI012"


def test_pgm_mammograms_are_listed_and_both_breasts_of_a_woman_stay_together(tmp_path):
    folder = tmp_path / "mammo"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5):
        cv2.imwrite(str(folder / f"mdb{n:03d}.pgm"), (rng.random((96, 96)) * 255).astype(np.uint8))
    (folder / "labels.csv").write_text("file,label\n")
    paths = image_files([folder])
    assert [p.name for p in paths] == [f"mdb{n:03d}.pgm" for n in (1, 2, 3, 4, 5)]
    ims, listed = load_images(paths)
    assert len(ims) == 5 and ims[0].shape == (96, 96) and ims[0].dtype == np.float32
    # mini-MIAS: odd number = right breast, the next even number = left breast of the same woman
    assert source_group(folder / "mdb001.pgm") == source_group(folder / "mdb002.pgm") == "mammo/mias_patient1"
    third = source_group(folder / "mdb003.pgm")
    assert third == source_group(folder / "mdb004.pgm") != source_group(folder / "mdb002.pgm")
    assert is_heldout(folder / "mdb003.pgm") == is_heldout(folder / "mdb004.pgm")


def test_a_damaged_volume_or_pgm_is_skipped_with_a_message(tmp_path, capsys):
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "bad.pgm").write_bytes(b"P5\n12 12\n255\n\x00")
    ims, listed = load_images([tmp_path / "bad.nii.gz", tmp_path / "bad.pgm"])
    assert ims == [] and listed == []
    err = capsys.readouterr().err
    assert "bad.nii.gz" in err and "bad.pgm" in err


@pytest.mark.parametrize("name,volume", [("x.nii", True), ("x.nii.gz", True), ("x.PGM", False), ("x.png", False)])
def test_volumes_are_told_by_name(name, volume):
    from forensics.io.training_sources import is_volume

    assert is_volume(name) is volume
