"""Input folders for reader-study tests: 3 real DICOMs, 2 synthetic PNGs, 1 tampered CT (a copied patch)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np


def make_folders(root: Path) -> dict[str, Path]:
    import pydicom.examples

    from benchmarks.demo_set import png_with_text
    from forensics.io import load

    folders = {t: root / t for t in ("real", "synthetic", "tampered")}
    for f in folders.values():
        f.mkdir(parents=True)
    for name in ("ct", "mr", "rgb_color"):
        shutil.copyfile(pydicom.examples.get_path(name), folders["real"] / f"patient_{name}.dcm")
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 4)
    smooth = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)
    (folders["synthetic"] / "a1111.png").write_bytes(png_with_text(smooth, {"parameters": "chest x-ray\nSteps: 20"}))
    cv2.imwrite(str(folders["synthetic"] / "plain.png"), smooth[::-1])
    ct = load(pydicom.examples.get_path("ct")).pixels
    edited = (np.clip(ct, 0, 1) * 255).astype(np.uint8)
    edited[40:60, 70:90] = edited[80:100, 20:40]  # a copied patch: the edit
    cv2.imwrite(str(folders["tampered"] / "ct_edit.png"), edited)
    return folders
