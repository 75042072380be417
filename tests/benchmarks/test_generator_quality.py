"""Generator quality metrics on small synthetic arrays, and a tiny end-to-end run with a fake generator."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmarks import generator_quality as gq


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Shared CI cores: one torch thread and one BLAS thread here, restored afterwards."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def smooth_images(n: int, seed: int, sigma: float = 3.0, size: int = 32, offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), sigma)
        im = (im - im.min()) / np.ptp(im)
        out.append(np.clip(im * 0.5 + offset, 0, 1))
    return np.stack(out).astype(np.float32)


def stripes(n: int, seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = [0.5 + 0.5 * np.sin(xx * rng.uniform(1.0, 2.5) + rng.uniform(0, 6)) for _ in range(n)]
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="module")
def rand18():
    return gq.RandomResNet18(in_chans=1)


def test_extractor_is_deterministic_and_named(rand18):
    x = smooth_images(3, 0)
    f1 = rand18(x)
    f2 = gq.RandomResNet18(in_chans=1)(x)
    assert f1.shape == (3, 512)
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    assert "rand-resnet18" in rand18.id and "seed=0" in rand18.id
    assert rand18(np.repeat(x[..., None], 3, axis=-1)).shape == (3, 512)  # RGB input to a 1-channel net


def test_identical_and_same_distribution_sets(rand18):
    a, b = smooth_images(40, 0), smooth_images(40, 1)
    fa, fb = rand18(a), rand18(b)
    assert gq.frechet_distance(fa, fa) == pytest.approx(0.0, abs=1e-6)
    m, s = gq.kid(fa, fa, subsets=20)
    assert abs(m) < 1e-3
    m, s = gq.kid(fa, fb, subsets=20)
    assert abs(m) < 3 * s + 1e-4
    p = gq.prdc(fa, fa, k=3)
    assert p["precision"] == 1.0 and p["recall"] == 1.0 and p["coverage"] == 1.0


def test_disjoint_distributions(rand18):
    a, c = smooth_images(40, 0), stripes(40, 2)
    fa, fc = rand18(a), rand18(c)
    fd_same = gq.frechet_distance(fa, rand18(smooth_images(40, 1)))
    fd_far = gq.frechet_distance(fa, fc)
    assert fd_far > 10 * fd_same
    assert gq.kid(fa, fc, subsets=20)[0] > 10 * abs(gq.kid(fa, rand18(smooth_images(40, 1)), subsets=20)[0])
    p = gq.prdc(fa, fc, k=3)
    assert p["precision"] < 0.2 and p["recall"] < 0.2 and p["coverage"] < 0.2
    t = gq.texture_features(np.concatenate([a, c]))
    assert np.isfinite(t).all()


def test_frechet_distance_matches_gaussian_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 2))
    b = rng.normal(0, 1, (4000, 2)) * 2 + 1
    # |mu diff|^2 = 2; trace term per dim: 1 + 4 - 2*2 = 1 → ≈ 4
    assert gq.frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


def test_ms_ssim():
    a = smooth_images(4, 0, size=64)
    assert gq.msssim_scales(64) == 3
    assert gq.ms_ssim(a[0], a[0]) == pytest.approx(1.0, abs=1e-9)
    rgb = np.stack([a[0], a[1], a[2]], axis=-1)
    assert gq.ms_ssim(rgb, rgb) == pytest.approx(1.0, abs=1e-9)
    assert gq.ms_ssim(a[0], a[1]) < 0.9
    noisy = np.clip(a[0] + np.random.default_rng(0).normal(0, 0.05, a[0].shape), 0, 1)
    assert gq.ms_ssim(a[0], a[1]) < gq.ms_ssim(a[0], noisy) < 1.0
    same = np.repeat(a[:1], 10, axis=0)
    assert gq.ms_ssim_diversity(same, pairs=20) == pytest.approx(1.0)
    assert gq.ms_ssim_diversity(smooth_images(10, 1, size=64), pairs=20) < 0.9


def test_memorization_counts_near_copies():
    train = smooth_images(30, 0)
    rng = np.random.default_rng(1)
    copies = np.clip(train[:4] + rng.normal(0, 0.005, train[:4].shape), 0, 1).astype(np.float32)
    samples = np.concatenate([smooth_images(10, 5), copies])
    m = gq.memorization(samples, train)
    assert m["near_copies"] == 4 and m["n_queries"] == 14 and m["n_train"] == 30
    assert m["nn_ncc_max"] > 0.99 and m["nn_ncc_p50"] < 0.9
    loo = gq.memorization(train, train, exclude_self=True)
    assert loo["near_copies"] == 0 and loo["nn_ncc_max"] < 0.95


class FakeGenerator:
    """Samples half copies of its training images, half fresh smooth noise."""

    family = "fake"
    channels = 1
    resolution = 32

    def __init__(self, train: np.ndarray):
        self.name_ = "fake_gen"
        self.data_ = {"name": "fake_set"}
        self.train = train

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        fresh = smooth_images(n, seed + 100)
        fresh[: n // 2] = self.train[: n // 2]
        return fresh


def test_tiny_run_with_fake_generator(tmp_path: Path, rand18):
    train = smooth_images(20, 0)
    folder = tmp_path / "fake_set"
    folder.mkdir()
    for i, im in enumerate(train):
        cv2.imwrite(str(folder / f"im_{i:02d}.png"), np.round(im * 255).astype(np.uint8))
    real = gq.load_real(folder, 32, 1)
    assert real.shape == (20, 32, 32)
    gen = FakeGenerator(real)
    no_data = FakeGenerator(real)
    no_data.name_, no_data.data_ = "no_data", {}
    rows = gq.run(tmp_path, n=12, models=[gen, no_data], k=3, speed_n=4)
    assert [r["model"] for r in rows] == ["fake_gen", "no_data", "real:fake_set"]
    assert "no training data folder" in rows[1]["error"]
    json.dumps(rows)  # plain types only (the CLI and the results store serialise rows)
    assert "| no_data | error: " in gq.to_markdown(rows)
    rows.pop(1)
    r = rows[0]
    assert r["n_fake"] == 12 and r["n_real"] == 12
    assert r["near_copies"] >= 4  # 6 copies per 16-image chunk → the first 6 of 12 samples are copies
    assert r["samples_per_s"] > 0 and r["threads"] >= 1 and r["cpu"]
    assert "rand-resnet18" in r["extractor_id"]
    assert rows[1]["near_copies"] == 0 and rows[1]["samples_per_s"] is None
    md = gq.to_markdown(rows)
    assert "| fake_gen |" in md and "FD-rand18" in md and "real:fake_set" in md
    assert gq.to_markdown([]).startswith("_No generators")


def test_evaluation_stores_rows_and_returns_its_section(tmp_path: Path, monkeypatch):
    from benchmarks.evaluations import run_evaluation
    from benchmarks.store import ResultStore

    train = smooth_images(12, 0)
    (tmp_path / "fake_set").mkdir()
    for i, im in enumerate(train):
        cv2.imwrite(str(tmp_path / "fake_set" / f"im_{i:02d}.png"), np.round(im * 255).astype(np.uint8))
    gen = FakeGenerator(gq.load_real(tmp_path / "fake_set", 32, 1))
    monkeypatch.setattr(gq, "_model_info", lambda m: {"model": "fake_gen", "family": "fake", "data": "fake_set",
                                                       "resolution": 32, "channels": 1, "window": "lung", "gen": gen})
    db = tmp_path / "r.sqlite"
    run_id, section = run_evaluation("generators", db=db, data=tmp_path, n=8, k=3, speed_n=2, models=("x",))
    assert (section.name, section.title) == ("generators", "Generator quality") and "| fake_gen |" in section.markdown
    with ResultStore(db) as store:
        rows = {(r["detector"], r["metric"]): r for r in store.results(run_id)}
        assert store.run(run_id)["config"]["n"] == 8
    assert rows[("fake_gen", "near_copies")]["value"] >= 4 and rows[("fake_gen", "fd_rand18")]["n_fake"] == 8
    assert ("real:fake_set", "fd_tex") in rows


class ConditionalDouble:
    """Records the (class, guidance, n) of every sample call."""

    classes = ["bacterial", "viral", "normal"]
    data_ = {"classes": {"bacterial": 259, "viral": 145, "normal": 0}}

    def __init__(self):
        self.calls = []

    def sample(self, n, seed=0, class_label=None, guidance=None):
        self.calls.append((class_label, guidance, n))
        return np.zeros((n, 8, 8), np.float32)


def test_a_conditional_model_is_sampled_in_its_training_class_shares_at_guidance_one():
    gen = ConditionalDouble()
    assert gq.class_mix(gen, 100) == [("bacterial", 64), ("viral", 36)]  # 259:145, largest remainder
    assert len(gq.draw_samples(gen, 100, batch=50)) == 100
    assert {(c, g) for c, g, _ in gen.calls} == {("bacterial", 1.0), ("viral", 1.0)}
    assert sum(n for c, _, n in gen.calls if c == "viral") == 36
    gen.data_ = {}  # no recorded class counts: the null class, as for an unconditional model
    assert gq.class_mix(gen, 5) == [(None, 5)]
