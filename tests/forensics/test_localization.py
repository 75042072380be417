"""The localization analyzer: Finding shape, a heatmap that points at an altered region, calm on a clean image."""

from __future__ import annotations

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


@pytest.mark.parametrize("method", ["noise", "auto"])
def test_finding_shape(method):
    f = LocalizationAnalyzer(method=method).analyze(_image(_textured()))
    assert isinstance(f, Finding) and f.analyzer == "localization"
    assert 0.0 <= f.score <= 1.0
    assert f.heatmap is not None and f.heatmap.ndim == 2 and f.heatmap.dtype == np.float32
    assert 0.0 <= f.heatmap.min() and f.heatmap.max() <= 1.0
    assert f.data["method"] in ("cnn", "noise")
    for e in f.evidence:
        assert e.code == "localization.inconsistent_region" and 0 <= e.weight <= 1
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


def test_noise_is_calm_on_a_clean_image():
    f = LocalizationAnalyzer(method="noise").analyze(_image(_textured(seed=3)))
    assert f.score < 0.5 and not f.evidence


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
    assert f.data["method"] == "cnn" and f.score < 0.5 and not f.evidence
    assert f.heatmap.shape == (32, 32)
