"""The residual analyzer: deterministic features, a one-class model fitted on real-like images only that flags a
smooth Gaussian-textured image and abstains on a real-like one, JSON round trip, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from forensics.analyzers import create_analyzer
from forensics.analyzers.residual import FEATURE_NAMES, ResidualAnalyzer, extract_features
from forensics.analyzers.residual.model import RealModel, score_from_tail
from forensics.analyzers.residual.train import fit_residual
from forensics.records import MedicalImage


def _smooth(rng: np.random.Generator, size: int) -> np.ndarray:
    base = cv2.resize(rng.random((6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return 0.25 + 0.5 * (base - base.min()) / (np.ptp(base) + 1e-6)


def real_like(seed: int, size: int = 256) -> np.ndarray:
    """Smooth anatomy, sharp-edged structures and heavy-tailed grain (what the probe saw in real X-rays)."""
    rng = np.random.default_rng(seed)
    x = _smooth(rng, size)
    for _ in range(6):  # sharp edges: ribs, markers
        y0, x0 = rng.integers(0, size - 40, 2)
        x[y0 : y0 + rng.integers(4, 40), x0 : x0 + rng.integers(4, 40)] += rng.uniform(-0.15, 0.15)
    x += 0.01 * rng.standard_t(2.5, x.shape)  # heavy-tailed detail
    return np.clip(x, 0, 1).astype(np.float32)


def gaussian_textured(seed: int, size: int = 256) -> np.ndarray:
    """The same kind of anatomy, but smooth with near-Gaussian fine texture (what generators tend to give)."""
    rng = np.random.default_rng(seed)
    x = _smooth(rng, size) + rng.normal(0, 0.02, (size, size))
    return np.clip(cv2.GaussianBlur(x.astype(np.float32), (0, 0), 0.8), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    groups = {"test X-ray": {"fit": [real_like(i) for i in range(32)],
                             "calibration": [real_like(100 + i) for i in range(24)], "modalities": ["DX"]}}
    model = fit_residual(groups, draws=1, calibration_draws=1, seed=1)  # 56 draws of the format path: seed-sensitive
    weights = tmp_path_factory.mktemp("residual_weights")
    model.save_json(weights / "residual" / "model.json")
    return weights


def test_features_are_deterministic_and_finite():
    x = real_like(7)
    a, b = extract_features(x), extract_features(x.copy())
    assert a.shape == (len(FEATURE_NAMES),) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    kurt = FEATURE_NAMES.index("s0_log_kurt")
    assert a[kurt] > extract_features(gaussian_textured(7))[kurt]  # heavy tails show in the kurtosis
    with pytest.raises(ValueError):
        extract_features(np.zeros((100, 100), np.float32))


def test_heavy_tailed_real_like_image_scores_below_smooth_gaussian_one(tiny_weights):
    analyzer = ResidualAnalyzer(tiny_weights)
    real = analyzer.assess_pixels(real_like(999))
    fake = analyzer.assess_pixels(gaussian_textured(999))
    assert real["score"] < fake["score"]
    assert real["tail"] > 0.01 and fake["tail"] < 1e-3
    # the finding: abstains on the typical image (never lowers risk), raises it for the atypical one
    f_real = analyzer.analyze(MedicalImage(pixels=real_like(999), path="<real>", sha256="r", format="png"))
    f_fake = analyzer.analyze(MedicalImage(pixels=gaussian_textured(999), path="<fake>", sha256="f", format="png"))
    assert f_real.score is None and f_real.evidence[0].code == "residual.typical"
    assert 0.5 <= f_fake.score < 0.9 and f_fake.evidence[0].code == "residual.atypical"
    assert f_fake.kind == "realness" and f_fake.data["group"] == "test X-ray"


def test_model_json_round_trip_and_version_guard(tiny_weights):
    path = tiny_weights / "residual" / "model.json"
    model = RealModel.load_json(path)
    f = extract_features(gaussian_textured(3))
    assert RealModel.from_dict(json.loads(json.dumps(model.to_dict()))).assess(f)["nll"] == model.assess(f)["nll"]
    stale = model.to_dict() | {"features_version": -1}
    with pytest.raises(ValueError, match="retrain"):
        RealModel.from_dict(stale)
    # calibration: 0.5 exactly at the allowed real tail, monotone, capped under `high`
    s = score_from_tail(np.array([0.5, 0.01, 1e-3, 1e-12]))
    assert s[0] < 0.5 and abs(s[1] - 0.5) < 1e-9 and s[1] < s[2] < s[3] <= 0.89


def test_registered_opt_in_as_realness_evidence():
    from forensics.analyzers import list_analyzers

    assert "residual" in list_analyzers()
    analyzer = create_analyzer("residual")
    # opt-in until resized real images stop looking atypical to it; fusion lets it raise the pixel risk, never lower it
    assert analyzer.default is False and analyzer.kind == "realness"


def test_cli_train_then_scan(tmp_path):
    from cli import main

    data = tmp_path / "data" / "cxr_kermany"
    data.mkdir(parents=True)
    for i in range(40):
        cv2.imwrite(str(data / f"person{i}_bacteria_{i}.png"), np.round(real_like(i) * 255).astype(np.uint8))
    out = tmp_path / "weights"
    res = CliRunner().invoke(main, ["train", "residual", "--data", str(tmp_path / "data"), "--out", str(out),
                                    "--draws", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["groups"]["chest X-ray"]["fit_images"] >= 15
    model = json.loads((out / "residual" / "model.json").read_text())
    assert set(model["groups"]) == {"chest X-ray"} and model["modalities"]["chest X-ray"] == ["CR", "DX"]

    fake = tmp_path / "smooth.png"
    cv2.imwrite(str(fake), np.round(gaussian_textured(5) * 255).astype(np.uint8))
    res = CliRunner().invoke(main, ["scan", "--quiet", "--analyzers", "residual", "--weights", str(out), str(fake)])
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    finding = next(f for f in record["findings"] if f["analyzer"] == "residual")
    assert finding["score"] >= 0.5 and record["level"] in ("medium", "high")


def test_a_grey_image_is_not_compared_with_colour_groups(tiny_weights):
    model = RealModel.load_json(tiny_weights / "residual" / "model.json")
    groups = dict(model.groups) | {"photo": model.groups["test X-ray"]}
    mixed = RealModel(groups, {"test X-ray": ["DX"], "photo": ["XC"]}, colour_groups=["photo"])
    assert mixed.group_names(None, colour=False) == ["test X-ray"]
    assert set(mixed.group_names(None, colour=True)) == {"test X-ray", "photo"}
    assert mixed.group_names("XC", colour=False) == ["photo"]  # a DICOM modality names its group


def test_scanner_dicoms_are_outside_its_calibration():
    import pydicom.examples

    from forensics.io import load

    finding = ResidualAnalyzer().analyze(load(str(pydicom.examples.get_path("ct"))))
    assert finding.score is None and finding.evidence[0].code == "residual.not_applicable"
