"""The modality gate: images without a DICOM modality are scored by the pixel detectors only when their pixels look
like a modality those learned (chest X-ray, CT, dermoscopy)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from forensics.modality import CODES, UNKNOWN, ModalityModel, estimate_for, estimate_modality, features, load_model
from forensics.records import MedicalImage

# real images: $MEDAUDIT_DATA, else ../shared/data next to the checkout (or next to its worktree folder)
_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MEDAUDIT_DATA") or next(
    (p / "shared" / "data" for p in (_ROOT.parent, _ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
    _ROOT.parent / "shared" / "data"))


def _brain_slice() -> np.ndarray:
    """A real brain MRI slice that ships with nibabel (example4d.nii.gz: an fMRI volume), as the loader shows it."""
    import nibabel

    from forensics.io import load

    return load(Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz").pixels


def _fundus_like(size: int = 256) -> np.ndarray:
    """An orange disc on black with a bright optic disc: what a fundus photograph looks like at thumbnail scale."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2) / (0.43 * size)
    disc = (r < 1).astype(np.float32)
    img = np.stack([disc * (0.85 - 0.3 * r), disc * (0.4 - 0.15 * r), disc * 0.05], axis=2).astype(np.float32)
    img[np.hypot(yy - size / 2, xx - 0.7 * size) < 0.07 * size] = (1.0, 0.9, 0.5)
    return np.clip(img, 0, 1)


def _chest_xray_like() -> np.ndarray:
    """A chest X-ray from the bundled DCGAN (it ships with the project)."""
    from generators import load_generator

    return np.asarray(load_generator("cxr_gan", device="cpu").sample(1, seed=0)[0], dtype=np.float32).squeeze()


def _png(path: Path, pixels: np.ndarray) -> Path:
    u8 = np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), u8[..., ::-1] if u8.ndim == 3 else u8)
    return path


def test_bundled_model_is_plain_json_and_names_known_images():
    params = json.loads((Path(__file__).resolve().parents[2] / "forensics/weights/modality/model.json").read_text())
    assert params["codes"] == list(CODES) and params["format_version"] == 1
    assert estimate_modality(_brain_slice())[0] == "MR"
    assert estimate_modality(_fundus_like())[0] == UNKNOWN
    assert estimate_modality(_chest_xray_like())[0] == "DX"


@pytest.mark.parametrize("pixels", [np.zeros((1, 1), np.float32), np.ones((3, 2, 3), np.float32),
                                    np.full((40, 50), np.nan, np.float32), np.zeros((9, 9, 1), np.float32)])
def test_degenerate_images_get_a_finite_estimate(pixels):
    assert np.isfinite(features(pixels)).all()
    code, confidence = estimate_modality(pixels)
    assert code in (*CODES, UNKNOWN) and 0.0 <= confidence <= 1.0


def test_estimate_is_computed_once_and_only_without_a_header_modality(monkeypatch):
    image = MedicalImage(pixels=_brain_slice(), path="x.png", sha256="0", format="png")
    first = estimate_for(image)
    assert image.metadata["modality_estimate"] is first
    monkeypatch.setattr("forensics.modality.features", lambda _: pytest.fail("estimated twice"))
    assert estimate_for(image) is first
    dicom = MedicalImage(pixels=_brain_slice(), path="x.dcm", sha256="0", format="dicom", modality="CT")
    assert estimate_for(dicom) is None and "modality_estimate" not in dicom.metadata


def test_far_from_every_class_is_unknown_even_with_a_confident_classifier():
    model = load_model()
    params = dict(model.params, max_distance=1e-9)  # everything is "far"
    assert ModalityModel(params).predict(features(_chest_xray_like()))[0]["code"] == UNKNOWN


def test_scan_gates_a_fundus_png_but_scores_mri_and_a_chest_xray(tmp_path):
    paths = {"mri": _png(tmp_path / "mri.png", _brain_slice()), "fundus": _png(tmp_path / "fundus.png", _fundus_like()),
             "cxr": _png(tmp_path / "cxr.png", _chest_xray_like())}
    out = CliRunner().invoke(main, ["scan", "-q", "--analyzers", "cnn,frequency,metadata", str(tmp_path)])
    assert out.exit_code == 0, out.output
    records = {Path(r["path"]).stem: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(records) == set(paths)
    fundus = records["fundus"]
    assert fundus["modality"] is None and fundus["modality_estimate"]["code"] == UNKNOWN
    pixel = {f["analyzer"]: f for f in fundus["findings"] if f["analyzer"] in ("cnn", "frequency")}
    assert set(pixel) == {"cnn", "frequency"}
    for f in pixel.values():
        assert f["score"] is None
        assert f["evidence"][0]["code"].endswith(".out_of_domain")
        assert "estimate" in f["evidence"][0]["message"] and "confidence" in f["evidence"][0]["message"]
    for name, code in (("cxr", "DX"), ("mri", "MR")):  # brain MRI: the detectors were trained on it too
        assert records[name]["modality_estimate"]["code"] == code
        assert all(f["score"] is not None for f in records[name]["findings"] if f["analyzer"] in ("cnn", "frequency"))

    ungated = CliRunner().invoke(main, ["scan", "-q", "--analyzers", "cnn", "--no-modality-gate", str(paths["fundus"])])
    rec = json.loads(ungated.stdout)
    assert rec["findings"][0]["score"] is not None and rec["modality_estimate"] is None


def test_dicom_keeps_its_header_modality(tmp_path):
    import pydicom.examples

    out = CliRunner().invoke(main, ["scan", "-q", "--analyzers", "frequency",
                                    str(pydicom.examples.get_path("rgb_color"))])
    rec = json.loads(out.stdout)
    assert rec["modality"] == "US" and rec["modality_estimate"] is None
    assert "not trained on modality US (only" in rec["findings"][0]["evidence"][0]["message"]


def _tiny_data(root: Path) -> Path:
    """Eight images per class in the layout `train modality` reads, made here (structure, not realism)."""
    import nibabel

    rng = np.random.default_rng(0)
    for sub in ("cxr_kermany", "ct_lung_tcia", "derm_isic", "mri_brain", "mammo"):
        (root / sub).mkdir(parents=True)
    for i in range(8):
        base = cv2.GaussianBlur(rng.random((96, 80)).astype(np.float32), (0, 0), 4)
        base = (base - base.min()) / np.ptp(base)
        cv2.imwrite(str(root / "cxr_kermany" / f"person{i}_virus_{i}.jpeg"), (base * 200 + 40).astype(np.uint8))
        ct = np.zeros((96, 96), np.uint8)
        cv2.ellipse(ct, (48, 48), (40, 28), 0, 0, 360, int(90 + 10 * i), -1)
        cv2.imwrite(str(root / "ct_lung_tcia" / f"ChestCT_{i}.png"), ct)
        skin = np.dstack([base * 0.3 + 0.6, base * 0.3 + 0.4, base * 0.2 + 0.3])
        cv2.imwrite(str(root / "derm_isic" / f"ISIC_{i}.jpg"), (skin[..., ::-1] * 255).astype(np.uint8))
        vol = (rng.random((24, 24, 10)) * 100 * (np.arange(10) + 1)).astype(np.int16)
        nii = nibabel.Nifti1Image(vol, np.eye(4)).to_bytes()
        (root / "mri_brain" / f"IXI{i:03d}-HH-1_T1.nii.gz").write_bytes(gzip.compress(nii))
        mg = np.zeros((64, 64), np.uint8)
        mg[:, : 20 + i] = 180
        cv2.imwrite(str(root / "mammo" / f"mdb{i:03d}.pgm"), mg)
    return root


def test_train_modality_command_writes_a_model_the_gate_can_use(tmp_path):
    data = _tiny_data(tmp_path / "data")
    out = tmp_path / "gate"
    result = CliRunner().invoke(main, ["train", "modality", "-q", "--data", str(data), "--out", str(out),
                                       "--measure", str(data / "ct_lung_tcia")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["holdout"]) | set(report["train"]) == set(CODES)
    assert report["measured"]["ct_lung_tcia/*"]["n"] == 8
    model = ModalityModel.load(out / "model.json")
    assert np.isfinite(model.max_distance) and np.isfinite(model.max_excess)
    assert model.predict(features(np.zeros((32, 32), np.float32)))[0]["code"] in (*CODES, UNKNOWN)

    for p in (data / "mammo").glob("*.pgm"):
        p.unlink()
    missing = CliRunner().invoke(main, ["train", "modality", "-q", "--data", str(data), "--out", str(out)])
    assert missing.exit_code == 2 and "MG" in missing.output


@pytest.mark.skipif(not (SHARED / "cxr_kermany").is_dir(), reason="needs ../shared/data (real images), absent here")
def test_real_covered_images_are_accepted():
    from forensics.io import load

    for folder, pattern, code in (("cxr_kermany", "*.jpeg", "DX"), ("ct_lung_tcia", "*.png", "CT"),
                                  ("derm_isic", "*.jpg", "XC")):
        for path in sorted((SHARED / folder).glob(pattern))[:5]:
            assert estimate_modality(load(path).pixels)[0] == code, path
