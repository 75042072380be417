"""Training frames from files ``forensics.io`` reads as one picture: every useful axial slice of a NIfTI volume,
and binary PGM (mini-MIAS mammograms).

``forensics.io.load`` returns a NIfTI volume's middle slice (enough to score a file); a generator wants the
slices that show anatomy. Slices are taken along the superior axis of the closest-canonical (RAS) orientation,
anterior up, scaled to [0, 1] by the volume's 0.5-99.5th percentiles, padded to a square (so the centre crop of
``ImageDataset`` cuts nothing), and kept from the widest slice upwards while their foreground covers at least
``min_foreground`` of the widest one (for a head: the cerebrum, without the face, the neck and the skull cap).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SUFFIXES = (".nii", ".nii.gz", ".pgm")


def handles(path: str | os.PathLike) -> bool:
    name = Path(path).name.lower()
    return name.endswith(SUFFIXES)


def nifti_axial_slices(path: str | os.PathLike, min_foreground: float = 0.6) -> list[np.ndarray]:
    """The anatomy-bearing axial slices of a 3-D NIfTI volume, float32 (S, S) in [0, 1]."""
    import nibabel as nib

    vol = np.asarray(nib.as_closest_canonical(nib.load(str(path))).get_fdata(dtype=np.float32))
    if vol.ndim == 4:
        vol = vol[..., 0]
    if vol.ndim != 3:
        raise ValueError(f"{Path(path).name}: expected a 3-D volume, got shape {vol.shape}")
    lo, hi = np.percentile(vol, [0.5, 99.5])
    vol = np.clip((vol - lo) / max(hi - lo, 1e-6), 0, 1)
    fg = (vol > 0.1).mean(axis=(0, 1))
    # from the widest slice upwards: the brain; below it lie the face and the neck
    keep = [k for k in range(int(np.argmax(fg)), len(fg)) if fg[k] >= min_foreground * fg.max()]
    return [_square(np.rot90(vol[:, :, k])) for k in keep]


def read_pgm(path: str | os.PathLike) -> np.ndarray:
    """A binary PGM (8 or 16 bit) as float32 (H, W) in [0, 1]."""
    import cv2

    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None or im.ndim != 2:
        raise ValueError(f"{Path(path).name}: not a readable grayscale PGM")
    return (im.astype(np.float32) / (65535.0 if im.dtype == np.uint16 else 255.0)).astype(np.float32)


def load_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """Frames of a NIfTI volume (its slices) or a PGM (one)."""
    if Path(path).name.lower().endswith(".pgm"):
        return [read_pgm(path)]
    return nifti_axial_slices(path)


def _square(im: np.ndarray) -> np.ndarray:
    h, w = im.shape
    s = max(h, w)
    out = np.zeros((s, s), np.float32)
    out[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = im
    return out
