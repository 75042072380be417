"""The cnn analyzer and end-to-end training: heatmap shape/range, safetensors checkpoints, availability."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _detector_data import textured, toy_sets

from forensics.analyzers import create_analyzer, list_analyzers
from forensics.analyzers.cnn import DEFAULT_WEIGHTS_DIR, CNNAnalyzer
from forensics.analyzers.frequency import FrequencyAnalyzer
from forensics.records import Finding, MedicalImage

TINY_CNN = {
    "arch": "resnet10t",
    "model_kwargs": {"in_chans": 1, "num_classes": 1, "channels": [4, 8, 8, 8], "stem_width": 4},
    "patch": 32, "size": 64, "grid": 2, "aggregate": "mean", "norm_mean": 0.5, "norm_std": 0.25,
}


def _image(pixels: np.ndarray) -> MedicalImage:
    return MedicalImage(pixels=pixels, path="x.png", sha256="0", format="png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny end-to-end train_detectors run on toy data (a few seconds)."""
    import torch

    from forensics.training import train_detectors

    torch.set_num_threads(1)
    real, fake = toy_sets(14)
    out = tmp_path_factory.mktemp("weights")
    report = train_detectors(real, fake, out_dir=out, native_sizes=(24,), real_variants=2, fake_variants=2,
                             val_fraction=0.3, cnn_config=TINY_CNN, cnn_max_steps=40, cnn_batch_size=16, seed=0)
    return out, report


def test_train_detectors_writes_everything(trained):
    out, report = trained
    for rel in ("frequency/model.json", "frequency/calibration.json", "cnn/weights.safetensors", "cnn/config.json",
                "cnn/calibration.json", "fusion.json", "MODEL_CARD.md", "training_report.json"):
        assert (out / rel).is_file(), rel
    assert report["analyzers"]["frequency"]["val_auc"] >= 0.9
    assert report["data"]["val_variants"] > 0 and report["data"]["train_variants"] > 0
    assert "Validation" in (out / "MODEL_CARD.md").read_text()
    assert set(json.loads((out / "fusion.json").read_text())["pixel_weights"]) == {"cnn", "frequency"}


def test_split_is_by_source():
    from forensics.training import source_split

    assert source_split("a.png", val_fraction=0.5) == source_split("a.png", val_fraction=0.5)
    sides = {source_split(f"img{i}", val_fraction=0.3, test_fraction=0.2) for i in range(200)}
    assert sides == {"train", "val", "test"}


def test_cnn_finding_and_heatmap(trained):
    out, _ = trained
    analyzer = CNNAnalyzer(weights_dir=out)
    assert analyzer.availability() == (True, "")
    f = analyzer.analyze(_image(textured(np.random.default_rng(5), 120)))
    assert isinstance(f, Finding) and f.analyzer == "cnn" and 0.0 <= f.score <= 1.0
    assert f.heatmap.shape == (2, 2) and f.heatmap.dtype == np.float32
    assert 0.0 <= f.heatmap.min() and f.heatmap.max() <= 1.0
    assert f.evidence[0].code == "cnn.score"


def test_user_weights_dir_for_frequency(trained):
    out, _ = trained
    real, fake = toy_sets(4, seed=9)
    analyzer = FrequencyAnalyzer(weights_dir=out)
    s_real = [analyzer.analyze(_image(x)).score for x in real]
    s_fake = [analyzer.analyze(_image(x)).score for x in fake]
    assert np.mean(s_fake) > np.mean(s_real)


def test_checkpoint_is_safetensors_only(trained):
    from safetensors.torch import load_file

    out, _ = trained
    tensors = load_file(str(out / "cnn" / "weights.safetensors"))
    assert tensors and all(t.dtype.is_floating_point is False or str(t.dtype) == "torch.float16"
                           for t in tensors.values() if t.is_floating_point())


def test_registered_and_missing_weights(tmp_path):
    assert "cnn" in list_analyzers()
    assert isinstance(create_analyzer("cnn", weights_dir=tmp_path), CNNAnalyzer)
    ok, why = CNNAnalyzer(weights_dir=tmp_path).availability()
    assert not ok and "weights.safetensors" in why


@pytest.mark.skipif(not (DEFAULT_WEIGHTS_DIR / "cnn" / "weights.safetensors").is_file(), reason="no bundled weights")
def test_bundled_cnn():
    analyzer = CNNAnalyzer()
    assert analyzer.availability() == (True, "")
    f = analyzer.analyze(_image(np.random.default_rng(0).random((300, 260)).astype(np.float32)))
    assert f.heatmap.shape == (4, 4) and 0.0 <= f.score <= 1.0


def test_blank_image_has_no_score(trained):
    out, _ = trained
    f = CNNAnalyzer(weights_dir=out).analyze(_image(np.full((80, 80), 0.3, np.float32)))
    assert f.score is None and f.heatmap is None and f.evidence[0].code == "cnn.not_applicable"
