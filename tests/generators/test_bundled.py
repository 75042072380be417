"""The shipped checkpoints in generators/weights/: names, size budget, and each loads and samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from generators import list_bundled, load_generator

BUNDLED = {b["name"]: b for b in list_bundled()}
EXPECTED = {"cxr_gan", "cxr_vae", "cxr_ddpm", "ct_gan", "derm_vae", "mri_gan", "mammo_gan"}
#: latent diffusion at 256 px, and the classes each was trained with
LDM = {"cxr_ldm": ["bacterial", "viral"], "ct_ldm": [], "derm_ldm": ["benign", "malignant"], "mri_ldm": [],
       "mammo_ldm": ["benign", "malignant", "normal"]}


def test_bundled_names():
    assert EXPECTED <= set(BUNDLED), f"missing bundled weights: {sorted(EXPECTED - set(BUNDLED))}"
    assert any(n.startswith("ct_") for n in BUNDLED) and any(n.startswith("derm_") for n in BUNDLED)


def test_every_bundled_weight_file_fits_the_40_mb_budget():
    """Weights ship with the package: generators' and detectors' files together stay within 40 MB."""
    root = Path(__file__).resolve().parents[2]
    files = [f for d in ("generators/weights", "forensics/weights") for f in (root / d).rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    assert total <= 40_000_000, f"bundled weights take {total / 1e6:.1f} MB > 40 MB"


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_config_is_complete(name):
    cfg = json.loads((Path(BUNDLED[name]["path"]) / "config.json").read_text())
    for key in ("family", "resolution", "channels", "modality", "steps", "version", "data", "licence"):
        assert key in cfg, key
    assert cfg["dtype"] == "float16" and cfg["inference_only"] is True
    assert not any(str(v).startswith("/") for v in cfg["data"].values())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_loads_and_samples(name):
    rec = BUNDLED[name]
    gen = load_generator(name, device="cpu")
    x = gen.sample(2, seed=0)
    shape = (2, rec["resolution"], rec["resolution"]) + ((3,) if rec["channels"] == 3 else ())
    assert x.shape == shape and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 0.01


def test_bundled_ldm_weights_fit_their_share():
    ldm = [b for b in BUNDLED.values() if b["family"] == "ldm"]
    weights = sum((Path(b["path"]) / "weights.safetensors").stat().st_size for b in ldm)
    assert weights <= 12 * 10**6, f"bundled latent diffusion weights take {weights / 1e6:.1f} MB > 12 MB"


@pytest.mark.parametrize("name", sorted(LDM))
def test_bundled_ldm_samples_256px_per_class(name):
    if name not in BUNDLED:
        pytest.skip(f"{name} not bundled in this checkout")
    gen = load_generator(name, device="cpu")
    assert gen.classes == LDM[name] and gen.resolution == 256
    gen.num_inference_steps = 2  # the network and the decoder at full size, not the full 50-step chain
    channels = (3,) if BUNDLED[name]["channels"] == 3 else ()
    for label in gen.classes or [None]:
        x = gen.sample(1, seed=0, class_label=label)
        assert x.shape == (1, 256, 256, *channels) and x.std() > 0.01
    with pytest.raises(ValueError, match="unknown class|unconditional"):
        gen.sample(1, class_label="no_such_class")


def test_training_plan_covers_the_bundled_names():
    from generators.train_bundled import LICENCES, PLAN

    assert set(PLAN) == EXPECTED | set(LDM)
    assert all(folder in LICENCES for _, folder, *_ in PLAN.values())


def test_card_table_lists_each_bundled_model():
    from generators.api import WEIGHTS_DIR
    from generators.train_bundled import card_table

    table = card_table(WEIGHTS_DIR)
    for name in BUNDLED:
        assert f"`{name}`" in table


def test_train_bundled_needs_data_and_dest(monkeypatch, capsys, tmp_path):
    """Training names what is missing and never exports into the installed package by default."""
    from generators.train_bundled import main

    monkeypatch.delenv("MEDAUDIT_DATA", raising=False)
    with pytest.raises(SystemExit):
        main(["--only", "cxr_gan"])
    assert "no data folder: give --data DIR or set MEDAUDIT_DATA" in capsys.readouterr().err
    monkeypatch.setenv("MEDAUDIT_DATA", str(tmp_path))
    with pytest.raises(SystemExit):
        main(["--only", "cxr_gan"])
    assert "--dest is required" in capsys.readouterr().err


def test_train_bundled_passes_a_utility_fold_and_a_step_cap_and_refuses_a_bad_fold(monkeypatch, capsys, tmp_path):
    import generators.train_bundled as tb

    calls = []
    monkeypatch.setattr(tb, "train_one", lambda *a: calls.append(a))
    base = ["--data", str(tmp_path), "--dest", str(tmp_path / "out"), "--only", "mammo_ldm"]
    assert tb.main(base + ["--fold", "1/3", "--max-steps", "5516"]) == 0
    assert calls[0][-2:] == ((1, 3), 5516)
    for bad in ("3/3", "1", "a/b"):
        with pytest.raises(SystemExit):
            tb.main(base + ["--fold", bad])
        assert "expected K/N with 0 <= K < N" in capsys.readouterr().err
    assert len(calls) == 1


@pytest.mark.parametrize("name, modality", [("mri_gan", "MR"), ("mammo_gan", "MG")])
def test_mri_and_mammography_generators_sample_at_their_resolution(name, modality):
    rec = BUNDLED[name]
    assert rec["resolution"] == 64 and rec["channels"] == 1 and rec["modality"] == modality
    x = load_generator(name, device="cpu").sample(3, seed=1)
    assert x.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1
    assert not np.allclose(x[0], x[1])  # different draws, not one memorized image


def test_mammography_weights_carry_their_research_use_licence():
    cfg = json.loads((Path(BUNDLED["mammo_gan"]["path"]) / "config.json").read_text())
    assert "research use only" in cfg["licence"] and "Suckling" in cfg["attribution"]
