"""Fixtures of the benchmark tests: tiny data files written at test time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def write_volume():
    """A writer of small NIfTI brain-MRI stand-ins: ``depth`` axial 32x32 slices, each a noisy disc whose radius
    grows with depth (so every slice differs and none is near-empty)."""
    import nibabel as nib

    def write(path: Path, depth: int = 16, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[:32, :32]
        vol = np.zeros((32, 32, depth), np.int16)
        for k in range(depth):
            disc = (yy - 16) ** 2 + (xx - 16) ** 2 < (8 + 6 * k / depth) ** 2
            vol[:, :, k] = (disc * (600 + 100 * rng.standard_normal((32, 32)))).astype(np.int16)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
        return path

    return write
