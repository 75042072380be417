"""Detector benchmark helpers: source grouping, the held-out split, the training entry point, the Markdown table."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from benchmarks.datafiles import is_heldout, source_group
from benchmarks.detector_eval import _metrics, render
from benchmarks.train_detector import train_detector_cli


def test_source_group_keeps_patients_together():
    assert source_group("x/cxr/person12_virus_3.jpeg") == source_group("x/cxr/person12_bacteria_9.jpeg")
    assert source_group("x/ct/ChestCT_1001.png") == source_group("x/ct/ChestCT_1010.png")
    assert is_heldout("d/cxr/person12_virus_3.jpeg") == is_heldout("d/cxr/person12_bacteria_9.jpeg")


def test_metrics_and_render():
    y = np.array([0, 0, 1, 1])
    m = _metrics(y, np.array([0.1, 0.2, 0.95, 0.8]), high=0.9)
    assert m["auc"] == 1.0 and m["fpr_high"] == 0.0 and m["tpr_high"] == 0.5
    res = {"fusion": {"high": 0.9, "medium": 0.5, "pixel_weights": {"cnn": 0.5}, "pixel_bias": 0.0},
           "modalities": {"cxr": {"n_real": 2, "n_fake": 2, "auc_risk": 1.0, "auc_frequency": 1.0, "auc_cnn": 0.9,
                                  "ece_risk": 0.01, "fpr_high_risk": 0.0, "tpr_high_risk": 0.5,
                                  "auc_risk_jpeg70": 0.9, "auc_risk_resize0.5": 0.8, "auc_cxr_gan": 1.0,
                                  "controls_high": {"jpeg50": 0.25}}},
           "pooled": {"risk": m}, "controls_high": {"jpeg50": 0.0}, "controls_medium": {"jpeg50": 0.1},
           "dicom": {"ct.dcm": "low (0.10)"}}
    md = render(res)
    assert "| cxr | 2 / 2 |" in md and "ct.dcm: low" in md
    assert "| control | high | medium | high, cxr |" in md and "| jpeg50 | 0.000 | 0.100 | 0.250 |" in md


def test_train_detector_cli_from_folders(tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # relative paths: the split by file name is then the same on every run
    rng = np.random.default_rng(0)
    for d in ("real", "fake_a", "fake_b"):
        (tmp_path / d).mkdir()
    for i in range(12):
        base = cv2.resize(rng.random((6, 6)).astype(np.float32), (96, 96), interpolation=cv2.INTER_CUBIC)
        real = np.clip(base + (rng.random((96, 96)) < 0.03) * 0.4, 0, 1)
        cv2.imwrite(str(tmp_path / "real" / f"r{i}.png"), (real * 255).astype(np.uint8))
        cv2.imwrite(str(tmp_path / f"fake_{'ab'[i % 2]}" / f"f{i}.png"), (base * 255).astype(np.uint8))
    tiny = {"arch": "resnet10t", "model_kwargs": {"in_chans": 1, "num_classes": 1, "channels": [4, 8, 8, 8],
                                                  "stem_width": 4},
            "patch": 32, "size": 64, "grid": 2, "aggregate": "mean", "norm_mean": 0.5, "norm_std": 0.25}
    report = train_detector_cli([Path("real")], [Path("fake_a"), Path("fake_b")], [], tmp_path / "out",
                                progress=False, real_variants=1, fake_variants=1, val_fraction=0.4, cnn_config=tiny,
                                cnn_max_steps=5, cnn_batch_size=8)
    assert (tmp_path / "out" / "cnn" / "weights.safetensors").is_file()
    assert report["data"]["real_sources"] == 12
    assert report["calibration"]["held_out_families"] == ["fake_a", "fake_b"]  # each fake folder is a family


def test_calibration_holds_out_the_families_of_modalities_that_have_several():
    from benchmarks.train_detector import bundled_generator_names, calibration_families

    assert calibration_families(bundled_generator_names()) == {"cxr_ddpm": "ddpm", "cxr_gan": "gan", "cxr_vae": "vae"}


def _entry(n_real: int, gens: list[str], n_fake: int, seed: int, value: float) -> dict:
    """A ``bundled_sets`` entry of constant images: reals ``value``, each generator's fakes a level of its own."""
    fake_kinds = [g for g in gens for _ in range(n_fake)]
    return {"real": [np.full((20, 24), value, np.float32) for _ in range(n_real)],
            "real_groups": [f"cxr_kermany/person{i // 2}" for i in range(n_real)],
            "fake": [np.full((8, 8), 0.1 + 0.2 * gens.index(k), np.float32) for k in fake_kinds],
            "fake_groups": [f"{g}/seed{seed}/{i}" for g in gens for i in range(n_fake)],
            "fake_kinds": fake_kinds, "natives": {32, 64}, "generators": gens}


def test_lofo_set_holds_training_sources_and_the_formatted_test_images_of_every_fold(monkeypatch):
    from benchmarks import detector_eval
    from benchmarks.protocols import tasks

    gens = ["cxr_ddpm", "cxr_gan", "cxr_vae"]
    calls = []

    def fake_sets(data, *, heldout, seed, modalities, fake_ratio, progress):
        calls.append((heldout, seed, fake_ratio))
        return {"cxr_kermany": _entry(3 if heldout else 4, gens, 2 if heldout else 1, seed, 0.5 if heldout else 0.7)}

    monkeypatch.setattr(detector_eval, "bundled_sets", fake_sets)
    ds, natives = detector_eval.lofo_set(Path("data"), seed=1, progress=False)
    assert calls == [(False, 1, 2.0), (True, 100_001, 2.0)] and natives == [32, 64]
    folds, _ = tasks(ds, ["leave_one_generator_out"])
    assert [t.subset for t in folds] == gens
    gan = folds[1]
    assert {it.generator for it in gan.train} == {None, "cxr_ddpm", "cxr_vae"} and len(gan.train) == 4 + 2
    assert {it.group for it in gan.train if it.label == 0} == {"cxr_kermany/person0", "cxr_kermany/person1"}
    assert [it.generator for it in gan.test] == [None] * 3 + ["cxr_gan"] * 2
    # each test image takes the format-path draw it took when a fold listed reals, then the unseen fakes
    entry = _entry(3, gens, 2, 100_001, 0.5)
    want = detector_eval._formatted(entry["real"] + entry["fake"][2:4], seed=1007)
    got, _ = ds.arrays(gan.test)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_lofo_runs_the_protocol_and_its_rows_reach_the_store_and_the_docs(tmp_path, monkeypatch):
    from benchmarks import detector_eval, detectors
    from benchmarks.detectors import BaseDetector
    from benchmarks.evaluations import Recorder
    from benchmarks.leaderboard import collect, render_protocols_md
    from benchmarks.store import ResultStore

    made = []

    class Retrained(BaseDetector):
        """Scores the mean pixel; what the LOFO factory asks of the retrained suite is kept in ``made``."""

        version, threshold, fits_groups = "1", 0.5, True

        def __init__(self, analyzers, **kw):
            made.append((tuple(analyzers), kw))

        def fit(self, images, labels, groups=None, sources=None):
            return self

        def predict_proba(self, images):
            return np.asarray([float(np.mean(x)) for x in images])

        def predict_with_parts(self, images):
            s = self.predict_proba(images)
            return s, {"frequency": s, "cnn": 1 - s}

        def fit_figures(self):
            return {"cnn_steps": 12.0}

    gens = ["cxr_ddpm", "cxr_gan", "cxr_vae"]
    monkeypatch.setattr(detector_eval, "bundled_sets", lambda data, *, heldout, seed, **kw: {
        "cxr_kermany": _entry(6, gens, 4, seed, 0.05 if heldout else 0.7)})
    monkeypatch.setattr(detectors, "RetrainedSuiteDetector", Retrained)
    with ResultStore(tmp_path / "r.sqlite") as store:
        run_id = store.start_run(profile="", command="c", machine="m", dataset_hash="", evaluation="detectors")
        table = detector_eval.lofo(Path("data"), Recorder(store, run_id, "detectors"), budget_s=33, seed=0,
                                   progress=False)
        store.finish_run(run_id, wall_s=1, cpu_s=1)
        rows = {(r["detector"], r["subset"], r["metric"]): r for r in store.results(run_id)}
        data = collect(store, run_id)
    assert made[0] == (("frequency", "cnn"), {"native_sizes": [32, 64], "time_budget_s": 33, "cnn_max_steps": 3000,
                                              "cnn_batch_size": 64, "real_variants": 4, "fake_variants": 1, "seed": 0})
    gan = table["cxr_gan"]  # fakes of gan are 0.3 > reals 0.05 (formatted), so the mean pixel separates them
    assert gan["trained_on"] == ["cxr_ddpm", "cxr_vae"] and gan["cnn_steps"] == 12
    assert gan["auc_risk"] == gan["auc_frequency"] == 1.0 and gan["auc_cnn"] == 0.0
    assert gan["caught_high_risk"] == 0.0 and gan["fpr_high_risk"] == 0.0  # 0.3 < threshold 0.5
    assert rows[("suite.retrained", "cxr_gan", "auc")]["protocol"] == "leave_one_generator_out"
    assert rows[("suite.retrained", "cxr_gan", "auc")]["unseen"] == 1
    assert rows[("suite.retrained.cnn", "cxr_gan", "tpr@thr")]["value"] == gan["caught_high_cnn"]
    assert "suite.retrained" in render_protocols_md(data)
    md = detector_eval.render({"lofo": table})
    assert "| unseen | trained on | cnn steps | AUC fused | AUC frequency | AUC cnn | caught at high (fused) | " in md
    assert "| cxr_gan | cxr_ddpm, cxr_vae | 12 | 1.000 | 1.000 | 0.000 | 0.000 | " in md


def test_train_detector_main_needs_out_and_data(monkeypatch, capsys):
    """No output folder defaults into the package, and --bundled says which data folder is missing."""
    import pytest

    from benchmarks.train_detector import main

    monkeypatch.delenv("MEDAUDIT_DATA", raising=False)
    with pytest.raises(SystemExit):
        main(["--bundled"])
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--bundled", "--out", "somewhere"])
    assert "no data folder: give --data DIR or set MEDAUDIT_DATA" in capsys.readouterr().err


def test_data_files_split_by_holdout(tmp_path):
    from benchmarks.datafiles import data_files
    from benchmarks.datasets import is_holdout

    (tmp_path / "cxr_kermany").mkdir()
    names = [f"x{i}.png" for i in range(30)]
    for n in names:
        (tmp_path / "cxr_kermany" / n).write_bytes(b"")
    (tmp_path / "cxr_kermany" / "notes.txt").write_bytes(b"")
    held, train = data_files(tmp_path, holdout=True), data_files(tmp_path, holdout=False)
    assert sorted(p.name for p in held + train) == sorted(names)
    assert held and all(is_holdout(p.name) for p in held) and not any(is_holdout(p.name) for p in train)


def test_detectors_train_against_the_pixel_generator_families_only():
    from benchmarks.train_detector import MODALITY_PREFIX, folder_generators, folder_natives

    for folder in MODALITY_PREFIX:
        # latent diffusion (cxr_ldm ...) is the unseen family of issue 13: never a training fake, never a native size
        assert folder_generators(folder) and not any(g.endswith("_ldm") for g in folder_generators(folder))
        assert 256 not in folder_natives(folder)
    assert folder_generators("cxr_kermany") == ["cxr_ddpm", "cxr_gan", "cxr_vae"]
