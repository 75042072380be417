"""Real images per modality for the localizer: training side or benchmark side of both held-out rules.

A file is on the benchmark side when either rule names it (``benchmarks.datasets.is_holdout``, the tamper
benchmarks' CRC-32 rule, or ``benchmarks.datafiles.is_heldout``, the detectors' source-group rule), so the
localizer never trains on a file any benchmark uses. CT and chest X-ray files are single images; mammograms (PGM)
too; an MRI volume (NIfTI) gives a few axial slices from its middle third.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from benchmarks.datafiles import is_heldout
from benchmarks.datasets import is_holdout

#: Data folder of each modality key (the grain model's keys).
MODALITY_FOLDERS = {"ct": "ct_lung_tcia", "xray": "cxr_kermany", "mammo": "mammo", "mri": "mri_brain"}
_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".gz"}


def benchmark_side(path: Path) -> bool:
    """True when a benchmark holds the file out (either rule)."""
    return is_holdout(path.name) or is_heldout(path)


def modality_files(data: Path, modality: str, heldout: bool) -> list[Path]:
    """Sorted image files of ``modality`` below ``data`` on the benchmark side (``heldout``) or the training side."""
    d = Path(data) / MODALITY_FOLDERS[modality]
    if not d.is_dir():
        return []
    return [p for p in sorted(d.iterdir()) if p.suffix.lower() in _SUFFIXES and benchmark_side(p) == heldout]


def read_slices(path: Path, rng: np.random.Generator, per_volume: int = 3) -> Iterator[np.ndarray]:
    """float32 (H, W) images in [0, 1] from one file: the image, or ``per_volume`` middle slices of a volume
    (windowed to its 0.5-99.5 % range, as a viewer would display them)."""
    if path.name.endswith(".nii.gz"):
        import nibabel as nib

        vol = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        n = vol.shape[2]
        lo, hi = np.percentile(vol, [0.5, 99.5])
        for z in rng.choice(np.arange(n // 3, max(n // 3 + 1, 2 * n // 3)), size=min(per_volume, n), replace=False):
            sl = np.rot90(vol[:, :, int(z)])
            yield np.clip((sl - lo) / (hi - lo + 1e-6), 0, 1).astype(np.float32)
        return
    im = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if im is None:
        print(f"unreadable, skipped: {path}", file=sys.stderr)
        return
    yield im.astype(np.float32) / 255.0


def real_images(data: Path, modality: str, heldout: bool, n: int, rng: np.random.Generator,
                min_side: int = 96) -> list[np.ndarray]:
    """Up to ``n`` images of ``modality`` from a random draw of its files on one side of the held-out rules."""
    files = modality_files(data, modality, heldout)
    rng.shuffle(files)
    out: list[np.ndarray] = []
    for p in files:
        for g in read_slices(p, rng):
            if min(g.shape) >= min_side:
                out.append(g)
        if len(out) >= n:
            break
    return out[:n]


def tampered_pair(gray: np.ndarray, modality: str, method: str, rng: np.random.Generator,
                  donor: np.ndarray | None = None, fair: bool = True,
                  format_seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(untouched, tampered, mask) of one unstamped edit by ``method`` at a random body position, radius the default
    x U(0.6, 1.6). ``fair``: both images then take the *same* random draw of a mild format path (resize, window,
    JPEG or PNG; ``forensics.formatpath.format_path``), so format is never the cue; else both are quantized to 8 bit.
    ``donor``: another image of the modality, for the methods that paste a lesion from one. ``format_seed``: the
    format path's draw (default: a new one from ``rng``); the same seed gives the same untouched image."""
    from forensics.formatpath import format_path
    from generators import tamper as T

    r = T.default_radius(gray.shape) * float(rng.uniform(0.6, 1.6))
    at = T.random_body_point(gray, r, rng)
    extra = {}
    if T.tamper_method(method).needs_donor:
        d = donor if donor is not None else gray[:, ::-1]
        extra = {"donor": d, "donor_at": T.random_body_point(d, r, rng), "donor_radius": r}
    res = T.tamper_array(gray, method, at, r, modality=modality, seed=int(rng.integers(1 << 30)), lo=0.0, hi=1.0,
                         **extra)
    if not fair:
        return np.round(gray * 255) / 255, np.round(res.values * 255) / 255, res.mask
    seed = int(rng.integers(1 << 30)) if format_seed is None else format_seed
    kw = dict(p_roundtrip=0.15, p_resize=0.3, p_blur=0.0, p_noise=0.0, p_window=0.3, p_jpeg=0.35)
    real = format_path(gray, np.random.default_rng(seed), **kw)
    fake = format_path(res.values, np.random.default_rng(seed), **kw)
    mask = res.mask
    if fake.shape != mask.shape:
        mask = cv2.resize(mask.astype(np.uint8), (fake.shape[1], fake.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return real, fake, mask
