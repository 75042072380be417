"""The training-set loader: PNG, JPEG and DICOM folders, colour detection, windows, augmentation, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pydicom.examples
import pytest
import torch

from generators.data import EmptyDatasetError, ImageDataset, apply_window


def test_reads_nested_png_folder(gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=16)
    assert len(ds) == 6 and ds.channels == 1
    assert ds.images.shape == (6, 1, 16, 16) and ds.images.dtype == torch.float32
    assert 0 <= float(ds.images.min()) and float(ds.images.max()) <= 1


def test_colour_jpegs_are_rgb(rgb_jpeg_folder):
    ds = ImageDataset(rgb_jpeg_folder, resolution=16)
    assert ds.channels == 3 and ds.images.shape == (5, 3, 16, 16)
    # brownish lesion on pink skin: red channel brightest on average
    assert ds.images[:, 0].mean() > ds.images[:, 2].mean()
    assert ImageDataset(rgb_jpeg_folder, resolution=16, channels=1).channels == 1


def test_ct_dicom_goes_through_the_hu_window(tmp_path):
    src = pydicom.examples.get_path("ct")
    (tmp_path / "series").mkdir()
    for i in range(3):
        shutil.copyfile(src, tmp_path / "series" / f"slice{i}.dcm")
    ds = ImageDataset(tmp_path / "series", resolution=32, augment=False)
    assert len(ds) == 3 and ds.modality == "CT" and ds.channels == 1
    ref = pydicom.dcmread(src)
    hu = ref.pixel_array * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
    lung = apply_window(hu, "lung")
    assert abs(float(ds.images[0].mean()) - float(lung.mean())) < 0.1
    soft = ImageDataset(tmp_path / "series", resolution=32, window="soft_tissue", augment=False)
    assert not torch.allclose(soft.images, ds.images)


def test_apply_window_range():
    out = apply_window(np.array([-2000.0, -600.0, 3000.0]), "lung")
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(EmptyDatasetError, match="no readable PNG/JPEG/DICOM/PGM/NIfTI images"):
        ImageDataset(tmp_path / "empty")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        ImageDataset(tmp_path / "nope")


def test_broken_files_are_skipped_and_reported(gray_png_folder):
    (gray_png_folder / "broken.png").write_bytes(b"\x89PNG not really")
    ds = ImageDataset(gray_png_folder, resolution=8)
    assert len(ds) == 6 and len(ds.skipped) == 1


def test_augmented_batches_are_seeded_and_in_range(gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=16)
    a = ds.sample_batch(8, torch.Generator().manual_seed(0))
    b = ds.sample_batch(8, torch.Generator().manual_seed(0))
    assert a.shape == (8, 1, 16, 16)
    assert torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1


def test_no_flips_by_default_for_laterality(gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=16, max_shift=0, max_scale=0, max_intensity=0)
    x = ds.sample_batch(16, torch.Generator().manual_seed(0))
    idx = torch.randint(len(ds), (16,), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, ds.images[idx], atol=1e-4, rtol=0)
    desc = ds.describe()
    assert desc["hflip"] is False and desc["n_images"] == 6 and "/" not in desc["name"]


def test_load_frames_reports_the_ct_modality():
    from generators.data import load_frames

    (ct,), modality = load_frames(Path(pydicom.examples.get_path("ct")), "lung")
    assert modality == "CT" and ct.shape == (128, 128) and 0 <= ct.min() and ct.max() <= 1


def test_nifti_volumes_give_their_axial_slices(tmp_path):
    import nibabel as nib

    vol = np.zeros((24, 24, 12), np.int16)
    vol[4:20, 4:20, :9] = 500  # three air slices on top are skipped
    for name in ("IXI001-HH-1_T1.nii.gz", "IXI002-HH-2_T1.nii.gz"):
        nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / name))
    ds = ImageDataset(tmp_path, resolution=16, modality="MR", augment=False)
    assert len(ds) == 18 and ds.modality == "MR" and ds.images.shape == (18, 1, 16, 16)
    assert float(ds.images.max()) == pytest.approx(1.0)


def test_pgm_mammograms_are_read(tmp_path):
    import cv2

    for i in (1, 2):
        cv2.imwrite(str(tmp_path / f"mdb00{i}.pgm"), np.full((40, 30), 60 * i, np.uint8))
    ds = ImageDataset(tmp_path, resolution=16, augment=False)
    assert len(ds) == 2 and ds.channels == 1
    assert float(ds.images[1].mean()) == pytest.approx(120 / 255, abs=1e-3)
