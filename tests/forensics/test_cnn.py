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
    grid = json.loads((DEFAULT_WEIGHTS_DIR / "cnn" / "config.json").read_text())["grid"]  # 4 at 128 px, 5 at 256 px
    assert f.heatmap.shape == (grid, grid) and 0.0 <= f.score <= 1.0


def test_blank_image_has_no_score(trained):
    out, _ = trained
    f = CNNAnalyzer(weights_dir=out).analyze(_image(np.full((80, 80), 0.3, np.float32)))
    assert f.score is None and f.heatmap is None and f.evidence[0].code == "cnn.not_applicable"


def _toy_variants(kinds: list[str], n: int = 8):
    """A VariantSet of n reals and n fakes per kind (frequency features only)."""
    from forensics.training import VariantSet, make_variants

    real, _ = toy_sets(n, seed=3)
    rng = np.random.default_rng(0)
    parts = [make_variants(real, 0, n_variants=1, rng=rng, native_sizes=(24,), cnn_size=64)]
    for j, k in enumerate(kinds):
        _, fake = toy_sets(n, seed=10 + j)
        v = make_variants(fake, 1, n_variants=1, rng=rng, kinds=[k] * n, cnn_size=64)
        v.source = v.source + 100 * (j + 1)  # distinct source ids per kind
        parts.append(v)
    return VariantSet.concat(parts)


def test_held_out_families_need_two_families_on_both_sides():
    from forensics.training import held_out_families

    two = _toy_variants(["cxr_gan", "ct_gan", "cxr_vae"], n=2)
    families = {"cxr_gan": "gan", "ct_gan": "gan", "cxr_vae": "vae"}
    assert held_out_families(two, two, families) == ["gan", "vae"]
    assert held_out_families(two, two, {"cxr_gan": "gan", "cxr_vae": "vae"}) == ["gan", "vae"]  # ct_gan stays in
    assert held_out_families(two, two, {}) == []  # nothing named: calibration on the validation split
    assert held_out_families(two, two, {"cxr_gan": "gan", "ct_gan": "gan"}) == []  # one family: nothing to train on
    one = _toy_variants(["cxr_gan"], n=2)
    assert held_out_families(two, one, families) == []  # only gan is in both splits


def test_cross_family_logits_score_each_family_with_models_that_never_saw_it():
    from forensics.training import cross_family_logits

    v = _toy_variants(["a1", "a2", "b1"], n=3)
    families = {"a1": "a", "a2": "a", "b1": "b"}
    seen_in_training = []

    class Recorder:
        def __init__(self, train):
            self.kinds = set(train.kind[train.label == 1].tolist())
            seen_in_training.append(self.kinds)

        def logits(self, part):
            return {"frequency": np.array([float(k in self.kinds) for k in part.kind])}

    logits, scored = cross_family_logits(v, v, families, ["a", "b"], Recorder)
    assert seen_in_training == [{"b1"}, {"a1", "a2"}]
    assert len(scored.label) == 2 * 3 + 9  # the reals once per family, every fake once
    assert (logits["frequency"] == 0).all()  # no image was scored by a model trained on its own family


def test_calibration_is_fitted_across_families_when_there_are_two(tmp_path):
    from forensics.training import fit_and_save, split_by_source

    v = _toy_variants(["cxr_gan", "cxr_vae"], n=10)
    groups = [f"s{i}" for i in range(int(v.source.max()) + 1)]
    train, val = split_by_source(v, groups, val_fraction=0.4, seed=1)
    report = fit_and_save(train, val, out_dir=tmp_path, analyzers=("frequency",),
                          families={"cxr_gan": "gan", "cxr_vae": "vae"})
    assert report["calibration"]["held_out_families"] == ["gan", "vae"]
    fusion = json.loads((tmp_path / "fusion.json").read_text())
    assert {"pixel_weights", "pixel_gain", "pixel_bias", "val", "val_unseen_family"} <= set(fusion)
    assert "val_auc_gan" in fusion["val_unseen_family"]
    cal = json.loads((tmp_path / "frequency" / "calibration.json").read_text())
    assert "without each generator family" in cal["fitted_on"]
    assert "family unseen in training" in (tmp_path / "MODEL_CARD.md").read_text()


def test_fit_cnn_same_seed_same_weights():
    """The seeded loop repeats itself: same seed and thread count, same weights (step budget, no time budget)."""
    import torch

    from forensics.analyzers.cnn.train import fit_cnn

    rng = np.random.default_rng(0)
    images = rng.random((8, 64, 64)).astype(np.float16)
    label = np.r_[np.zeros(4, int), np.ones(4, int)]
    runs = [fit_cnn(images, label, config=TINY_CNN, max_steps=3, batch_size=4, seed=s) for s in (0, 0, 1)]
    sd = [m.state_dict() for m, _, _ in runs]
    assert runs[0][2]["steps"] == 3
    assert all(torch.equal(sd[0][k], sd[1][k]) for k in sd[0])
    assert not all(torch.equal(sd[0][k], sd[2][k]) for k in sd[0])


def test_analyzers_do_not_import_upward():
    """forensics/analyzers/** imports neither the suite's training nor the packages above forensics (DESIGN.md)."""
    import ast
    from pathlib import Path

    import forensics.analyzers

    upward = ("forensics.training", "benchmarks", "generators", "cli")
    bad = []
    for path in Path(forensics.analyzers.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad += [f"{path.name}: {n}" for n in names if any(n == u or n.startswith(u + ".") for u in upward)]
    assert bad == []
