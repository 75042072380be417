"""Privacy filter at sampling time: drop samples that sit too close to a training image.

Two similarity measures, both in [0, 1]-ish units so one threshold ``S`` serves both:

* **NCC**: zero-mean normalised cross-correlation (Pearson correlation of pixels) between the grayscale sample and
  each reference image resized to the sample's size (short side to the sample's side, centre crop: the way
  ``generators.data`` prepared the training set). 1.0 is a copy up to brightness and contrast.
* **Hash similarity**: ``1 - hamming / 64`` of the two 64-bit perceptual hashes (``imagehash.phash``, DCT of a
  32 px thumbnail). It catches copies that NCC scores lower (small intensity curves, JPEG noise).

A sample is dropped when either similarity to its nearest reference is ``>= S``. The references are read once into
a :class:`ReferenceIndex` (downsampled float32 arrays + hash bits; optionally the flipped variants, for models
trained with flip augmentation), which saves to and loads from ``.npz`` without pickle.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: A sample this close (NCC) to a training image counts as a near copy.
NEAR_COPY_NCC = 0.95
HASH_BITS = 64
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def to_gray(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) in [0, 1] -> (N, H, W) float32 luma."""
    x = np.asarray(images, np.float32)
    if x.ndim == 4:
        x = x[..., :3] @ _LUMA if x.shape[-1] >= 3 else x[..., 0]
    if x.ndim != 3:
        raise ValueError(f"expected (N, H, W) or (N, H, W, 3) images, got shape {np.shape(images)}")
    return x


def fit_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """One grayscale-or-RGB image -> grayscale (height, width): scale so it covers the box, then centre crop."""
    import cv2

    im = np.asarray(image, np.float32)
    if im.ndim == 3:
        im = im[..., :3] @ _LUMA if im.shape[2] >= 3 else im[..., 0]
    h, w = im.shape
    s = max(height / h, width / w)
    nh, nw = max(height, round(h * s)), max(width, round(w * s))
    im = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (nh - height) // 2, (nw - width) // 2
    return np.clip(im[y : y + height, x : x + width], 0, 1).astype(np.float32)


def unit_rows(v: np.ndarray, center: bool = True) -> np.ndarray:
    """Flatten each item; subtract its mean (``center``) and scale to unit length, so dot products are NCC."""
    v = np.asarray(v, np.float64).reshape(len(v), -1)
    if center:
        v = v - v.mean(axis=1, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def nn_similarity(queries: np.ndarray, train: np.ndarray, center: bool = True, exclude_self: bool = False,
                  block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour similarity of each query to a training set.

    ``center=True`` -> normalised cross-correlation of flattened images (pixels); ``center=False`` -> cosine
    (features). ``exclude_self`` (queries *are* ``train``, same order) skips each row's own index (leave-one-out).

    Returns:
        (best similarity per query (N,), index of that training item (N,)).
    """
    q, t = unit_rows(queries, center), unit_rows(train, center)
    best = np.empty(len(q))
    arg = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), block):
        sim = q[s : s + block] @ t.T
        if exclude_self:
            idx = np.arange(s, min(s + block, len(q)))
            sim[idx - s, idx] = -np.inf
        arg[s : s + block] = sim.argmax(1)
        best[s : s + block] = sim.max(1)
    return best, arg


def phash_bits(gray: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes of (N, H, W) grayscale images in [0, 1] as a (N, 64) bool array."""
    import imagehash
    from PIL import Image

    out = np.empty((len(gray), HASH_BITS), bool)
    for i, im in enumerate(gray):
        u8 = np.round(np.clip(im, 0, 1) * 255).astype(np.uint8)
        out[i] = imagehash.phash(Image.fromarray(u8, mode="L")).hash.reshape(-1)
    return out


def hash_similarity(queries: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference by Hamming distance of hash bits: (``1 - distance / 64`` per query, its index)."""
    q = np.asarray(queries, np.int32)
    r = np.asarray(refs, np.int32)
    # hamming = bits differing = |q| + |r| - 2 q.r
    dist = q.sum(1, keepdims=True) + r.sum(1)[None, :] - 2 * (q @ r.T)
    arg = dist.argmin(1)
    return 1.0 - dist[np.arange(len(q)), arg] / HASH_BITS, arg


@dataclass
class ReferenceIndex:
    """Training images as the filter compares them: grayscale at one size, plus their perceptual hashes.

    Attributes:
        images: float32 (N, H, W) in [0, 1].
        hashes: bool (N, 64).
        names: per row, the file (relative to the folder given) and ``#hflip`` / ``#vflip`` / ``#hvflip`` for the
            flipped variants, ``@k`` for frame k of a multi-frame file.
        skipped: (file, reason) of unreadable files.
    """

    images: np.ndarray
    hashes: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def build(cls, paths: str | os.PathLike | Iterable[str | os.PathLike], size: int | tuple[int, int], *,
              flips: bool = False, include: Callable[[Path], bool] | None = None,
              window: Any = "lung", progress: bool = False) -> ReferenceIndex:
        """Read every image file below ``paths`` (recursive; DICOM series and frames too) once.

        Args:
            size: the samples' side (or (height, width)); references are resized to it.
            flips: also index the horizontally, vertically and doubly flipped copies (for models trained with
                flip augmentation, whose copies may come out mirrored).
            include: keep only files for which this returns True (e.g. not held out).
            window: HU window for CT DICOM (as in training, ``generators.data.load_frames``).

        Raises:
            generators.data.EmptyDatasetError: no readable image.
        """
        from .data import EmptyDatasetError, _candidate_files, load_frames

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = [Path(p) for p in paths]
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        files = [f for f in _candidate_files(paths) if include is None or include(f)]
        images: list[np.ndarray] = []
        names: list[str] = []
        skipped: list[tuple[str, str]] = []
        for n_done, f in enumerate(files, 1):
            rel = _relative(f, paths)
            try:
                frames, _ = load_frames(f, window)
            except Exception as e:  # noqa: BLE001 - an unreadable reference is reported, the index goes on
                skipped.append((rel, f"{type(e).__name__}: {e}"))
                continue
            for k, frame in enumerate(frames):
                im = fit_to(frame, h, w)
                tag = rel if len(frames) == 1 else f"{rel}@{k}"
                variants = [(im, tag)]
                if flips:
                    variants += [(im[:, ::-1], f"{tag}#hflip"), (im[::-1], f"{tag}#vflip"),
                                 (im[::-1, ::-1], f"{tag}#hvflip")]
                for v, name in variants:
                    images.append(np.ascontiguousarray(v))
                    names.append(name)
            if progress and (n_done % 100 == 0 or n_done == len(files)):
                print(f"reference index: {n_done}/{len(files)} files", file=sys.stderr, flush=True)
        if not images:
            where = ", ".join(str(p) for p in paths)
            raise EmptyDatasetError(f"no readable reference images in {where} ({len(files)} candidate file(s), "
                                    f"{len(skipped)} unreadable)")
        arr = np.stack(images).astype(np.float32)
        return cls(arr, phash_bits(arr), names, skipped)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index as ``.npz`` (plain arrays; loads without pickle), atomically."""
        import io

        from forensics.atomic import write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, images=self.images, hashes=self.hashes, names=np.array(self.names, dtype=str))
        return write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceIndex:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["images"].astype(np.float32), z["hashes"].astype(bool), [str(s) for s in z["names"]])

    def nearest(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """Per sample: nearest reference by NCC and by hash.

        Args:
            samples: (N, H, W) or (N, H, W, 3) in [0, 1] at the index's size.

        Returns:
            {ncc, ncc_ref, hash_sim, hash_ref}: arrays of length N (similarities, reference row indices).
        """
        gray = to_gray(samples)
        if gray.shape[1:] != self.size:
            raise ValueError(f"samples are {gray.shape[1]}x{gray.shape[2]} px, the reference index "
                             f"{self.size[0]}x{self.size[1]}: build it at the samples' size")
        ncc, ncc_ref = nn_similarity(gray, self.images, center=True)
        hsim, href = hash_similarity(phash_bits(gray), self.hashes)
        return {"ncc": ncc, "ncc_ref": ncc_ref, "hash_sim": hsim, "hash_ref": href}


def _relative(f: Path, roots: list[Path]) -> str:
    for r in roots:
        try:
            return f.relative_to(r).as_posix() if r.is_dir() else f.name
        except ValueError:
            continue
    return f.name


class PrivacyFilter:
    """Keeps the samples whose nearest reference is below ``max_similarity`` by NCC *and* by hash; counts drops.

    Args:
        index: the training images (:class:`ReferenceIndex`).
        max_similarity: ``S``; a sample with NCC >= S or hash similarity >= S to any reference is dropped.
    """

    def __init__(self, index: ReferenceIndex, max_similarity: float):
        if not 0.0 < float(max_similarity) <= 1.0:
            raise ValueError(f"max similarity must be in (0, 1], got {max_similarity}")
        self.index = index
        self.max_similarity = float(max_similarity)
        self.drawn = 0
        self.dropped_ncc = 0
        self.dropped_hash = 0  # dropped by the hash alone (NCC was below S)
        self.kept_max_ncc = -1.0
        self.kept_max_hash = 0.0
        self.examples: list[dict[str, Any]] = []  # the first few drops: how close they were

    def judge(self, samples: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(bool mask, True where a sample is far enough from every reference; the nearest-reference arrays).

        Counts nothing: pass the candidates actually used to :meth:`account`.
        """
        nn = self.index.nearest(samples)
        return (nn["ncc"] < self.max_similarity) & (nn["hash_sim"] < self.max_similarity), nn

    def account(self, nn: dict[str, np.ndarray]) -> None:
        """Count candidates (the ``nn`` of :meth:`judge`, possibly cut to the ones used) as drawn/kept/dropped."""
        by_ncc = nn["ncc"] >= self.max_similarity
        by_hash = (nn["hash_sim"] >= self.max_similarity) & ~by_ncc
        keep = ~(by_ncc | by_hash)
        self.drawn += len(keep)
        self.dropped_ncc += int(by_ncc.sum())
        self.dropped_hash += int(by_hash.sum())
        if keep.any():
            self.kept_max_ncc = max(self.kept_max_ncc, float(nn["ncc"][keep].max()))
            self.kept_max_hash = max(self.kept_max_hash, float(nn["hash_sim"][keep].max()))
        for i in np.flatnonzero(~keep):
            if len(self.examples) < 5:
                # similarities only: reference file names can carry patient ids (Kermany's person<N>)
                self.examples.append({"ncc": round(float(nn["ncc"][i]), 4),
                                      "hash_similarity": round(float(nn["hash_sim"][i]), 4)})

    def keep(self, samples: np.ndarray) -> np.ndarray:
        """:meth:`judge` and :meth:`account` in one: the bool mask of samples to keep."""
        mask, nn = self.judge(samples)
        self.account(nn)
        return mask

    @property
    def dropped(self) -> int:
        return self.dropped_ncc + self.dropped_hash

    def summary(self) -> dict[str, Any]:
        """Counts for the report: drawn, kept, dropped (by NCC, by hash only), the threshold, the index size."""
        return {
            "max_similarity": self.max_similarity,
            "references": len(self.index),
            "drawn": self.drawn,
            "kept": self.drawn - self.dropped,
            "dropped": self.dropped,
            "dropped_ncc": self.dropped_ncc,
            "dropped_hash_only": self.dropped_hash,
            "dropped_share": round(self.dropped / self.drawn, 4) if self.drawn else 0.0,
            "kept_max_ncc": round(self.kept_max_ncc, 4) if self.kept_max_ncc >= 0 else None,
            "kept_max_hash_similarity": round(self.kept_max_hash, 4),
            "examples": self.examples,
        }


def filter_for(name_or_ckpt: str | os.PathLike, reference: str | os.PathLike | Iterable[str | os.PathLike],
               max_similarity: float, *, progress: bool = False) -> PrivacyFilter:
    """A :class:`PrivacyFilter` for one generator: references read at its output size, with flipped variants when
    it was trained with flips and its CT window (from its ``config.json``)."""
    from .api import generator_config

    cfg = generator_config(name_or_ckpt)
    data = cfg.get("data") or {}
    size = int(cfg.get("output_resolution") or cfg["resolution"])
    window = data.get("window", "lung")
    index = ReferenceIndex.build(reference, size, flips=bool(data.get("hflip") or data.get("vflip")),
                                 window=tuple(window) if isinstance(window, list) else window, progress=progress)
    return PrivacyFilter(index, max_similarity)
