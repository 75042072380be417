"""Tiny fixtures for the generator tests: small image folders and a tiny trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    # tiny models gain nothing from threads, and on a busy shared machine extra threads spin and stall
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    cx, cy, r = rng.uniform(0.3, 0.7, 3) * [1, 1, 0.5]
    return np.clip(1.0 - ((xx - cx) ** 2 + (yy - cy) ** 2) / (r * r + 1e-3), 0, 1).astype(np.float32)


@pytest.fixture
def gray_png_folder(tmp_path: Path) -> Path:
    """6 grayscale PNGs (40 x 48) in a nested folder."""
    rng = np.random.default_rng(0)
    root = tmp_path / "gray"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        im = (_blob(rng, 48)[:40] * 255).astype(np.uint8)
        cv2.imwrite(str(root / ("sub" if i % 2 else "") / f"im{i}.png"), im)
    return root


@pytest.fixture
def rgb_jpeg_folder(tmp_path: Path) -> Path:
    """5 colour JPEGs (brownish blob on pink)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "rgb"
    root.mkdir()
    for i in range(5):
        b = _blob(rng, 32)[..., None]
        rgb = (1 - b) * np.array([0.9, 0.7, 0.7]) + b * np.array([0.4, 0.25, 0.15])
        cv2.imwrite(str(root / f"im{i}.jpg"), (rgb[..., ::-1] * 255).astype(np.uint8))
    return root


@pytest.fixture
def tiny_gan_ckpt(tmp_path: Path, gray_png_folder: Path) -> Path:
    """A 64 px GAN with 4-wide layers trained 2 steps (64 px so the watermark has room)."""
    from generators import ImageDataset, create_generator

    ds = ImageDataset(gray_png_folder, resolution=64, modality="DX")
    gen = create_generator("gan", resolution=64, channels=1, nz=8, base=4, batch_size=4)
    out = tmp_path / "tiny_gan"
    gen.fit(ds, max_steps=2, progress=False, sample_every=None, out_dir=out)
    return out
