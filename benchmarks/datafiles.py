"""Which file of a data folder is which: source groups, held-out splits, listings and loading.

Two held-out rules exist, each fixed by weights that were trained without its files:

- :func:`is_heldout` (pixel detectors): 20% of *source groups* (patient, CT slice block, MRI subject, mammography
  patient, file) by a salted hash: every slice of a volume and both breasts of a woman fall on one side;
- ``benchmarks.datasets.is_holdout`` (tamper in-painter and localizer): the file name's CRC-32, listed by
  :func:`data_files`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Environment variable naming the data folder when ``--data`` is not given, and what that folder holds.
DATA_ENV = "MEDAUDIT_DATA"
DATA_FOLDERS = "a folder with cxr_kermany/, ct_lung_tcia/, derm_isic/, mri_brain/, mammo/ or any of them"
#: Held-out share of real source images kept out of all detector training (evaluation only), and its salt.
TEST_FRACTION = 0.2
TEST_SALT = "medaudit-heldout"
#: Data folders the localizer and the tamper benchmarks draw from.
FOLDERS = ("ct_lung_tcia", "cxr_kermany")
#: Axial slices taken from each NIfTI volume for detector training and evaluation (evenly spaced over the slices
#: that are not near-empty): one volume is one subject, so many slices of it add little.
SLICES_PER_VOLUME = 12


def source_group(path: str | os.PathLike) -> str:
    """Source id of a data file for splitting: the patient where the name tells it (Kermany ``person123_...``;
    IXI ``IXI012-HH-1211_T1`` and TCGA ``TCGA-FG-6692_FLAIR`` volumes: the subject, whose sequences are one group;
    mini-MIAS ``mdbNNN``: the woman, as odd and even numbers are her right and left breast), a block of 20
    consecutive slice numbers for ``ChestCT_N`` (neighbouring slices come from one scan), else the file name."""
    name = Path(path).name
    folder = Path(path).parent.name
    m = re.match(r"(person\d+)_", name) or re.match(r"(IXI\d+)-", name) or re.match(r"(TCGA-\w+-\w+)_", name)
    if m:
        return f"{folder}/{m.group(1)}"
    m = re.match(r"mdb(\d+)", name)
    if m:
        return f"{folder}/mias_patient{(int(m.group(1)) + 1) // 2}"
    m = re.match(r"ChestCT_(\d+)", name)
    if m:
        return f"{folder}/ct_block{int(m.group(1)) // 20}"
    return f"{folder}/{name}"


def is_heldout(path: str | os.PathLike) -> bool:
    """True for the files of the detectors' held-out split (never trained on)."""
    from forensics.training import source_split

    return source_split(source_group(path), val_fraction=0.0, test_fraction=TEST_FRACTION, salt=TEST_SALT) == "test"


def image_files(dirs: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files (by suffix; PGM too) below each folder, sorted per folder; a file given directly is kept as is.
    A NIfTI volume is one entry here and several slices in :func:`load_images`."""
    from forensics.io import has_image_suffix

    out: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            out.append(d)
            continue
        out += sorted(p for p in d.rglob("*") if p.is_file() and has_image_suffix(p))
    return out


def data_files(root: Path, holdout: bool, folders: tuple[str, ...] = FOLDERS) -> list[Path]:
    """PNG/JPEG files of ``folders`` below ``root`` on one side of ``benchmarks.datasets.is_holdout``, sorted."""
    from benchmarks.datasets import is_holdout

    out = []
    for f in folders:
        d = root / f
        if d.is_dir():
            out += [p for p in sorted(d.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                    and is_holdout(p.name) == holdout]
    return out


def read_frames(path: str | os.PathLike,
                slices_per_volume: int = SLICES_PER_VOLUME) -> list[tuple[str, np.ndarray]]:
    """(name, float32 pixels) of each image a data file holds: the file itself under its file name, or for a NIfTI
    volume ``slices_per_volume`` axial slices (normalized per volume, near-empty ones skipped) named
    ``<volume>_z<k>.png``, k counting the slices taken.

    Raises:
        InputError: for an unreadable or damaged file.
    """
    from forensics.io import load
    from forensics.io.training_sources import is_volume, volume_slices

    name = Path(path).name
    if not is_volume(path):
        return [(name, load(path).pixels)]
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".gz") else name[: -len(".nii")]
    return [(f"{stem}_z{k}.png", x) for k, x in enumerate(volume_slices(path, max_slices=slices_per_volume))]


def load_images(paths: Sequence[Path], progress: bool = False,
                slices_per_volume: int = SLICES_PER_VOLUME) -> tuple[list[np.ndarray], list[Path]]:
    """Pixels of every loadable file (errors are reported on stderr and skipped), short side capped at 512 px.

    A NIfTI volume gives its slices (:func:`read_frames`), each listed under the volume's path, so
    :func:`source_group` and :func:`is_heldout` keep a volume together.
    """
    from forensics.errors import InputError
    from forensics.training import preshrink

    ims, ok = [], []
    it = paths
    if progress:
        from tqdm import tqdm

        it = tqdm(paths, desc="loading", file=sys.stderr, leave=False)
    for p in it:
        try:
            frames = [x for _name, x in read_frames(p, slices_per_volume)]
        except InputError as exc:
            print(f"skipped {p}: {exc.code}: {exc.message}", file=sys.stderr)
            continue
        # keep colour for the caller, but cap the size: training and evaluation never need more than 512 px
        ims += [preshrink(px) if px.ndim == 2 else _cap_rgb(px) for px in frames]
        ok += [p] * len(frames)
    return ims, ok


def _cap_rgb(px: np.ndarray, side: int = 512) -> np.ndarray:
    import cv2

    h, w = px.shape[:2]
    s = side / min(h, w)
    if s < 1:
        px = cv2.resize(px, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return px.astype(np.float32)
