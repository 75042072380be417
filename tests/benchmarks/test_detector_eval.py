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


def test_lofo_rows_reach_the_store_and_the_leaderboard(tmp_path):
    from benchmarks.detector_eval import record_rows
    from benchmarks.evaluations import Recorder
    from benchmarks.leaderboard import collect, render_protocols_md
    from benchmarks.store import ResultStore

    fold = {"trained_on": ["cxr_gan", "cxr_vae"], "cnn_steps": 3, "auc_risk": 0.97, "auc_frequency": 0.9,
            "auc_cnn": 0.95, "caught_high_risk": 0.81, "caught_high_frequency": 0.5, "caught_high_cnn": 0.7,
            "fpr_high_risk": 0.01}
    with ResultStore(tmp_path / "r.sqlite") as store:
        run_id = store.start_run(profile="", command="c", machine="m", dataset_hash="", evaluation="detectors")
        record_rows(Recorder(store, run_id, "detectors"), {"lofo": {"cxr_ddpm": fold}})
        store.finish_run(run_id, wall_s=1, cpu_s=1)
        rows = {(r["detector"], r["subset"], r["metric"]): r for r in store.results(run_id)}
        data = collect(store, run_id)
    assert rows[("suite.retrained", "cxr_ddpm", "tpr@thr")]["value"] == 0.81
    assert rows[("suite.retrained", "cxr_ddpm", "fpr@thr")]["value"] == 0.01
    assert rows[("suite.retrained", "cxr_ddpm", "auc")]["protocol"] == "leave_one_generator_out"
    md = render_protocols_md(data)
    assert "cxr_ddpm" in md and "0.970" in md and "suite.retrained" in md


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
