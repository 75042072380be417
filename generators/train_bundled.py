"""Reproduce the bundled generator weights in ``generators/weights/``.

    python -m generators.train_bundled --data DIR --dest DIR [--only cxr_gan,ct_gan] [--scale 1.0]

Each model trains for a wall-clock budget (capped by a step count) on one torch thread (the default: fastest on a
busy 2-core machine) into ``--work`` (full checkpoints: a second run resumes from them), then its EMA / decoder
weights are exported as float16 with ``config.json`` and a ``samples.png`` grid to ``--dest/<name>/`` (copy them
into ``generators/weights/`` after review). Budgets are the totals used for the shipped weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

LICENCES = {
    "cxr_kermany": (
        "CC BY 4.0",
        "Kermany D., Zhang K., Goldbaum M. (2018), Labeled Optical Coherence Tomography (OCT) "
        "and Chest X-Ray Images for Classification, Mendeley Data v2",
    ),
    "ct_lung_tcia": (
        "CC BY 3.0",
        "Li P. et al. (2020), A Large-Scale CT and PET/CT Dataset for Lung Cancer Diagnosis "
        "(Lung-PET-CT-Dx), The Cancer Imaging Archive",
    ),
    "derm_isic": ("CC0", "ISIC Archive (UDA-1)"),
    "mri_brain": (
        "CC BY-SA 3.0 (IXI); CC BY 3.0 (TCGA-LGG)",
        "IXI dataset (EPSRC GR/S21533/02), https://brain-development.org/ixi-dataset/, sample subset from "
        "CBICA/NiChart_Project; Pedano N. et al. (2016), TCGA-LGG, The Cancer Imaging Archive",
    ),
    "mammo": (
        "research use only (MIAS MiniMammographic Database licence)",
        "Suckling J. et al. (1994), The Mammographic Image Analysis Society Digital Mammogram Database, "
        "Excerpta Medica Int. Congress Series 1069:375-378; weights trained on it are for research use only",
    ),
}

_LDM = {"batch_size": 8}

# name: (family, data folder, train resolution, generator kwargs, dataset kwargs, budget s, max steps, modality)
PLAN = {
    "cxr_gan": ("gan", "cxr_kermany", 64, {"batch_size": 32}, {}, 480, 4000, "DX"),
    "cxr_vae": ("vae", "cxr_kermany", 64, {"batch_size": 32}, {}, 660, 3000, "DX"),
    # native 64 px (issue 16: no longer 32 px upsampled); a fourth level keeps the 64 px UNet's cost near the old one
    "cxr_ddpm": (
        "ddpm",
        "cxr_kermany",
        64,
        {"block_out_channels": (32, 64, 64, 128), "batch_size": 16, "eta": 1.0, "num_inference_steps": 100},
        {},
        1800,
        6000,
        "DX",
    ),
    "ct_gan": ("gan", "ct_lung_tcia", 64, {"batch_size": 32}, {}, 420, 4000, "CT"),
    "derm_vae": ("vae", "derm_isic", 64, {"batch_size": 32}, {"hflip": True, "vflip": True}, 720, 4000, "XC"),
    # axial slices of every volume (near-empty ones skipped); brains are left-right symmetric enough to flip
    "mri_gan": ("gan", "mri_brain", 64, {"batch_size": 32}, {"hflip": True}, 480, 4000, "MR"),
    # 51 films: flips double them (left and right breasts look alike mirrored)
    "mammo_gan": ("gan", "mammo", 64, {"batch_size": 32}, {"hflip": True}, 480, 4000, "MG"),
    # latent diffusion at 256 px; dataset kwargs "labels" / "include" / "exclude_heldout" are read by training_files
    # cxr and mri: 1200 s runs (8,571 and 8,368 steps) measured worse (FD-rand18 2.7 and 2.8, low-contrast samples)
    # than these short budgets (docs/BENCHMARKS.md, "Latent diffusion at 256 px"), so the short ones ship
    "cxr_ldm": ("ldm", "cxr_kermany", 256, _LDM, {"labels": "file_name", "exclude_heldout": True}, 380, 3000, "DX"),
    "ct_ldm": ("ldm", "ct_lung_tcia", 256, _LDM, {"exclude_heldout": True}, 1200, 15000, "CT"),
    "derm_ldm": ("ldm", "derm_isic", 256, _LDM,
                 {"labels": "labels.csv", "hflip": True, "vflip": True, "exclude_heldout": True}, 1200, 15000, "XC"),
    "mri_ldm": ("ldm", "mri_brain", 256, _LDM, {"include": "IXI*", "exclude_heldout": True}, 380, 3000, "MR"),
    # MLO views of left and right breasts are mirror images: horizontal flips are fair
    "mammo_ldm": ("ldm", "mammo", 256, _LDM,
                  {"labels": "labels.csv", "include": "*.pgm", "hflip": True, "exclude_heldout": True}, 1200, 15000,
                  "MG"),
}


def cxr_labels_from_names(files: list[Path]) -> dict[str, str]:
    """Kermany file names say the pneumonia type: ``person<N>_bacteria_<M>`` / ``person<N>_virus_<M>``."""
    kinds = {"bacteria": "bacterial", "virus": "viral"}
    return {f.name: kinds[k] for f in files for k in kinds if f"_{k}_" in f.name}


def training_files(folder: Path, dkw: dict,
                   fold: tuple[int, int] | None = None) -> tuple[list[Path] | Path, dict, dict]:
    """Resolve the PLAN's data options: (files or folder, ImageDataset kwargs, what to record in config.json).

    ``include`` keeps files matching a glob; ``exclude_heldout`` drops the files of both held-out splits
    (``benchmarks.datafiles.is_heldout``, detectors and the privacy benchmark; ``benchmarks.datasets.is_holdout``,
    tamper and localizer); ``labels`` is ``file_name`` (Kermany names) or a CSV inside the data folder. ``fold``
    ``(k, n)`` replaces the held-out rule: it drops the patients of fold k of n of ``bench utility``'s
    cross-validation (``benchmarks.utility_eval.patient_folds``) and keeps every other file.
    """
    dkw = dict(dkw)
    include, exclude, labels = dkw.pop("include", None), dkw.pop("exclude_heldout", False), dkw.pop("labels", None)
    if not (include or exclude or labels or fold):
        return folder, dkw, {}
    from benchmarks.datafiles import is_heldout
    from benchmarks.datasets import is_holdout
    from generators.data import _candidate_files

    files = [f for f in _candidate_files([folder]) if include is None or f.match(include)]
    if fold:
        from benchmarks.utility_eval import fold_files

        dropped = fold_files(folder, *fold)
        kept = [f for f in files if f.name not in dropped]
        record = {"utility_fold_excluded": f"{fold[0]}/{fold[1]}", "fold_files_excluded": len(files) - len(kept)}
    else:
        kept = [f for f in files if not (exclude and (is_heldout(f) or is_holdout(f.name)))]
        record = {"held_out_files_excluded": len(files) - len(kept)} if exclude else {}
    if labels == "file_name":
        dkw["labels"] = cxr_labels_from_names(kept)
    elif labels:
        dkw["labels"] = folder / labels
    return kept, dkw, record


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def train_one(name: str, data_root: Path, work: Path, dest_root: Path, scale: float, threads: int, device: str,
              fold: tuple[int, int] | None = None, max_steps: int | None = None) -> dict:
    """Train PLAN[name]; with ``fold`` (k, n) the copy for fold k of ``bench utility --folds n``, exported as
    ``<name>_fold<k>of<n>``; ``max_steps`` replaces the PLAN's step cap (to match a shipped model's steps)."""
    import torch

    from generators.base import Generator
    from generators.data import ImageDataset
    from generators.registry import create_generator

    torch.set_num_threads(threads)
    family, folder, res, gkw, dkw, budget, steps, modality = PLAN[name]
    steps = max_steps or steps
    licence, attribution = LICENCES[folder]
    files, dkw, data_record = training_files(data_root / folder, dkw, fold)
    ds = ImageDataset(files, resolution=res, modality=modality, name=folder, licence=licence, **dkw)
    if fold:
        name = f"{name}_fold{fold[0]}of{fold[1]}"
    ckpt = work / name
    dest = dest_root / name
    wall_file = ckpt / "wall_time.json"  # wall time of earlier (resumed) calls
    wall_before = 0.0
    if wall_file.is_file():
        wall_before = float(json.loads(wall_file.read_text())["wall_time_s"])
    elif (ckpt / "config.json").is_file() and (dest / "config.json").is_file():
        prev = json.loads((dest / "config.json").read_text())
        if prev.get("steps") == json.loads((ckpt / "config.json").read_text()).get("steps"):
            wall_before = float(prev.get("wall_time_s", 0.0))
    gen = create_generator(family, resolution=res, channels=ds.channels, modality=modality, **gkw)
    t0 = time.monotonic()
    gen.fit(
        ds,
        max_steps=steps,
        time_budget_s=budget * scale,
        device=device,
        seed=0,
        progress=True,
        sample_every={"ddpm": 500, "ldm": None}.get(family, 250),  # an ldm grid costs a minute of CPU
        out_dir=ckpt,
    )
    wall = time.monotonic() - t0 + wall_before
    wall_file.write_text(json.dumps({"wall_time_s": round(wall, 1)}))
    gen = Generator.load(ckpt, device="cpu")  # the full checkpoint (resumed runs included)
    if dest.exists():
        shutil.rmtree(dest)
    extra = {
        "name": name,
        "licence": licence,
        "attribution": attribution,
        "hardware": f"{cpu_name()}, {threads} torch threads" if device == "cpu" else device,
        "torch": torch.__version__,
        "wall_time_s": round(wall, 1),
        "budget_s": budget * scale,  # of the last call
        "trained_with": "python -m generators.train_bundled",
        **data_record,
    }
    gen.save(dest, inference_only=True, half=True, extra=extra)
    # the grid from the exported (float16) weights, what users will get
    shipped = Generator.load(dest, device="cpu")
    write_sample_grid(shipped, dest / "samples.png")
    info = {
        "name": name,
        "family": family,
        "steps": gen.steps_,
        "wall_s": round(wall, 1),
        "params": shipped.parameter_count(),
        "size_bytes": sum(f.stat().st_size for f in dest.iterdir()),
    }
    print(json.dumps(info), flush=True)
    return info


def write_sample_grid(gen, path: Path) -> None:
    """``samples.png``: 36 draws (seed 0); for latent diffusion at 256 px one row of 3 per class (6 without classes):
    a 6 x 6 grid would weigh 1-4 MB."""
    from generators.base import write_grid

    if gen.family == "ldm":
        gen._write_samples(path, 6)
    else:
        write_grid(path, gen.sample(36, seed=0))


def card_table(dest: Path) -> str:
    """The bundled-models table of ``docs/MODEL_CARDS.md``, from the exported configs."""
    from generators.base import Generator

    rows = [
        "| name | family | data (licence) | train px -> output px | channels | steps | wall time | parameters "
        "| file size |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in sorted(p for p in dest.iterdir() if (p / "config.json").is_file()):
        cfg = json.loads((d / "config.json").read_text())
        if "family" not in cfg:  # other models kept in weights/ (e.g. the tamper in-painter)
            continue
        n_params = Generator.load(d, device="cpu").parameter_count()
        size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        rows.append(
            f"| `{d.name}` | {cfg['family']} | {cfg['data'].get('name')} ({cfg.get('licence')}) "
            f"| {cfg['resolution']} -> {cfg['output_resolution']} | {cfg['channels']} | {cfg['steps']} "
            f"| {cfg.get('wall_time_s', 0) / 60:.1f} min | {n_params / 1e6:.2f} M | {size / 2**20:.2f} MiB |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[1].strip(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=os.environ.get("MEDAUDIT_DATA"),
                    help="folder holding cxr_kermany/, ct_lung_tcia/, derm_isic/, mri_brain/, mammo/ "
                         "[env var: MEDAUDIT_DATA]")
    ap.add_argument("--work", type=Path, default=Path("build/train_bundled"), help="full (resumable) checkpoints")
    ap.add_argument("--dest", type=Path, default=None,
                    help="export folder (required to train; --cards reads the bundled weights when not given)")
    ap.add_argument("--only", default="", help="comma-separated names (default: all)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every time budget")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)")
    ap.add_argument("--device", default="cpu", help="cpu (as shipped), cuda, auto")
    ap.add_argument("--cards", action="store_true", help="print the model-card table of --dest and exit")
    ap.add_argument("--fold", default=None, metavar="K/N",
                    help="train without the patients of fold K of N of `medaudit bench utility --folds N` "
                         "(exported as NAME_foldKofN; for models of a utility task's data folder)")
    ap.add_argument("--max-steps", type=int, default=None, help="replace the plan's step cap")
    args = ap.parse_args(argv)
    fold = None
    if args.fold:
        try:
            fold = tuple(int(v) for v in args.fold.split("/"))
            if len(fold) != 2 or not 0 <= fold[0] < fold[1]:
                raise ValueError
        except ValueError:
            ap.error(f"--fold {args.fold!r}: expected K/N with 0 <= K < N, e.g. 0/3")
    if args.cards:
        print(card_table(args.dest or Path(__file__).resolve().parent / "weights"))
        return 0
    if args.data is None:
        ap.error("no data folder: give --data DIR or set MEDAUDIT_DATA (the folder holding cxr_kermany/, "
                 "ct_lung_tcia/, derm_isic/)")
    if args.dest is None:
        ap.error("--dest is required: the export folder (never the installed package by default)")
    names = [n for n in args.only.split(",") if n] or list(PLAN)
    unknown = set(names) - set(PLAN)
    if unknown:
        ap.error(f"unknown model(s) {sorted(unknown)}; known: {', '.join(PLAN)}")
    for name in names:
        train_one(name, args.data, args.work, args.dest, args.scale, args.threads, args.device, fold, args.max_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
