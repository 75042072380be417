"""Shared fixtures: a small mixed folder of real, synthetic-looking and broken inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """real/: pydicom's CT and MR; synthetic/: a PNG with A1111 parameters; broken/: zero bytes, text, cut DICOM."""
    import pydicom.examples

    from benchmarks.demo_set import png_with_text

    root = tmp_path / "mixed"
    for sub in ("real", "synthetic", "broken"):
        (root / sub).mkdir(parents=True)
    shutil.copyfile(pydicom.examples.get_path("ct"), root / "real" / "ct.dcm")
    shutil.copyfile(pydicom.examples.get_path("mr"), root / "real" / "mr.dcm")
    pixels = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    (root / "synthetic" / "a1111.png").write_bytes(png_with_text(pixels, {"parameters": "a cat\nSteps: 20, Seed: 1"}))
    cv2.imwrite(str(root / "synthetic" / "plain.png"), pixels)
    (root / "broken" / "empty.dcm").write_bytes(b"")
    (root / "broken" / "notes.txt").write_text("not an image\n")
    data = (root / "real" / "ct.dcm").read_bytes()
    (root / "broken" / "cut.dcm").write_bytes(data[: len(data) // 2])
    return root
