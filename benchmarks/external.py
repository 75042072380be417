"""The external validation folder (third-party generators' images and real sets): what each set is, how it loads,
and the one normalization both classes go through before any detector sees them.

Layout (``--external DIR`` or ``$MEDAUDIT_EXTERNAL``)::

    DIR/synthetic/<set>/manifest.csv + files      (columns file, repo, commit, path, blob, bytes, sha256)
    DIR/real/<set>/manifest.csv + files

Only files the manifest lists are read, and only when their bytes match its sha256 (else an error note; the run goes
on). **Validation only: nothing here is ever trained or tuned on.**

Normalization (:func:`normalize`, identical for both classes, so container, size, bit depth, colour channels and
metadata cannot separate them): decode -> the modality's channels (gray for X-ray, CT, MRI, OCT, mammography: the
OCT reals are exactly R = G = B while their fakes carry chroma; RGB for dermoscopy and fundus) -> square centre
crop -> one fixed kernel (OpenCV area) to ``size`` px (256: the native size of every synthetic set here) -> 8-bit
PNG without metadata. File names tag a set's modality for the harness (MINIM's ``example__oct__3.jpg``) and never
reach a detector: images are scored from their normalized bytes under a neutral name.

Pairs (:data:`CATALOG`): each synthetic set is measured against its within-domain real counterparts, as the
folder's README asks: the latent-diffusion and VAE chest X-rays against the 4 matched Indiana reals *and* against
the 250 OpenIST adult chest X-rays; SL-StyleGAN dermoscopy against HAM10000; CycleGAN OCT against its matched reals.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.train_detector import MODALITY_PREFIX

EXTERNAL_ENV = "MEDAUDIT_EXTERNAL"
#: Side of the normalized square: the native size of every third-party synthetic set in the folder.
NORMALIZED_SIZE = 256
#: Bumped whenever :func:`normalize` changes (it is part of every stored figure's description).
NORMALIZATION_VERSION = 1
#: Modalities the bundled detectors were trained on (their data folders' generator prefixes: cxr, ct, derm, mri,
#: mammo); sets of any other modality must come out "not assessed".
COVERED_MODALITIES = frozenset(prefix.rstrip("_") for prefix in MODALITY_PREFIX.values())
#: Modalities shown in colour; every other one is converted to gray.
COLOUR_MODALITIES = frozenset({"derm", "fundus"})


@dataclass(frozen=True)
class SetInfo:
    """What a folder holds: its modality (or, for mixed folders, a file-name tag -> modality map) and, for synthetic
    sets, the real sets it is compared with."""

    modality: str = "unknown"
    counterparts: tuple[str, ...] = ()
    by_tag: dict[str, str] = field(default_factory=dict)

    def modality_of(self, file: str) -> str:
        for tag, modality in self.by_tag.items():
            if f"__{tag}__" in file:
                return modality
        return self.modality


_CXR_REALS = ("cxr_iu_cxrdiffusion", "cxr_openist")
CATALOG: dict[str, SetInfo] = {
    "cxr_ldm_iu": SetInfo("cxr", _CXR_REALS),
    "cxr_vae_recon_iu": SetInfo("cxr", _CXR_REALS),
    "derm_stylegan_slgan": SetInfo("derm", ("derm_ham10000_artefact",)),
    "oct_cyclegan_pwc": SetInfo("oct", ("oct_pwc",)),
    "cxr_iu_cxrdiffusion": SetInfo("cxr"),
    "cxr_openist": SetInfo("cxr"),
    "derm_ham10000_artefact": SetInfo("derm"),
    "oct_pwc": SetInfo("oct"),
    "minim_examples": SetInfo(by_tag={"chest-ct": "ct", "brain-mri": "mri", "breast-mri": "breast_mri",
                                      "fundus": "fundus", "oct": "oct", "cxr": "cxr"}),
}
_PREFIX_MODALITY = {"cxr": "cxr", "ct": "ct", "derm": "derm", "oct": "oct", "mri": "mri", "mammo": "mammo",
                    "fundus": "fundus"}


def info(name: str) -> SetInfo:
    """The catalog entry of a set; an unknown folder gets the modality its name starts with (``oct_...``)."""
    if name in CATALOG:
        return CATALOG[name]
    return SetInfo(_PREFIX_MODALITY.get(name.split("_", 1)[0], "unknown"))


@dataclass(frozen=True)
class ExternalImage:
    """One normalized image: ``group`` is the set, or ``set:modality`` in a mixed folder (MINIM)."""

    group: str
    label: int  # 1 synthetic, 0 real
    modality: str
    file: str  # the file's name in its folder (for error notes; never given to a detector)
    png: bytes  # the normalized 8-bit PNG

    @property
    def covered(self) -> bool:
        return self.modality in COVERED_MODALITIES

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()

    def pixels(self) -> np.ndarray:
        """float32 (H, W) or (H, W, 3) in [0, 1], decoded from the normalized PNG."""
        import cv2

        x = cv2.imdecode(np.frombuffer(self.png, np.uint8), cv2.IMREAD_UNCHANGED)
        if x.ndim == 3:
            x = np.ascontiguousarray(x[..., ::-1])
        return x.astype(np.float32) / 255.0


@dataclass
class ExternalSet:
    root: Path
    images: list[ExternalImage]
    notes: list[str]

    def groups(self, label: int | None = None) -> list[str]:
        seen: list[str] = []
        for im in self.images:
            if (label is None or im.label == label) and im.group not in seen:
                seen.append(im.group)
        return seen

    def of(self, group: str) -> list[ExternalImage]:
        return [im for im in self.images if im.group == group]

    def pairs(self) -> list[tuple[str, str]]:
        """(synthetic group, real group) for every catalog pairing present, in folder order."""
        reals = set(self.groups(0))
        return [(g, r) for g in self.groups(1) for r in info(g).counterparts if r in reals]

    @property
    def hash(self) -> str:
        """sha256 (16 hex) of what the detectors see: every normalized image with its group and label."""
        h = hashlib.sha256(f"normalization-{NORMALIZATION_VERSION}".encode())
        for im in sorted(self.images, key=lambda i: (i.group, i.file)):
            h.update(f"{im.group}|{im.label}|{im.sha256}\n".encode())
        return h.hexdigest()[:16]


def normalize(pixels: np.ndarray, modality: str, size: int = NORMALIZED_SIZE) -> np.ndarray:
    """The modality's channels, square centre crop, OpenCV area resize to ``size``, 8-bit values (float32 out)."""
    import cv2

    from forensics.formatpath import to_gray

    x = np.asarray(pixels, dtype=np.float32)
    if modality in COLOUR_MODALITIES:
        x = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x[..., :3]
    else:
        x = to_gray(x)
    h, w = x.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    x = np.ascontiguousarray(x[y0 : y0 + s, x0 : x0 + s])
    if s != size:
        x = cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)
    return (np.round(np.clip(x, 0, 1) * 255) / 255).astype(np.float32)


def resolve(external: str | os.PathLike | None) -> Path | None:
    """The external folder from the argument or ``$MEDAUDIT_EXTERNAL``; None when neither names a folder."""
    value = external if external is not None else os.environ.get(EXTERNAL_ENV) or None
    return Path(value) if value is not None and Path(value).is_dir() else None


def _manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def load_external(root: str | os.PathLike, size: int = NORMALIZED_SIZE, progress: bool = False) -> ExternalSet:
    """Every manifest-listed image of ``root/synthetic/*`` and ``root/real/*``, verified and normalized.

    A folder without a manifest, a missing file, a sha256 mismatch or an undecodable file becomes a note; the rest
    loads.
    """
    from forensics.errors import InputError
    from forensics.formatpath import encode_png
    from forensics.io import load

    root = Path(root)
    if not (root / "synthetic").is_dir() and not (root / "real").is_dir():
        raise FileNotFoundError(f"{root} has neither synthetic/ nor real/: not an external validation folder")
    images: list[ExternalImage] = []
    notes: list[str] = []
    folders = [(1, d) for d in sorted((root / "synthetic").glob("*")) if d.is_dir()]
    folders += [(0, d) for d in sorted((root / "real").glob("*")) if d.is_dir()]
    for label, folder in folders:
        if not (folder / "manifest.csv").is_file():
            notes.append(f"{folder.parent.name}/{folder.name}: no manifest.csv, skipped")
            continue
        meta = info(folder.name)
        rows = _manifest(folder)
        if progress:
            import sys

            print(f"external {folder.parent.name}/{folder.name}: {len(rows)} files", file=sys.stderr, flush=True)
        for row in rows:
            name = row.get("file", "")
            path = folder / name
            if not name or "/" in name or not path.is_file():
                notes.append(f"{folder.name}/{name}: listed in the manifest but missing")
                continue
            data = path.read_bytes()
            if row.get("sha256") and hashlib.sha256(data).hexdigest() != row["sha256"]:
                notes.append(f"{folder.name}/{name}: sha256 differs from the manifest, skipped")
                continue
            modality = meta.modality_of(name)
            try:
                # a neutral name: the loader sniffs the format from the bytes, and no detector sees the file name
                px = load("image", data=data).pixels
            except InputError as exc:
                notes.append(f"{folder.name}/{name}: {exc.code}: {exc.message}")
                continue
            group = folder.name if not meta.by_tag else f"{folder.name}:{modality}"
            images.append(ExternalImage(group, label, modality, name, encode_png(normalize(px, modality, size))))
    return ExternalSet(root, images, notes)


_SAFE = re.compile(r"[^A-Za-z0-9._:~-]")


def pair_name(fake: str, real: str) -> str:
    """The subset name of a pair in the results store: ``fake~real``."""
    return _SAFE.sub("_", f"{fake}~{real}")
