"""Train the pixel detectors from folders of real images and generators' output (what ``medaudit train detector``
calls), and reproduce the bundled detector weights.

    python -m benchmarks.train_detector --bundled --data ../shared/data [--time-budget 900]

Composition lives here, one level above ``forensics`` (DESIGN.md): images are loaded with ``forensics.io.load``,
fakes come from ``generators`` when no fake folders are given, and ``forensics.training`` gets plain arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Which bundled generators imitate which data folder (by name prefix).
MODALITY_PREFIX = {"cxr_kermany": "cxr_", "ct_lung_tcia": "ct_", "derm_isic": "derm_"}
LICENCES = {
    "cxr_kermany": "CC BY 4.0 - Kermany D., Zhang K., Goldbaum M. (2018), Mendeley Data v2",
    "ct_lung_tcia": "CC BY 3.0 - Li P. et al. (2020), Lung-PET-CT-Dx, The Cancer Imaging Archive",
    "derm_isic": "CC0 - ISIC Archive (UDA-1)",
}
#: Held-out share of real source images kept out of all training (evaluation only), and its salt.
TEST_FRACTION = 0.2
TEST_SALT = "medaudit-heldout"
#: Seeds of generator samples: training fakes and held-out evaluation fakes never share a seed.
TRAIN_FAKE_SEED = 0
TEST_FAKE_SEED = 100_000


def source_group(path: str | os.PathLike) -> str:
    """Source id of a data file for splitting: the patient where the name tells it (Kermany ``person123_...``),
    a block of 20 consecutive slice numbers for ``ChestCT_N`` (neighbouring slices come from one scan), else the
    file name."""
    name = Path(path).name
    folder = Path(path).parent.name
    m = re.match(r"(person\d+)_", name)
    if m:
        return f"{folder}/{m.group(1)}"
    m = re.match(r"ChestCT_(\d+)", name)
    if m:
        return f"{folder}/ct_block{int(m.group(1)) // 20}"
    return f"{folder}/{name}"


def is_heldout(path: str | os.PathLike) -> bool:
    from forensics.training import source_split

    return source_split(source_group(path), val_fraction=0.0, test_fraction=TEST_FRACTION, salt=TEST_SALT) == "test"


def image_files(dirs: Sequence[str | os.PathLike]) -> list[Path]:
    from forensics.io import has_image_suffix

    out: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            out.append(d)
            continue
        out += sorted(p for p in d.rglob("*") if p.is_file() and has_image_suffix(p))
    return out


def load_images(paths: Sequence[Path], progress: bool = False) -> tuple[list[np.ndarray], list[Path]]:
    """Pixels of every loadable file (errors are reported on stderr and skipped)."""
    from forensics.errors import InputError
    from forensics.io import load
    from forensics.training import preshrink

    ims, ok = [], []
    it = paths
    if progress:
        from tqdm import tqdm

        it = tqdm(paths, desc="loading", file=sys.stderr, leave=False)
    for p in it:
        try:
            px = load(p).pixels
        except InputError as exc:
            print(f"skipped {p}: {exc.code}: {exc.message}", file=sys.stderr)
            continue
        # keep colour for the caller, but cap the size: training and evaluation never need more than 512 px
        ims.append(preshrink(px) if px.ndim == 2 else _cap_rgb(px))
        ok.append(p)
    return ims, ok


def _cap_rgb(px: np.ndarray, side: int = 512) -> np.ndarray:
    import cv2

    h, w = px.shape[:2]
    s = side / min(h, w)
    if s < 1:
        px = cv2.resize(px, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return px.astype(np.float32)


def generator_natives(name: str) -> list[int]:
    """The sides a generator's images pass through: its native resolution and its output resolution."""
    from generators.api import _resolve
    from generators.base import read_config

    cfg = read_config(_resolve(name)[1])
    return sorted({int(cfg["resolution"]), int(cfg.get("output_resolution") or cfg["resolution"])})


def sample_generator(name: str, n: int, seed: int, batch: int = 64) -> np.ndarray:
    """``n`` unstamped samples float32 (n, H, W[, 3]) - the watermark is left out on purpose, so the detectors
    cannot learn it (the watermark analyzer covers our own marks)."""
    from generators import load_generator

    gen = load_generator(name, device="cpu")
    parts = [gen.sample(min(batch, n - i), seed=seed + i) for i in range(0, n, batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 64, 64), np.float32)


def train_detector_cli(
    real_dirs: Sequence[str | os.PathLike],
    fake_dirs: Sequence[str | os.PathLike],
    generator_names: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    time_budget_s: float | None = None,
    progress: bool = True,
    fakes_per_generator: int | None = None,
    exclude_heldout: bool = False,
    data_note: str = "",
    **train_kw: Any,
) -> dict[str, Any]:
    """Train frequency + cnn detectors into ``out_dir`` (usable as ``weights_dir=`` of the analyzers).

    Args:
        real_dirs: folders (or files) of real images, any format ``forensics.io.load`` reads.
        fake_dirs: folders of synthetic images; when empty, fakes are sampled from ``generator_names``.
        generator_names: bundled names or checkpoint dirs; their native sizes also set the resolution round trips
            of the real images (even when fake folders are given).
        out_dir: output folder (frequency/, cnn/, fusion.json, MODEL_CARD.md).
        seed: seeds sampling, the format path and training.
        time_budget_s: wall-clock budget of the training step.
        fakes_per_generator: samples per generator (default: as many fakes in total as real images).
        exclude_heldout: leave out the held-out evaluation split of real files (for the bundled weights).
        train_kw: passed on to :func:`forensics.training.train_detectors` (e.g. ``cnn_max_steps``).
    """
    from forensics.training import train_detectors

    t0 = time.perf_counter()
    paths = image_files(real_dirs)
    if exclude_heldout:
        paths = [p for p in paths if not is_heldout(p)]
    real, paths = load_images(paths, progress)
    if not real:
        raise ValueError(f"no readable real images in {list(map(str, real_dirs))}")
    real_groups = [source_group(p) for p in paths]
    natives: set[int] = set()
    for g in generator_names:
        natives.update(generator_natives(g))
    if fake_dirs:
        fpaths = image_files(fake_dirs)
        fake, fpaths = load_images(fpaths, progress)
        fake_groups = [str(p) for p in fpaths]
        fake_kinds = [Path(p).parent.name for p in fpaths]
        natives.update({min(f.shape[:2]) for f in fake if min(f.shape[:2]) <= 128})
    else:
        if not generator_names:
            raise ValueError("give fake folders or generator names")
        n = fakes_per_generator or max(1, len(real) // len(generator_names))
        fake, fake_groups, fake_kinds = [], [], []
        for g in generator_names:
            x = sample_generator(g, n, seed=seed)
            fake += list(x)
            fake_groups += [f"{g}/seed{seed}/{i}" for i in range(len(x))]
            fake_kinds += [g] * len(x)
    origin = f"folders {', '.join(map(str, fake_dirs))}" if fake_dirs else f"generators {', '.join(generator_names)}"
    note = data_note or (
        f"Real images: {len(real)} files from {', '.join(map(str, real_dirs))}. Synthetic: {len(fake)} ({origin})."
    )
    report = train_detectors(real, fake, out_dir=out_dir, real_groups=real_groups, fake_groups=fake_groups,
                             fake_kinds=fake_kinds, native_sizes=sorted(natives) or (64,), seed=seed,
                             time_budget_s=time_budget_s, data_note=note, progress=progress,
                             **train_kw)
    report["total_wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def bundled_sets(data: Path, *, heldout: bool, seed: int, modalities: Sequence[str] | None = None,
                 generators: Sequence[str] | None = None, fake_ratio: float = 1.0, progress: bool = False) -> dict:
    """Real images (train or held-out split) and matching generator samples for each data folder.

    Returns:
        {folder: {"real": [...], "real_groups": [...], "real_paths": [...], "fake": [...], "fake_groups": [...],
                  "fake_kinds": [...], "natives": set}}
    """
    from generators import list_bundled

    bundled = [b["name"] for b in list_bundled()]
    out = {}
    for folder, prefix in MODALITY_PREFIX.items():
        if modalities and folder not in modalities:
            continue
        gens = [g for g in bundled if g.startswith(prefix) and (generators is None or g in generators)]
        paths = [p for p in image_files([data / folder]) if is_heldout(p) == heldout]
        real, paths = load_images(paths, progress)
        entry = {"real": real, "real_paths": paths, "real_groups": [source_group(p) for p in paths],
                 "fake": [], "fake_groups": [], "fake_kinds": [], "natives": set(), "generators": gens}
        n = max(1, round(len(real) * fake_ratio / max(1, len(gens))))
        for g in gens:
            x = sample_generator(g, n, seed=seed)
            entry["fake"] += list(x)
            entry["fake_groups"] += [f"{g}/seed{seed}/{i}" for i in range(len(x))]
            entry["fake_kinds"] += [g] * len(x)
            entry["natives"].update(generator_natives(g))
        out[folder] = entry
    return out


def train_bundled(data: Path, out_dir: Path, *, seed: int = 0, time_budget_s: float | None = None,
                  generators: Sequence[str] | None = None, modalities: Sequence[str] | None = None,
                  progress: bool = True, **kw: Any) -> dict[str, Any]:
    """The bundled detectors: every data folder except its held-out split, against the bundled generators."""
    from forensics.training import train_detectors

    sets = bundled_sets(data, heldout=False, seed=TRAIN_FAKE_SEED + seed, modalities=modalities,
                        generators=generators, progress=progress)
    cat: dict[str, list] = {k: [] for k in ("real", "real_groups", "fake", "fake_groups", "fake_kinds")}
    natives: set[int] = set()
    lines = []
    for folder, e in sets.items():
        for k in cat:
            cat[k] += e[k]
        natives |= e["natives"]
        lines.append(f"- `{folder}`: {len(e['real'])} real files (held-out 20% by patient/slice block excluded), "
                     f"{len(e['fake'])} samples of {', '.join(e['generators']) or 'no generator'}; "
                     f"licence {LICENCES[folder]}")
    note = ("Training data (real images are byte-exact public files; synthetic ones are unstamped samples of the "
            "bundled generators, seed " f"{TRAIN_FAKE_SEED + seed}):\n\n" + "\n".join(lines))
    return train_detectors(cat["real"], cat["fake"], out_dir=out_dir, real_groups=cat["real_groups"],
                           fake_groups=cat["fake_groups"], fake_kinds=cat["fake_kinds"],
                           native_sizes=sorted(natives), seed=seed, time_budget_s=time_budget_s, data_note=note,
                           progress=progress, **kw)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundled", action="store_true", help="reproduce forensics/weights from --data")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--real", nargs="*", default=[])
    ap.add_argument("--fake", nargs="*", default=[])
    ap.add_argument("--generators", nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "forensics" / "weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=None)
    ap.add_argument("--cnn-max-steps", type=int, default=3000)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    if args.bundled:
        report = train_bundled(args.data, args.out, seed=args.seed, time_budget_s=args.time_budget,
                               cnn_max_steps=args.cnn_max_steps)
    else:
        report = train_detector_cli(args.real, args.fake, args.generators, args.out, seed=args.seed,
                                    time_budget_s=args.time_budget)
    print(json.dumps({k: report[k] for k in ("analyzers", "fusion", "wall_s") if k in report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
