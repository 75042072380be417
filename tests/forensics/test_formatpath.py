"""The shared format path keeps dtype and range, is seeded, and standardize is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from forensics.formatpath import EXPORT_SIDES, format_path, jpeg_roundtrip, native_roundtrip, png_roundtrip, standardize


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).random((80, 96)).astype(np.float32)


@pytest.mark.parametrize("shape", [(80, 96), (80, 96, 3)])
def test_format_path_keeps_dtype_and_range(shape):
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    for seed in range(8):
        y = format_path(x, np.random.default_rng(seed), native_size=32)
        assert y.dtype == np.float32
        assert y.ndim == x.ndim
        assert 0.0 <= y.min() and y.max() <= 1.0


def test_format_path_is_seeded(image):
    a = format_path(image, np.random.default_rng(7), native_size=32)
    b = format_path(image, np.random.default_rng(7), native_size=32)
    c = format_path(image, np.random.default_rng(8), native_size=32)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_export_resize_lands_on_an_export_side(image):
    sides = {min(format_path(image, np.random.default_rng(s), p_resize=1.0, p_export=1.0).shape) for s in range(20)}
    assert sides <= set(EXPORT_SIDES) and len(sides) > 2  # a 80 px image is enlarged up to 1024 px before encoding


def test_png_roundtrip_is_only_quantization(image):
    assert np.abs(png_roundtrip(image) - image).max() <= 0.5 / 255 + 1e-6
    assert np.abs(png_roundtrip(image, 16) - image).max() <= 0.5 / 65535 + 1e-6


def test_jpeg_roundtrip_changes_pixels_but_not_shape(image):
    y = jpeg_roundtrip(image, 50)
    assert y.shape == image.shape and not np.array_equal(y, image)


def test_native_roundtrip_removes_fine_detail(image):
    y = native_roundtrip(image, 16)
    assert y.shape == image.shape
    assert np.abs(np.diff(y, axis=1)).mean() < np.abs(np.diff(image, axis=1)).mean() / 2


def test_standardize_is_square_gray_and_deterministic():
    rgb = np.random.default_rng(2).random((300, 200, 3)).astype(np.float32)
    a, b = standardize(rgb, 64), standardize(rgb, 64)
    assert a.shape == (64, 64) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_every_resampler_keeps_shape_range_and_channels():
    from forensics.resampling import RESAMPLERS, resize

    for shape in [(40, 52), (40, 52, 3)]:
        x = np.random.default_rng(3).random(shape).astype(np.float32)
        for kernel in RESAMPLERS:
            y = resize(x, 20, 26, kernel)
            assert y.shape == (20, 26, *shape[2:]) and y.dtype == np.float32, kernel
            assert 0.0 <= y.min() and y.max() <= 1.0


def test_resamplers_differ_so_training_sees_many_kernels():
    from forensics.resampling import RESAMPLERS, resize

    x = np.random.default_rng(4).random((64, 64)).astype(np.float32)
    outs = {k: resize(resize(x, 23, 23, k), 64, 64, k) for k in RESAMPLERS}
    distinct = {np.round(v, 4).tobytes() for v in outs.values()}
    assert len(distinct) >= len(RESAMPLERS) - 2  # e.g. nearest neighbours of two libraries may coincide
