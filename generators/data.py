"""Training sets for the generators: a folder (recursive) of PNG / JPEG / DICOM files, or a DICOM series.

Images are read with ``forensics.io.load``, brought to [0, 1] (CT DICOM: Hounsfield units through a lung or
soft-tissue window; everything else: the loader's pixels), resized with area interpolation so the short side
matches the resolution, center-cropped to a square and kept in memory as one float32 tensor. Augmentation is
done per batch on the tensor: small shifts and scales and brightness/contrast jitter. Horizontal flips are off
by default because chest X-rays have laterality (heart on the left); turn them on for dermoscopy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from forensics.io import has_image_suffix, load

from . import slices

# HU windows as (center, width)
WINDOWS = {"lung": (-600.0, 1500.0), "soft_tissue": (40.0, 400.0), "bone": (400.0, 1800.0)}


class EmptyDatasetError(ValueError):
    """No readable image was found in the given paths."""


def apply_window(hu: np.ndarray, window: str | tuple[float, float] = "lung") -> np.ndarray:
    """Map Hounsfield units to [0, 1] through a window.

    Args:
        hu: array of HU values.
        window: a name in ``WINDOWS`` or ``(center, width)`` in HU.

    Returns:
        float32 array of the same shape in [0, 1].
    """
    center, width = WINDOWS[window] if isinstance(window, str) else window
    lo = center - width / 2.0
    return np.clip((np.asarray(hu, np.float32) - lo) / float(width), 0.0, 1.0).astype(np.float32)


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def _candidate_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    if name.startswith("."):
                        continue
                    f = Path(root) / name
                    if has_image_suffix(f) or slices.handles(f) or (f.suffix == "" and _is_dicom(f)):
                        files.append(f)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return files


def load_frames(
    path: str | os.PathLike, window: str | tuple[float, float] = "lung"
) -> tuple[list[np.ndarray], str | None]:
    """Read one file as a list of frames float32 (H, W) or (H, W, 3) in [0, 1], plus its DICOM modality.

    Uses ``forensics.io.load``; CT DICOM goes through the HU window from ``MedicalImage.stored``; NIfTI volumes give
    their axial slices and PGM its picture (``generators.slices``).
    """
    if slices.handles(path):
        return slices.load_frames(path), None
    img = load(Path(path))
    modality = getattr(img, "modality", None)
    stored = getattr(img, "stored", None)
    pixels = np.asarray(img.pixels, dtype=np.float32)
    if modality == "CT" and stored is not None:
        hu = np.asarray(stored, dtype=np.float32)
        frames = [hu] if hu.ndim == 2 else list(hu)
        return [apply_window(f, window) for f in frames], modality
    frames_n = int(getattr(img, "frames", 1) or 1)
    if frames_n > 1 and pixels.ndim in (3, 4) and pixels.shape[0] == frames_n:
        return [np.clip(f, 0, 1) for f in pixels], modality
    return [np.clip(pixels, 0, 1)], modality


def _is_colour(im: np.ndarray, tol: float = 2.0 / 255.0) -> bool:
    if im.ndim != 3:
        return False
    return bool(np.abs(im[..., 0] - im[..., 1]).mean() > tol or np.abs(im[..., 1] - im[..., 2]).mean() > tol)


def resize_center_crop(im: np.ndarray, size: int) -> np.ndarray:
    """Resize (area interpolation when shrinking, cubic when enlarging) so the short side is ``size``, then
    center-crop to ``size`` x ``size``."""
    import cv2

    h, w = im.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    im = cv2.resize(im, (nw, nh), interpolation=interp)
    y, x = (nh - size) // 2, (nw - size) // 2
    return np.clip(im[y : y + size, x : x + size], 0, 1).astype(np.float32)


class ImageDataset:
    """In-memory image set at a fixed square resolution.

    Args:
        paths: files and/or folders (searched recursively) of PNG, JPEG or DICOM (a DICOM series folder gives
            one image per slice; multi-frame DICOM one per frame).
        resolution: output side in pixels (64 or 128 are typical; anything >= 8 works).
        channels: 1, 3 or ``"auto"`` (3 when most images are colour).
        window: HU window for CT DICOM: ``"lung"``, ``"soft_tissue"``, ``"bone"`` or ``(center, width)``.
        augment: random shift (±``max_shift`` of the side), scale (1 ± ``max_scale``), brightness/contrast
            jitter (± ``max_intensity``) per batch.
        hflip / vflip: random flips (off by default: chest X-rays have laterality).
        modality: recorded in the checkpoint; default from DICOM headers.
        max_images: keep the first N (sorted path order) images.
        labels: a labels CSV (``file`` and ``class`` columns, see ``generators.labels.read_labels``) or a
            {file: class} mapping; each image gets its file's class (``""`` when the file is not listed).
        seed: not used for loading (order is sorted); batches use the generator passed to ``sample_batch``.

    Attributes:
        images: float32 tensor (N, C, H, W) in [0, 1].
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        resolution: int = 64,
        channels: int | str = "auto",
        window: str | tuple[float, float] = "lung",
        augment: bool = True,
        hflip: bool = False,
        vflip: bool = False,
        max_shift: float = 0.04,
        max_scale: float = 0.05,
        max_intensity: float = 0.05,
        modality: str | None = None,
        max_images: int | None = None,
        name: str | None = None,
        licence: str | None = None,
        labels: str | os.PathLike | dict[str, str] | None = None,
    ):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        self.resolution = int(resolution)
        self.window = window
        self.augment = augment
        self.hflip, self.vflip = hflip, vflip
        self.max_shift, self.max_scale, self.max_intensity = max_shift, max_scale, max_intensity
        self.licence = licence
        files = _candidate_files(self.paths)
        label_map = _label_map(labels)
        frames: list[np.ndarray] = []
        frame_labels: list[str] = []
        modalities: set[str] = set()
        self.skipped: list[tuple[str, str]] = []
        for f in files:
            if max_images is not None and len(frames) >= max_images:
                break
            try:
                fr, mod = load_frames(f, window)
            except Exception as e:  # noqa: BLE001 - a bad file is skipped and reported, the set goes on
                self.skipped.append((str(f), f"{type(e).__name__}: {e}"))
                continue
            if mod:
                modalities.add(mod)
            frames.extend(fr)
            if label_map is not None:
                frame_labels += [_file_label(f, self.paths, label_map)] * len(fr)
        if max_images is not None:
            frames = frames[:max_images]
            frame_labels = frame_labels[:max_images]
        if not frames:
            where = ", ".join(str(p) for p in self.paths)
            raise EmptyDatasetError(
                f"no readable PNG/JPEG/DICOM images found in {where} "
                f"({len(files)} candidate file(s), {len(self.skipped)} unreadable)"
            )
        if channels == "auto":
            colour = sum(_is_colour(f) for f in frames[:200])
            channels = 3 if colour * 2 > min(len(frames), 200) else 1
        self.channels = int(channels)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1, 3 or 'auto', got {channels!r}")
        arr = np.stack([_to_channels(resize_center_crop(f, self.resolution), self.channels) for f in frames])
        self.images = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
        self.modality = modality or (sorted(modalities)[0] if len(modalities) == 1 else None)
        self.name = name or (self.paths[0].name if len(self.paths) == 1 else "+".join(p.name for p in self.paths))
        #: per image, its class from ``labels`` ("" unlabelled); None when no labels were given
        self.labels: list[str] | None = frame_labels if label_map is not None else None

    def class_counts(self) -> dict[str, int]:
        """Images per class (``""`` = not in the labels CSV), sorted by class; empty without labels."""
        from collections import Counter

        return dict(sorted(Counter(self.labels or []).items()))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]

    def describe(self) -> dict[str, Any]:
        """What the checkpoint records about its training data (names only, no absolute paths)."""
        d: dict[str, Any] = {
            "name": self.name,
            "n_images": len(self),
            "modality": self.modality,
            "channels": self.channels,
            "resolution": self.resolution,
            "augment": self.augment,
            "hflip": self.hflip,
            "vflip": self.vflip,
            "window": self.window if isinstance(self.window, str) else list(self.window),
        }
        if self.licence:
            d["licence"] = self.licence
        if self.labels is not None:
            d["classes"] = self.class_counts()
        return d

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random batch (with replacement), augmented when ``augment``: float32 (B, C, H, W) in [0, 1]."""
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        x = self.images[idx]
        if self.augment:
            x = self._augment(x, generator)
        return x

    def _augment(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        b = x.shape[0]

        def u(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(b, generator=g)

        scale = 1.0 / u(1 - self.max_scale, 1 + self.max_scale)
        tx, ty = u(-self.max_shift, self.max_shift) * 2, u(-self.max_shift, self.max_shift) * 2
        sx = scale.clone()
        sy = scale.clone()
        if self.hflip:
            sx = sx * torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
        if self.vflip:
            sy = sy * torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = sx, sy, tx, ty
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        contrast = u(1 - self.max_intensity, 1 + self.max_intensity).view(b, 1, 1, 1)
        bright = u(-self.max_intensity, self.max_intensity).view(b, 1, 1, 1)
        return ((x - 0.5) * contrast + 0.5 + bright).clamp(0, 1)


def _label_map(labels: str | os.PathLike | dict[str, str] | None) -> dict[str, str] | None:
    if labels is None or isinstance(labels, dict):
        return labels
    from .labels import read_labels

    return read_labels(labels)


def _file_label(f: Path, roots: list[Path], label_map: dict[str, str]) -> str:
    from .labels import label_for

    for root in roots:
        if root.is_dir():
            found = label_for(f, root, label_map)
            if found is not None:
                return found
    found = label_for(f, None, label_map)
    return "" if found is None else found


def _to_channels(im: np.ndarray, channels: int) -> np.ndarray:
    if im.ndim == 2:
        im = im[..., None]
    if channels == 1 and im.shape[2] == 3:
        im = (im @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    elif channels == 3 and im.shape[2] == 1:
        im = np.repeat(im, 3, axis=2)
    return im.astype(np.float32)
