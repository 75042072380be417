"""Benchmark sets: real images from a folder plus fakes from named generators, tagged, split, hashed and cached.

Every item carries ``modality`` (cxr, ct, derm, ...), ``source`` (the real data folder, or the generator name),
``generator`` (None for reals), ``family`` (``real``, ``gan``, ``vae``, ``ddpm``, ...), ``split`` and the sha256 of
the cached file, so the **dataset hash** (sha256 of the canonical item list + the build recipe) names exactly what a
result was measured on.

Variants:

- ``matched`` (default, the format-matched control): real and synthetic images take the *same* path - decode ->
  square center crop -> resize to ``size`` (area when shrinking, cubic when enlarging) -> re-encode (JPEG quality
  75-95 or PNG, drawn per item with the same odds for both classes) -> decode -> PNG with no metadata. No detector
  can win on container, bit depth, size or compression history.
- ``raw``: files as they are: the real files decoded as stored (their format, bit depth and compression history
  kept; the short side capped at 512 px by area averaging so the set fits in memory - every detector here looks at
  256 px or less; a volume's slices, which have no file of their own, as 16-bit PNG) and the generators' output at
  native resolution as PNG. The gap between ``raw`` and ``matched`` shows how much a detector leans on format.

Reals: every image file of the data folders, a NIfTI volume (``mri_brain/``) as its axial slices
(``benchmarks.datafiles.read_frames``: one item per slice, ``real/mri_brain/<volume>_z<k>.png``).

Splits: real files are split by source (patient for Kermany chest X-rays, 20-slice block for CT, subject for brain
MRI, woman for mini-MIAS, file otherwise; ``benchmarks.datafiles.source_group``): every slice of a volume falls in
one split. ``test`` is exactly the held-out 20% that the bundled detectors never trained on
(``benchmarks.datafiles.is_heldout``); the rest is split train/val 75/25 by a seeded hash. Fakes are sampled per
split with their own seeds, none equal to the seed the bundled detectors trained on.

Cache: ``.cache/medaudit-bench/<dataset-hash>/`` holds the PNGs and ``manifest.json``; ``index.json`` beside it maps
a build recipe to its dataset hash, so a second build with the same recipe is a read. Never commit the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensics.atomic import write_bytes
from forensics.formatpath import encode_png

DEFAULT_CACHE = Path(".cache") / "medaudit-bench"
#: Data folder -> modality tag, and the generator-name prefix of that modality.
FOLDER_MODALITY = {"cxr_kermany": "cxr", "ct_lung_tcia": "ct", "derm_isic": "derm", "mri_brain": "mri",
                   "mammo": "mammo"}
#: Sampling seeds of benchmark fakes per split (the bundled detectors trained on seed 0, their evaluation 100000).
FAKE_SEEDS = {"train": 300_000, "val": 310_000, "test": 320_000}
RAW_CAP = 512


@dataclass(frozen=True)
class Item:
    """One image of a benchmark set. ``file`` is relative to the set's folder (or absolute for raw real files)."""

    id: str
    label: int  # 1 synthetic, 0 real
    modality: str
    source: str
    generator: str | None
    family: str
    split: str  # train | val | test
    group: str  # split unit (patient, slice block, generator sample)
    file: str
    sha256: str
    native: int | None = None  # generator's native side in px (fakes)


@dataclass
class BenchmarkSet:
    """Items + where their files are. Pixels load as float32 (H, W) or (H, W, 3) in [0, 1]."""

    root: Path
    items: list[Item]
    recipe: dict[str, Any]
    hash: str = ""
    notes: list[str] = field(default_factory=list)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = dataset_hash(self.items, self.recipe)

    def select(self, **where: Any) -> list[Item]:
        """Items whose fields equal the given values (a list/tuple/set value means "one of")."""

        def ok(it: Item) -> bool:
            for k, v in where.items():
                got = getattr(it, k)
                if isinstance(v, (list, tuple, set, frozenset)):
                    if got not in v:
                        return False
                elif got != v:
                    return False
            return True

        return [it for it in self.items if ok(it)]

    def pixels(self, item: Item) -> np.ndarray:
        """float32 pixels in [0, 1] of one item (kept in memory as uint8/uint16 after the first read)."""
        raw = self._cache.get(item.id)
        if raw is None:
            path = Path(item.file) if os.path.isabs(item.file) else self.root / item.file
            raw = _read_png(path) if path.suffix == ".png" else _read_any(path)
            self._cache[item.id] = raw
        top = 65535.0 if raw.dtype == np.uint16 else 255.0
        return (raw.astype(np.float32) / top).astype(np.float32)

    def attach(self, item: Item, pixels: np.ndarray) -> None:
        """Hold the pixels of an item that lives outside the set's folder (e.g. an external validation image) in
        memory, so :meth:`pixels` can serve it; it does not join ``items`` (nor the dataset hash)."""
        self._cache[item.id] = _quantize(pixels)

    def arrays(self, items: Sequence[Item]) -> tuple[list[np.ndarray], np.ndarray]:
        """(pixels list, labels (n,)) of ``items``."""
        return [self.pixels(it) for it in items], np.asarray([it.label for it in items], dtype=int)

    @property
    def generators(self) -> list[str]:
        return sorted({it.generator for it in self.items if it.generator})

    def family_of(self, generator: str) -> str:
        return next(it.family for it in self.items if it.generator == generator)

    def summary(self) -> dict[str, Any]:
        """Counts per (source, split)."""
        out: dict[str, dict[str, int]] = {}
        for it in self.items:
            out.setdefault(it.source, {}).setdefault(it.split, 0)
            out[it.source][it.split] += 1
        return out


def dataset_hash(items: Iterable[Item], recipe: dict[str, Any]) -> str:
    """sha256 (16 hex) of the canonical item list and the recipe: changes when any item or its bytes change."""
    rows = sorted(json.dumps(asdict(it), sort_keys=True) for it in items)
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for r in rows:
        h.update(r.encode())
    return h.hexdigest()[:16]


def is_holdout(name: str | os.PathLike) -> bool:
    """True for the fixed 20 % of data files (by file name: CRC-32 % 5 == 0) kept out of training the tamper
    in-painter and the localizer, so that the tamper, screen and localization benchmarks measure unseen images.

    The bundled weights were trained without these files: changing the rule mixes training files into the benchmarks.
    """
    return zlib.crc32(os.path.basename(str(name)).encode()) % 5 == 0


# ---------------------------------------------------------------------------------------------- image i/o
def _read_png(path: Path) -> np.ndarray:
    import cv2

    x = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if x is None:
        raise OSError(f"cannot decode {path}")
    if x.ndim == 3:
        x = np.ascontiguousarray(x[..., :3][..., ::-1])
    return x


def _read_any(path: Path) -> np.ndarray:
    """A raw real file through ``forensics.io.load``, capped at RAW_CAP px, as uint16 (keeps bit depth)."""
    from forensics.io import load

    x = _cap(load(path).pixels, RAW_CAP)
    return np.round(np.clip(x, 0, 1) * 65535).astype(np.uint16)


def _cap(x: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = x.shape[:2]
    s = side / min(h, w)
    if s < 1:
        x = cv2.resize(x, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.asarray(x, dtype=np.float32)


def square_resize(x: np.ndarray, size: int) -> np.ndarray:
    """Center crop to a square on the short side, resize to ``size`` (area shrinking, cubic enlarging); keeps
    channels."""
    import cv2

    x = np.asarray(x, dtype=np.float32)
    h, w = x.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    x = x[y0 : y0 + s, x0 : x0 + s]
    if s != size:
        x = cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_CUBIC)
    return np.clip(x, 0, 1).astype(np.float32)


def matched_path(x: np.ndarray, size: int, rng: np.random.Generator, p_jpeg: float = 0.5) -> np.ndarray:
    """The format-matched control path: crop + resize to ``size``, then JPEG (quality 75-95) or PNG round trip."""
    from forensics.formatpath import jpeg_roundtrip, png_roundtrip

    x = square_resize(x, size)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if rng.random() < p_jpeg:
        return jpeg_roundtrip(x, int(rng.integers(75, 96)))
    return png_roundtrip(x, 8)


def _item_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")])


# ---------------------------------------------------------------------------------------------- building
def _generator_info(name: str) -> tuple[str, str, int]:
    """(modality tag, family, native side) of a bundled generator or checkpoint dir."""
    from generators.api import generator_config

    cfg = generator_config(name)
    prefix = name.split("_", 1)[0]
    modality = prefix if prefix in FOLDER_MODALITY.values() else str(cfg.get("modality") or "unknown").lower()
    return modality, str(cfg["family"]), int(cfg["resolution"])


def _split_reals(paths: Sequence[Path], seed: int) -> list[tuple[Path, str, str]]:
    from benchmarks.datafiles import is_heldout, source_group
    from forensics.training import source_split

    out = []
    for p in paths:
        g = source_group(p)
        split = "test" if is_heldout(p) else source_split(g, val_fraction=0.25, salt=f"medaudit-bench-{seed}")
        out.append((p, g, split))
    return out


def _real_files(p: Path, folder: str, variant: str, size: int, seed: int, work: Path) -> list[tuple[str, str, str]]:
    """(item id, file, sha256) of each image of real file ``p`` (one, or a volume's slices), written to ``work``
    unless ``raw`` keeps the file as stored (a volume slice has no stored file: it is written at 16 bits)."""
    from benchmarks.datafiles import read_frames
    from forensics.io.training_sources import is_volume

    if variant == "raw" and not is_volume(p):
        return [(f"real/{folder}/{p.name}", str(p.resolve()), hashlib.sha256(p.read_bytes()).hexdigest())]
    out = []
    for name, x in read_frames(p):
        iid = f"real/{folder}/{name}"
        if variant == "matched":
            data = encode_png(matched_path(x, size, _item_rng(seed, iid)))
        else:
            data = encode_png(_cap(x, RAW_CAP), bits=16)
        rel = f"real/{folder}/{Path(name).stem}.png"
        write_bytes(work / rel, data)
        out.append((iid, rel, hashlib.sha256(data).hexdigest()))
    return out


def build_dataset(
    data_dir: str | os.PathLike | None,
    generators: Sequence[str] | None = None,
    *,
    fakes: dict[str, int] | None = None,
    max_real: int | None = None,
    size: int = 256,
    variant: str = "matched",
    seed: int = 0,
    cache_root: str | os.PathLike | None = DEFAULT_CACHE,
    progress: bool = False,
) -> BenchmarkSet:
    """Build (or read from the cache) a benchmark set.

    Args:
        data_dir: folder with ``cxr_kermany/``, ``ct_lung_tcia/``, ``derm_isic/``, ``mri_brain/``, ``mammo/`` (or
            any subset); None or absent means no real images (a clear error: a benchmark needs both classes).
        generators: bundled names or checkpoint dirs (default: every bundled generator the detectors train against
            whose modality has a data folder).
        fakes: samples per generator and split, default ``{"train": 150, "val": 50, "test": 100}``.
        max_real: cap on real files per data folder (first files in sorted order; None = all; a volume is one
            file).
        size: side of the matched images.
        variant: ``matched`` or ``raw`` (see the module docstring).
        seed: seeds the train/val split of reals and the per-item format draws.
        cache_root: where built sets live (None: a temporary folder, not reused).
    """
    from benchmarks.datafiles import DATA_FOLDERS, SLICES_PER_VOLUME, image_files
    from benchmarks.train_detector import bundled_generator_names
    from forensics.io.training_sources import is_volume

    if variant not in ("matched", "raw"):
        raise ValueError(f"variant must be 'matched' or 'raw', got {variant!r}")
    if data_dir is None or not Path(data_dir).is_dir():
        raise FileNotFoundError(f"real images not found at {data_dir!s}: a benchmark set needs a folder of real "
                                f"images (--data DIR: {DATA_FOLDERS})")
    data_dir = Path(data_dir)
    fakes = dict(fakes or {"train": 150, "val": 50, "test": 100})
    folders = [f for f in FOLDER_MODALITY if (data_dir / f).is_dir()]
    if generators is None:
        mods = {FOLDER_MODALITY[f] for f in folders}
        generators = [b for b in bundled_generator_names() if b.split("_", 1)[0] in mods]
    generators = list(generators)
    # reals of a modality without fakes would teach "this modality = real": leave them out
    gen_mods = {_generator_info(g)[0] for g in generators}
    folders = [f for f in folders if FOLDER_MODALITY[f] in gen_mods]
    if not folders:
        raise ValueError(f"no data folder matches the generators' modalities ({', '.join(sorted(gen_mods))})")
    files = {f: image_files([data_dir / f])[: max_real or None] for f in folders}
    recipe = {
        "format": 1, "variant": variant, "size": size if variant == "matched" else None, "seed": seed,
        "fakes": fakes, "generators": generators, "data_dir": str(data_dir.resolve()),
        "real_files": {f: hashlib.sha256("\n".join(p.name for p in v).encode()).hexdigest()[:16]
                       for f, v in files.items()},
    }
    if any(is_volume(p) for v in files.values() for p in v):  # only then: the hashes of image-only sets stay
        recipe["slices_per_volume"] = SLICES_PER_VOLUME
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(cache_root) if cache_root is not None else Path(tempfile.mkdtemp(prefix="medaudit-bench-"))
    index_path = cache / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    if key in index and (cache / index[key] / "manifest.json").is_file():
        return load_dataset(cache / index[key])

    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    items: list[Item] = []
    notes: list[str] = []
    try:
        for folder in folders:
            modality = FOLDER_MODALITY[folder]
            rows = _split_reals(files[folder], seed)
            it = rows
            if progress:
                from tqdm import tqdm

                it = tqdm(rows, desc=f"real {folder}", file=sys.stderr, leave=False)
            for p, g, split in it:
                try:
                    files_of_p = _real_files(p, folder, variant, size, seed, work)
                except Exception as exc:  # noqa: BLE001 - a broken file is reported and skipped
                    notes.append(f"skipped {p}: {exc}")
                    continue
                items += [Item(iid, 0, modality, folder, None, "real", split, g, fname, sha)
                          for iid, fname, sha in files_of_p]
        for gname in generators:
            modality, family, native = _generator_info(gname)
            from benchmarks.train_detector import sample_generator

            for split, n in fakes.items():
                if n <= 0:
                    continue
                s0 = FAKE_SEEDS[split] + seed
                xs = sample_generator(gname, n, seed=s0)
                for i, x in enumerate(xs):
                    iid = f"fake/{gname}/{split}/{i}"
                    x = np.clip(np.asarray(x, dtype=np.float32), 0, 1)
                    if variant == "matched":
                        x = matched_path(x, size, _item_rng(seed, iid))
                    data = encode_png(x)
                    rel = f"fake/{gname}/{split}_{i:04d}.png"
                    write_bytes(work / rel, data)
                    items.append(Item(iid, 1, modality, gname, gname, family, split, f"{gname}/seed{s0}/{i}", rel,
                                      hashlib.sha256(data).hexdigest(), native))
            if progress:
                print(f"sampled {gname}", file=sys.stderr)
        ds = BenchmarkSet(root=work, items=items, recipe=recipe, notes=notes)
        final = cache / ds.hash
        write_bytes(work / "manifest.json", json.dumps(
            {"hash": ds.hash, "recipe": recipe, "notes": notes, "items": [asdict(i) for i in items]}, indent=0
        ).encode())
        if final.exists():
            shutil.rmtree(work)
        else:
            os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    index[key] = ds.hash
    write_bytes(index_path, json.dumps(index, indent=1).encode())
    return load_dataset(final)


def load_dataset(folder: str | os.PathLike) -> BenchmarkSet:
    """A cached set from its folder (``manifest.json`` + files)."""
    folder = Path(folder)
    m = json.loads((folder / "manifest.json").read_text())
    items = [Item(**d) for d in m["items"]]
    ds = BenchmarkSet(root=folder, items=items, recipe=m["recipe"], hash=m["hash"], notes=m.get("notes", []))
    return ds


def from_arrays(images: Sequence[np.ndarray], labels: Sequence[int], *, splits: Sequence[str],
                generators: Sequence[str | None], modalities: Sequence[str] | None = None,
                families: Sequence[str] | None = None, groups: Sequence[str] | None = None,
                root: str | os.PathLike | None = None) -> BenchmarkSet:
    """An in-memory set from arrays (tests, users' own data already loaded). Files are not written; the hash covers
    the pixel bytes.

    Pixels are kept at 8 bits when that is lossless (decoded 8-bit files), else at 16 bits. ``groups``: the split
    unit of each image (patient, generator sample ...) that trainers split by; default one per image.
    """
    items, cache = [], {}
    for i, (x, y) in enumerate(zip(images, labels, strict=True)):
        raw = _quantize(x)
        g = generators[i]
        iid = f"{'fake' if y else 'real'}/{g or 'real'}/{i}"
        items.append(Item(iid, int(y), (modalities or ["synthetic"] * len(labels))[i], g or "real", g,
                          (families[i] if families else ("real" if not y else "gan")), splits[i],
                          groups[i] if groups else iid, iid, hashlib.sha256(raw.tobytes()).hexdigest()))
        cache[iid] = raw
    ds = BenchmarkSet(root=Path(root or "."), items=items, recipe={"format": 1, "variant": "arrays"})
    ds._cache.update(cache)
    return ds


def _quantize(x: np.ndarray) -> np.ndarray:
    """uint8 pixels of float ``x`` in [0, 1] when 8 bits hold them exactly, else uint16 (what ``pixels`` reads)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0, 1)
    u8 = np.round(x * 255).astype(np.uint8)
    if np.array_equal(u8.astype(np.float32) / 255.0, x):
        return u8
    return np.round(x * 65535).astype(np.uint16)
