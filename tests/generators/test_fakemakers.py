"""Fake makers: every decoder reconstructs at any size, a trained one loads from safetensors and re-synthesizes an
image of the same content, in-painting changes one region only, and remakes keep their real image's source group."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generators.fakemakers import FakeMaker, fake_maker, fake_maker_names
from generators.fakemakers.autoencoder import BUNDLED, maker_name
from generators.fakemakers.network import UPSAMPLERS, AutoEncoder
from generators.fakemakers.train import fit_autoencoder


def _images(n: int = 4, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    return [np.clip(0.5 + 0.3 * np.sin(6 * xx + i) * np.cos(4 * yy) + rng.normal(0, 0.02, (size, size)), 0, 1)
            .astype(np.float32) for i in range(n)]


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("stride", [4, 16])
def test_every_decoder_returns_the_input_shape(upsampler, stride):
    with torch.no_grad():
        y = AutoEncoder(upsampler, stride, width=4)(torch.rand(2, 1, 32, 48))
    assert y.shape == (2, 1, 32, 48) and 0 <= float(y.min()) and float(y.max()) <= 1


def test_registry_names_every_bundled_decoder_and_inpainting():
    names = fake_maker_names()
    assert {maker_name(u, s) for u, s in BUNDLED} | {"inpaint_local"} <= set(names)
    assert {u for u, _ in BUNDLED} == set(UPSAMPLERS) and {s for _, s in BUNDLED} == {4, 8, 16}
    with pytest.raises(KeyError, match="unknown fake maker"):
        fake_maker("no_such_maker")


@pytest.fixture
def trained_dir(tmp_path):
    fit_autoencoder(_images(), "nearest", 4, tmp_path / f"{maker_name('nearest', 4)}.safetensors", time_budget_s=None,
                    max_steps=30, crop=32, batch_size=4)
    return tmp_path


def test_trained_autoencoder_remakes_an_image_of_the_same_content(trained_dir):
    maker = fake_maker(maker_name("nearest", 4), weights_dir=trained_dir)
    assert maker.available() and not fake_maker(maker_name("bilinear", 8), weights_dir=trained_dir).available()
    x = _images(1, 50)[0]  # not a multiple of the stride: padded and cropped back
    y = maker.remake(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.float32
    assert not np.array_equal(x, y)
    assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.3  # the same picture, made again


def test_inpainting_changes_one_region_and_keeps_the_rest(trained_dir):
    maker = fake_maker("inpaint_local", weights_dir=trained_dir)
    assert maker.available() and isinstance(maker, FakeMaker)
    x = _images(1, 64)[0]
    y = maker.remake(x, np.random.default_rng(1))
    changed = np.abs(y - x) > 1e-3
    assert 0.01 < changed.mean() < 0.6  # a feathered ellipse, not the whole image


def test_remakes_keep_the_source_group_of_their_real_image(trained_dir, monkeypatch):
    import generators.fakemakers as fm
    from benchmarks.train_detector import remake_reals

    monkeypatch.setattr(fm, "BUNDLED_DIR", trained_dir)
    fakes, twins, groups, kinds, families = remake_reals(_images(3), ["a", "b", "c"], per_image=2, seed=0)
    assert len(fakes) == len(twins) == 6 and sorted(groups) == ["a", "a", "b", "b", "c", "c"]
    assert all(t.shape == f.shape for t, f in zip(twins, fakes, strict=True))
    assert set(kinds) == {"ae_nearest_s4", "inpaint_local"} and families == {"ae_nearest_s4": "ae_interp_up",
                                                                            "inpaint_local": "local"}
    with pytest.raises(ValueError, match="without weights"):
        remake_reals(_images(1), ["a"], makers=["ae_bilinear_s8"])


def test_cli_trains_fake_makers_lists_them_and_refuses_unknown_ones(tmp_path):
    import json

    import cv2
    from click.testing import CliRunner

    from cli import main

    data = tmp_path / "data"
    for folder in ("cxr_kermany", "ct_lung_tcia", "derm_isic"):
        (data / folder).mkdir(parents=True)
    for i, im in enumerate(_images(6, 112)):
        cv2.imwrite(str(data / "cxr_kermany" / f"person{i}_virus_{i}.png"), (im * 255).astype("uint8"))
    out = tmp_path / "makers"
    res = CliRunner().invoke(main, ["train", "fake-makers", "-q", "--data", str(data), "--out", str(out),
                                    "--seconds-each", "1"])
    assert res.exit_code == 0, res.output
    assert {f"{maker_name(u, s)}.safetensors" for u, s in BUNDLED} <= {p.name for p in out.iterdir()}
    assert json.loads(res.stdout)["data"]["images"] >= 4

    listed = json.loads(CliRunner().invoke(main, ["list", "--format", "json"]).stdout)
    assert {r["name"] for r in listed if r["type"] == "fake-maker"} == set(fake_maker_names())

    bad = CliRunner().invoke(main, ["train", "detector", "-q", "--real", str(data / "cxr_kermany"), "--out",
                                    str(tmp_path / "det"), "--fake-makers", "no_such_maker"])
    assert bad.exit_code == 2 and "unknown fake maker" in bad.output


def test_real_twin_has_the_remakes_detail_and_nothing_the_remake_added():
    import cv2

    from generators.fakemakers.twins import envelope_twin

    rng = np.random.default_rng(3)
    real = np.clip(_images(1, 128)[0] + rng.normal(0, 0.05, (128, 128)), 0, 1).astype(np.float32)
    smooth = cv2.GaussianBlur(real, (0, 0), 2.0)
    gridded = smooth.copy()
    gridded[::4, ::4] += 0.05  # a decoder's upsampling grid: detail the remake adds
    detail = lambda x: float((x - cv2.GaussianBlur(x, (0, 0), 1.0)).std())  # noqa: E731
    twin = envelope_twin(real, smooth)
    assert twin.shape == real.shape and twin.dtype == np.float32
    assert detail(twin) == pytest.approx(detail(smooth), rel=0.35) and detail(twin) < 0.5 * detail(real)
    assert np.abs(twin - smooth).mean() < 0.01  # same content: a low-passed copy of the real image
    grid_energy = lambda x: float(np.abs(np.fft.fft2(x - x.mean()))[32, 32])  # the grid's frequency (128 / 4)  # noqa: E731
    assert grid_energy(envelope_twin(real, gridded)) < 0.2 * grid_energy(gridded)
    assert np.allclose(envelope_twin(real, real), real, atol=1e-3)  # same detail: nothing to remove
    with pytest.raises(ValueError, match="one shape"):
        envelope_twin(real, smooth[:64])
