"""generators.tamper: local edits stay inside their mask; DICOM and PNG outputs keep or relabel what they should;
the in-painter trains without held-out files and its weights are written whole."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pydicom.examples
import pytest

from forensics import provenance as P
from forensics.body import body_mask
from forensics.io import load
from forensics.watermark import detect
from generators import tamper as T
from generators.provenance import read_png_text


def _ct_like(size: int = 160, seed: int = 0) -> np.ndarray:
    """A body ellipse at soft-tissue grey with two dark 'lungs', plus noise; float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.5) / 0.33) ** 2 < 1
    left = ((xx - 0.33) / 0.12) ** 2 + ((yy - 0.5) / 0.2) ** 2 < 1
    lungs = left | (((xx - 0.67) / 0.12) ** 2 + ((yy - 0.5) / 0.2) ** 2 < 1)
    img = np.where(body, 0.55, 0.0) - np.where(lungs, 0.5, 0.0)
    img = img + body * rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def ct_dicom(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("dcm") / "ct.dcm"
    pydicom.examples.ct.save_as(p)
    return p


@pytest.mark.parametrize("mode", ["inject", "remove"])
def test_edits_only_change_pixels_inside_the_mask(mode):
    img = _ct_like()
    edit = T.inject if mode == "inject" else T.remove
    out, mask = edit(img, at=(53, 80), radius=6, seed=3, modality="ct")
    assert out.shape == img.shape and out.dtype == np.float32 and mask.dtype == bool
    assert np.array_equal(out[~mask], img[~mask])
    assert np.abs(out - img)[mask].max() > 0.01
    ys, xs = np.nonzero(mask)
    # the mask is a lesion-sized region around the target, not the image
    assert abs(xs.mean() - 53) < 3 and abs(ys.mean() - 80) < 3
    assert mask.sum() < 12 * np.pi * 6**2


def test_inject_adds_a_dense_lesion_in_the_lung():
    img = _ct_like()
    out, mask = T.inject(img, at=(53, 80), radius=6, seed=1, modality="ct")
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    core = (xx - 53) ** 2 + (yy - 80) ** 2 <= 9
    assert out[core].mean() > img[core].mean() + 0.3  # lung (~0.05) -> near soft tissue (~0.55)


def test_remove_fills_a_lesion_with_surrounding_tissue():
    img = _ct_like()
    with_lesion, _ = T.inject(img, at=(53, 80), radius=6, seed=1, modality="ct")
    out, mask = T.remove(with_lesion, at=(53, 80), radius=6, seed=2, modality="ct")
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    core = (xx - 53) ** 2 + (yy - 80) ** 2 <= 9
    assert abs(out[core].mean() - img[core].mean()) < 0.12
    assert out[core].std() > 0.005  # not a flat patch: texture was put back


def test_same_seed_same_result():
    img = _ct_like()
    a, _ = T.inject(img, at=(53, 80), radius=6, seed=7, modality="ct")
    b, _ = T.inject(img, at=(53, 80), radius=6, seed=7, modality="ct")
    assert np.array_equal(a, b)


def test_rejects_positions_outside_and_bad_modes():
    img = _ct_like()
    with pytest.raises(ValueError):
        T.inject(img, at=(500, 5))
    with pytest.raises(ValueError):
        T.tamper_array(img, "swap", (10, 10), 4)


def test_unstamped_dicom_keeps_the_original_identity(ct_dicom, tmp_path):
    src = pydicom.dcmread(ct_dicom)
    info = T.tamper_file(ct_dicom, tmp_path / "out.dcm", "inject", at=(60, 70), radius=6, stamp=False, seed=0)
    out = pydicom.dcmread(tmp_path / "out.dcm")
    for tag in (
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "RescaleIntercept",
        "RescaleSlope",
        "ImageType",
    ):
        assert out.get(tag) == src.get(tag), tag
    assert info["stamped"] is False and info["format"] == "dicom"
    changed = out.pixel_array.astype(int) != src.pixel_array.astype(int)
    assert changed.any()
    x0, y0, x1, y1 = info["bbox"]
    assert not changed[:y0].any() and not changed[y1:].any() and not changed[:, :x0].any() and not changed[:, x1:].any()
    creators = [out[P.DICOM_PRIVATE_GROUP, e].value for e in range(0x10, 0x100) if (P.DICOM_PRIVATE_GROUP, e) in out]
    assert P.DICOM_PRIVATE_CREATOR not in creators


def test_stamped_dicom_is_labelled_and_watermarked(ct_dicom, tmp_path):
    src = pydicom.dcmread(ct_dicom)
    T.tamper_file(ct_dicom, tmp_path / "out.dcm", "remove", at=(60, 70), radius=6, seed=0)
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert list(out.ImageType) == ["DERIVED", "SECONDARY"]
    assert out.SOPInstanceUID != src.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.StudyInstanceUID == src.StudyInstanceUID  # same study: the fraud case, labelled
    block = out.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    assert block[P.DICOM_ELEMENTS["kind"]].value == "tampered"
    assert block[P.DICOM_ELEMENTS["generator"]].value == T.GENERATOR_NAME
    assert detect(load(tmp_path / "out.dcm").pixels).present


def test_stamped_png_has_watermark_and_composite_label(tmp_path):
    src = tmp_path / "ct.png"
    cv2.imwrite(str(src), (_ct_like(192) * 255).astype(np.uint8))
    info = T.tamper_file(src, tmp_path / "out.png", "inject", at=(63, 96), seed=0)
    assert info["stamped"] and info["format"] == "png"
    assert detect(load(tmp_path / "out.png").pixels).present
    text = read_png_text(tmp_path / "out.png")
    assert P.COMPOSITE_SOURCE_TYPE in text[P.XMP_KEYWORD]
    assert json.loads(text[P.PNG_KEYWORD])["kind"] == "tampered"


def test_unstamped_png_carries_no_labels_and_no_mark(tmp_path):
    src = tmp_path / "ct.png"
    cv2.imwrite(str(src), (_ct_like(192) * 255).astype(np.uint8))
    T.tamper_file(src, tmp_path / "out.png", "remove", at=(63, 96), stamp=False, seed=0)
    assert read_png_text(tmp_path / "out.png") == {}
    assert not detect(load(tmp_path / "out.png").pixels).present
    before, after = cv2.imread(str(src), 0), cv2.imread(str(tmp_path / "out.png"), 0)
    assert (before != after).sum() > 0


def test_dicom_output_needs_dicom_input(tmp_path):
    src = tmp_path / "ct.png"
    cv2.imwrite(str(src), (_ct_like() * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="DICOM"):
        T.tamper_file(src, tmp_path / "out.dcm", "inject", at=(53, 80))


def test_random_body_point_is_inside_the_body():
    img = _ct_like()
    body = body_mask(img)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = T.random_body_point(img, 5, rng)
        assert body[y, x]


def test_inpainter_weights_are_small_and_load():
    if not (T.DEFAULT_WEIGHTS_DIR / "weights.safetensors").is_file():
        pytest.skip("bundled tamper_inpaint weights not trained yet")
    assert sum(p.stat().st_size for p in T.DEFAULT_WEIGHTS_DIR.iterdir()) < 3 * 2**20
    assert T.load_inpainter() is not None


def _data_dir(root: Path) -> Path:
    """ct_lung_tcia/ with four 96 px CT-like slices, one of them named ``held_*``."""
    d = root / "ct_lung_tcia"
    d.mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "c.png", "held_d.png"]):
        cv2.imwrite(str(d / name), (_ct_like(96, seed=i) * 255).astype(np.uint8))
    return root


def _held(name: str) -> bool:
    return name.startswith("held_")


def test_train_inpainter_skips_held_out_files_and_writes_loadable_weights(tmp_path):
    out = tmp_path / "w"
    cfg = T.train_inpainter(_data_dir(tmp_path / "data"), out, holdout=_held, time_budget_s=None, max_steps=2,
                            batch_size=4, width=4, threads=1)
    assert cfg["n_images"] == 3 and cfg["steps"] == 2
    assert "_held: 1 files excluded" in cfg["holdout"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "weights.safetensors"]  # no temp files left
    assert json.loads((out / "config.json").read_text()) == cfg
    first = T.load_inpainter(out)
    assert first is not None
    # training again into the same folder replaces the cached network
    T.train_inpainter(tmp_path / "data", out, time_budget_s=None, max_steps=1, batch_size=4, width=4, threads=1,
                      seed=1)
    assert T.load_inpainter(out) is not first


def test_train_inpainter_without_images_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="ct_lung_tcia"):
        T.train_inpainter(tmp_path, tmp_path / "w", max_steps=1)


def test_cli_train_inpainter_needs_data_and_skips_benchmark_files(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import main

    monkeypatch.delenv("MEDAUDIT_DATA", raising=False)
    out = tmp_path / "w"
    missing = CliRunner().invoke(main, ["train", "inpainter", "--out", str(out)])
    assert missing.exit_code == 2 and "--data" in missing.output
    data = _data_dir(tmp_path / "data")
    result = CliRunner().invoke(
        main, ["train", "inpainter", "--data", str(data), "--out", str(out), "--time-budget", "1", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "benchmarks.datasets.is_holdout" in json.loads(result.output)["holdout"]
    assert T.load_inpainter(out) is not None
