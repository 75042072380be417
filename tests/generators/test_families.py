"""Every registered family: tiny configs train a few steps on CPU, sample, save/load and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generators import Generator, ImageDataset, create_generator, list_generators

TINY = {
    "gan": dict(resolution=8, nz=8, base=4, batch_size=4),
    "vae": dict(resolution=8, z_dim=4, base=4, batch_size=4),
    "ddpm": dict(
        resolution=8,
        block_out_channels=(4, 8),
        norm_num_groups=4,
        num_train_timesteps=50,
        num_inference_steps=5,
        batch_size=4,
    ),
}


def test_registry_lists_the_three_families():
    assert {"gan", "vae", "ddpm"} <= set(list_generators())
    assert list_generators("dd*") == ["ddpm"]


def test_unknown_family_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown generator 'nope'"):
        create_generator("nope")


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("channels", [1, 3])
def test_fit_and_sample(family, channels, gray_png_folder, rgb_jpeg_folder):
    folder = gray_png_folder if channels == 1 else rgb_jpeg_folder
    ds = ImageDataset(folder, resolution=8)
    assert ds.channels == channels
    gen = create_generator(family, channels=channels, **TINY[family])
    assert gen.fit(ds, max_steps=3, progress=False, device="cpu") is gen
    assert gen.steps_ == 3
    x = gen.sample(3, seed=7)
    assert x.dtype == np.float32
    assert x.shape == ((3, 8, 8) if channels == 1 else (3, 8, 8, 3))
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(x, gen.sample(3, seed=7))


@pytest.mark.parametrize("family", sorted(TINY))
def test_save_load_reproduces_samples(family, tmp_path, gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=8)
    gen = create_generator(family, channels=1, **TINY[family]).fit(ds, max_steps=2, progress=False, device="cpu")
    gen.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "weights.safetensors"]
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["family"] == family and cfg["steps"] == 2 and cfg["resolution"] == 8 and cfg["channels"] == 1
    assert cfg["data"]["n_images"] == 6 and "version" in cfg
    loaded = Generator.load(tmp_path / "ckpt", device="cpu")
    assert type(loaded) is type(gen)
    np.testing.assert_array_equal(loaded.sample(4, seed=3), gen.sample(4, seed=3))
    # float16 inference-only export: what bundled weights ship as
    gen.save(tmp_path / "half", inference_only=True, half=True)
    half = Generator.load(tmp_path / "half", device="cpu")
    np.testing.assert_allclose(half.sample(4, seed=3), gen.sample(4, seed=3), atol=0.05)


@pytest.mark.parametrize("family", sorted(TINY))
def test_fit_resumes_from_out_dir(family, tmp_path, gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=8)
    out = tmp_path / "run"
    create_generator(family, channels=1, **TINY[family]).fit(ds, max_steps=2, progress=False, out_dir=out)
    assert (out / "samples.png").is_file()
    resumed = create_generator(family, channels=1, **TINY[family])
    resumed.fit(ds, max_steps=4, progress=False, out_dir=out)
    assert resumed.steps_ == 4
    assert json.loads((out / "config.json").read_text())["steps"] == 4


def test_time_budget_stops_training(gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=8)
    gen = create_generator("vae", channels=1, **TINY["vae"]).fit(ds, time_budget_s=0.5, progress=False)
    assert gen.steps_ >= 1


def test_channel_mismatch_is_rejected(gray_png_folder):
    ds = ImageDataset(gray_png_folder, resolution=8)
    with pytest.raises(ValueError, match="channel"):
        create_generator("vae", channels=3, **TINY["vae"]).fit(ds, max_steps=1, progress=False)


def test_unfitted_sample_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        create_generator("gan", **TINY["gan"]).sample(1)
