"""The localization analyzer: Finding shape, a heatmap that points at an altered region, calm on a clean image."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from forensics.analyzers import create_analyzer, list_analyzers
from forensics.analyzers.localization import LocalizationAnalyzer
from forensics.records import Finding, MedicalImage


def _image(pixels: np.ndarray) -> MedicalImage:
    return MedicalImage(pixels=pixels.astype(np.float32), path="x.png", sha256="0", format="png")


def _textured(size: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth anatomy-like background with uniform fine grain, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.45 + 0.2 * np.sin(3 * xx + 1) * np.cos(2 * yy)
    return np.clip(base + rng.normal(0, 0.02, (size, size)), 0, 1).astype(np.float32)


def _with_smooth_patch(img: np.ndarray, cx: int, cy: int, r: int) -> np.ndarray:
    """The disk at (cx, cy) replaced by a noiseless, brighter copy: what a careless in-painting leaves."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    smooth = cv2.GaussianBlur(img, (0, 0), 3.0) + 0.1
    return np.where(disk, smooth, img).astype(np.float32)


def test_registered_with_kind_local():
    assert "localization" in list_analyzers()
    a = create_analyzer("localization")
    assert a.name == "localization" and a.kind == "local"
    assert a.availability()[0]


def _clone_stamped(img: np.ndarray, cx: int, cy: int, r: int, dx: int, dy: int) -> np.ndarray:
    """The disk at (cx, cy) gets the grain of the disk at (cx + dx, cy + dy) over its own smooth content: the
    CT-GAN-style noise touch-up (generators.tamper) and what a clone-stamp tool leaves."""
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    low = cv2.GaussianBlur(img, (0, 0), 2.0)
    grain = img - low
    donor = np.roll(grain, (-dy, -dx), axis=(0, 1))
    return np.clip(np.where(disk, low + 0.05 + donor, img), 0, 1).astype(np.float32)


@pytest.mark.parametrize("method", ["noise", "copymove"])
def test_finding_shape(method):
    f = LocalizationAnalyzer(method=method).analyze(_image(_textured()))
    assert isinstance(f, Finding) and f.analyzer == "localization"
    assert 0.0 <= f.score <= 1.0
    assert f.heatmap is not None and f.heatmap.ndim == 2 and f.heatmap.dtype == np.float32
    assert 0.0 <= f.heatmap.min() and f.heatmap.max() <= 1.0
    assert f.data["method"] == method
    for e in f.evidence:
        assert e.code.startswith("localization.") and 0 <= e.weight <= 1
    f.to_dict()  # JSON-ready


def test_noise_heatmap_peaks_at_the_altered_region():
    cx, cy = 180, 80
    f = LocalizationAnalyzer(method="noise").analyze(_image(_with_smooth_patch(_textured(), cx, cy, 14)))
    hy, hx = np.unravel_index(int(np.argmax(f.heatmap)), f.heatmap.shape)
    px, py = (hx + 0.5) * 256 / f.heatmap.shape[1], (hy + 0.5) * 256 / f.heatmap.shape[0]
    assert np.hypot(px - cx, py - cy) < 24
    assert abs(f.data["at"][0] - cx) < 24 and abs(f.data["at"][1] - cy) < 24
    clean = LocalizationAnalyzer(method="noise").analyze(_image(_textured()))
    assert f.score > 5 * clean.score


def test_copymove_finds_pasted_grain_and_its_source():
    cx, cy, dx, dy = 90, 150, 60, -45
    img = np.round(_clone_stamped(_textured(), cx, cy, 14, dx, dy) * 255) / 255  # saved as 8-bit
    f = LocalizationAnalyzer(method="copymove").analyze(_image(img))
    assert f.score > 0.5 and f.evidence[0].code == "localization.copied_texture"
    spots = {tuple(f.data["at"]), tuple(f.data["source_at"])}
    assert any(abs(x - cx) < 6 and abs(y - cy) < 6 for x, y in spots)
    assert any(abs(x - cx - dx) < 6 and abs(y - cy - dy) < 6 for x, y in spots)
    hy, hx = np.unravel_index(int(np.argmax(f.heatmap)), f.heatmap.shape)
    cell = f.data["cell_px"]
    assert min(np.hypot((hx + 0.5) * cell - x, (hy + 0.5) * cell - y) for x, y in spots) < 2 * cell


def _only_a_weak_note(f: Finding) -> bool:
    """A calm finding still says what its (small) score rests on, with weight 0: never "no evidence" beside a score
    that raises the risk."""
    return len(f.evidence) == 1 and f.evidence[0].weight == 0 and f"score {f.score:.2f}" in f.evidence[0].message


@pytest.mark.parametrize("seed", [3, 4])
def test_copymove_is_calm_on_independent_grain(seed):
    f = LocalizationAnalyzer(method="copymove").analyze(_image(np.round(_textured(seed=seed) * 255) / 255))
    assert f.score < 0.5 and _only_a_weak_note(f)


def test_copymove_ignores_periodic_texture():
    # a tiled texture repeats both ways at its period: natural (a grid, a detector pattern), not a pasted region
    tile = np.random.default_rng(5).normal(0, 0.03, (32, 32))
    img = np.clip(_textured() + np.tile(tile, (8, 8)), 0, 1)
    f = LocalizationAnalyzer(method="copymove").analyze(_image(img))
    assert f.score < 0.5


def test_noise_is_calm_on_a_clean_image():
    f = LocalizationAnalyzer(method="noise").analyze(_image(_textured(seed=3)))
    assert f.score < 0.5 and _only_a_weak_note(f)


def test_rgb_and_tiny_inputs():
    a = LocalizationAnalyzer(method="noise")
    rgb = np.repeat(_textured(128)[..., None], 3, axis=2)
    assert a.analyze(_image(rgb)).heatmap is not None
    tiny = a.analyze(_image(np.zeros((20, 20), np.float32)))
    assert tiny.score is None


def test_cnn_is_calm_on_an_untouched_phantom():
    # The bundled network does not reliably find this generator's lesions (docs/BENCHMARKS.md, "Tamper
    # localization": image AUC ~0.5, pixel AUC ~0.66), so only its contract and its false-positive side are tested.
    a = LocalizationAnalyzer(method="cnn")
    if not a.availability()[0]:
        pytest.skip(a.availability()[1])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256] / 256
    body = ((xx - 0.5) / 0.45) ** 2 + ((yy - 0.5) / 0.35) ** 2 < 1
    lung = ((xx - 0.35) / 0.13) ** 2 + ((yy - 0.5) / 0.22) ** 2 < 1
    img = np.clip(np.where(body, 0.55, 0.0) - 0.5 * lung + body * rng.normal(0, 0.02, (256, 256)), 0, 1)
    f = a.analyze(_image(np.round(img * 255) / 255))
    assert f.data["method"] == "cnn" and f.score < 0.5 and _only_a_weak_note(f)
    assert f.heatmap.shape == (32, 32)


def test_fit_localizer_saves_what_the_cnn_method_loads(tmp_path):
    """A few steps on synthetic crops: the saved folder is a working ``weights_dir`` for ``method="cnn"``."""
    from forensics.analyzers.localization.model import STRIDE, net_input
    from forensics.analyzers.localization.train import CROP, fit_calibration, fit_localizer, save_localizer
    from forensics.trainloop import seed_torch

    seed_torch(0, threads=1)
    rng = np.random.default_rng(0)
    img = _textured(CROP * 2)
    x = np.stack([net_input(img[i : i + CROP, i : i + CROP]) for i in range(0, CROP, 8)]).astype(np.float16)
    y = np.zeros((len(x), 1, CROP // STRIDE, CROP // STRIDE), np.float32)
    y[::2, :, 2:4, 2:4] = 1
    net, log = fit_localizer(x, y, rng, time_budget_s=None, max_steps=3, batch_size=4)
    assert log["steps"] == 3 and not net.training
    assert set(log) == {"positive_cell_fraction", "steps", "train_seconds", "final_train_loss", "val_cell_auc"}
    calibration, auc = fit_calibration(np.linspace(0, 1, 101), np.full(10, 4.0))
    assert calibration["center"] == pytest.approx(0.97) and auc == 1.0
    save_localizer(net, {"name": "localization", "model": {"width": 16}, "stride": STRIDE, "crop": CROP},
                   calibration, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.json", "config.json", "weights.safetensors"]
    f = LocalizationAnalyzer(weights_dir=tmp_path, method="cnn").analyze(_image(_textured()))
    assert 0.0 <= f.score <= 1.0 and f.heatmap is not None


# ---------------------------------------------------------------------------------------------- the fused localizer


def _grainy(size: int = 192, seed: int = 0) -> np.ndarray:
    """A real-like acquisition: smooth anatomy and a correlated grain (white noise blurred a little, as a
    reconstruction kernel leaves it), saved as 8 bit."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.45 + 0.15 * np.sin(3 * xx + seed) * np.cos(2 * yy)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.7)
    return np.round(np.clip(base + 0.025 * grain / grain.std(), 0, 1) * 255).astype(np.float32) / 255


def _synthesized_grain(img: np.ndarray, cx: int, cy: int, r: int, seed: int = 9) -> np.ndarray:
    """The disk's grain replaced by decoder-like grain: upsampled from a coarser grid (smooth, strongly correlated)
    at the same level, so only its texture, not its brightness, differs."""
    rng = np.random.default_rng(seed)
    h, w = img.shape
    coarse = cv2.resize(rng.normal(0, 1, (h // 3, w // 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    low = cv2.GaussianBlur(img, (0, 0), 1.5)
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    fake = np.where(disk, low + (img - low).std() * coarse / coarse.std(), img)
    return (np.round(np.clip(fake, 0, 1) * 255) / 255).astype(np.float32)


@pytest.fixture(scope="module")
def grain_model():
    from forensics.analyzers.localization.grain import fit_grain_model

    return fit_grain_model({"ct": [_grainy(seed=s) for s in range(6)]}, np.random.default_rng(0))


def test_grain_model_flags_synthesized_grain_and_not_untouched(grain_model):
    from forensics.analyzers.localization.grain import STRIDE, GrainModel

    model = GrainModel.load_dict(json.loads(grain_model.to_json()))  # what a saved grain.json gives back
    cx, cy = 120, 70
    clean = _grainy(seed=11)
    a_fake, ok_fake = model.anomaly(_synthesized_grain(clean, cx, cy, 16), "ct")
    a_real, ok_real = model.anomaly(clean, "ct")
    peak_real = float(a_real[ok_real].max())
    peak_fake = float(a_fake[ok_fake].max())
    assert peak_fake > peak_real + 1.0
    py, px = np.unravel_index(int(np.argmax(np.where(ok_fake, a_fake, -np.inf))), a_fake.shape)
    assert np.hypot((px + 0.5) * STRIDE - cx, (py + 0.5) * STRIDE - cy) < 20
    # an unknown modality falls back on the pooled model
    assert model.anomaly(clean, "mri")[0].shape == a_real.shape


def test_cnn_loads_the_bundled_weights_and_runs():
    a = LocalizationAnalyzer(method="cnn")
    if not a.availability()[0]:
        pytest.skip(a.availability()[1])
    f = a.analyze(_image(_grainy(256)))
    assert f.data["method"] == "cnn" and 0.0 <= f.score <= 1.0 and f.heatmap.shape == (32, 32)
    assert {p.name for p in a.model_files()} == {"weights.safetensors", "config.json", "calibration.json"}


def _fused_dir(tmp_path, grain_model, **support):
    """A weights folder with the bundled network and a fitted grain model, and a localizer.json whose weights
    make copied grain decisive (operating threshold 0.5)."""
    import shutil

    from forensics.analyzers.localization import DEFAULT_WEIGHTS_DIR

    for name in ("weights.safetensors", "config.json", "calibration.json"):
        if not (DEFAULT_WEIGHTS_DIR / name).is_file():
            pytest.skip("bundled localization weights missing")
        shutil.copy(DEFAULT_WEIGHTS_DIR / name, tmp_path / name)
    (tmp_path / "grain.json").write_text(grain_model.to_json())
    sup = {"threshold": 0.5, "heldout_fpr": 0.005, "heldout_methods_min_tpr": 0.8, **support}
    (tmp_path / "localizer.json").write_text(json.dumps(
        {"weights": [1.0, 0.0, 0.0], "bias": {"any": 0.0}, "threshold": 0.5, "support": sup}))
    return tmp_path


def test_fused_finding_has_calibrated_score_heatmap_and_regions(tmp_path, grain_model):
    a = LocalizationAnalyzer(weights_dir=_fused_dir(tmp_path, grain_model), method="fused")
    assert a.availability()[0]
    cx, cy, dx, dy = 90, 150, 60, -45
    img = np.round(_clone_stamped(_textured(), cx, cy, 14, dx, dy) * 255) / 255
    image = _image(img)
    image.spacing_mm = (0.7, 0.7)
    f = a.analyze(image)
    assert f.kind == "local" and f.data["method"] == "fused"
    assert f.score > 0.9  # copy-move's logit, weighed 1 with bias 0, is the score's logit
    assert f.heatmap.dtype == np.float32 and 0.0 <= f.heatmap.min() and f.heatmap.max() <= f.score + 1e-6
    regions = f.data["regions"]
    assert regions and regions[0]["area_px"] > 0
    assert regions[0]["area_mm2"] == pytest.approx(regions[0]["area_px"] * 0.49, rel=0.01)
    x0, y0, x1, y1 = regions[0]["box"]
    spots = [(cx, cy), (cx + dx, cy + dy)]
    assert any(x0 - 8 <= x <= x1 + 8 and y0 - 8 <= y <= y1 + 8 for x, y in spots)
    codes = [e.code for e in f.evidence]
    assert codes[0] == "localization.edited_region" and "localization.copied_texture" in codes  # copy-move's kept
    assert f.data["support"]["heldout_fpr"] == 0.005 and set(f.data["peaks"]) == {"copy", "cnn", "grain"}
    f.to_dict()

    calm = a.analyze(_image(np.round(_textured(seed=3) * 255) / 255))
    assert calm.score < 0.5 and calm.data["regions"] == []


def _local(score: float, regions=({"area_px": 300},), **support) -> Finding:
    sup = {"threshold": 0.8, "heldout_fpr": 0.005, "heldout_methods_min_tpr": 0.75, **support}
    return Finding("localization", score, [], kind="local", data={"regions": list(regions), "support": sup})


def test_fusion_lets_a_supported_local_finding_reach_high_and_nothing_else():
    from forensics.fusion import FusionConfig, explain, level_of, local_supported

    cfg = FusionConfig()
    cases = {
        "supported": (_local(0.97), True),
        "held-out false alarms too high": (_local(0.97, heldout_fpr=0.03), False),
        "held-out methods not caught": (_local(0.97, heldout_methods_min_tpr=0.4), False),
        "below its operating threshold": (_local(0.97, threshold=0.98), False),
        "no region marked": (_local(0.97, regions=()), False),
        "no support figures": (Finding("localization", 0.97, [], kind="local", data={"regions": [{}]}), False),
    }
    for name, (finding, ok) in cases.items():
        assert local_supported(finding, cfg) is ok, name
        pixel = Finding("cnn", 0.05, kind="pixel")
        fusion = explain([pixel, finding], cfg)
        assert fusion.prior + sum(fusion.contributions) == pytest.approx(fusion.logit, abs=1e-9), name
        assert (level_of(fusion.risk, cfg) == "high") is ok, name
        assert fusion.local_supported == (["localization"] if ok else []), name
        if not ok:
            assert fusion.risk <= 0.05 + 0.95 * cfg.rules_cap + 1e-9, name
    # without any pixel score the supported finding alone sets the risk to its score
    alone = explain([_local(0.95)], cfg)
    assert alone.risk == pytest.approx(0.95) and level_of(alone.risk, cfg) == "high"
    assert alone.prior + sum(alone.contributions) == pytest.approx(alone.logit, abs=1e-9)
    # the thresholds are the config's: a stricter one withdraws the support
    assert not local_supported(_local(0.97), FusionConfig(local_high_max_fpr=0.001))


def test_bundled_localizer_config_carries_its_support_figures():
    from forensics.analyzers.localization import DEFAULT_WEIGHTS_DIR
    from forensics.analyzers.localization.fused import LocalizerConfig

    path = DEFAULT_WEIGHTS_DIR / "localizer.json"
    if not path.is_file():
        pytest.skip("no bundled localizer.json")
    cfg = LocalizerConfig.load(path)
    assert len(cfg.weights) == 3 and all(w >= 0 for w in cfg.weights) and 0 < cfg.threshold < 1
    assert {"threshold", "heldout_fpr", "heldout_methods_min_tpr"} <= set(cfg.support)
    assert LocalizationAnalyzer(method="fused").availability()[0]
