"""Train the ``localization`` analyzer's patch network on tampered vs untouched crops made by ``generators.tamper``.

Composed here (benchmarks may import both forensics and generators): this module makes the crops and the tampered
calibration images; ``forensics.analyzers.localization.train`` trains, calibrates and writes the files the analyzer
reads: ``weights.safetensors`` (fp16), ``config.json``, ``calibration.json``.

    python -m benchmarks.train_localization --data DIR --out DIR

Only training-side files are used (neither held-out rule names them: ``benchmarks.localization_data``), of chest CT,
chest X-ray, mammography and brain MRI, tampered by the methods the ``generators.tamper`` registry marks for training
(never the held-out ones), unstamped; a tampered image and its untouched original take the same random format path.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.datafiles import DATA_ENV
from benchmarks.localization_data import MODALITY_FOLDERS, real_images, tampered_pair
from forensics.analyzers.localization.model import STRIDE, net_input, to_analysis
from forensics.analyzers.localization.train import CROP, fit_calibration, fit_localizer, image_peak, save_localizer
from forensics.atomic import atomic_path
from forensics.body import body_mask
from generators import tamper as T


def training_methods(modality: str) -> list[str]:
    """The tamper methods the registry marks for training (not held out) that apply to ``modality``."""
    return T.tamper_methods(held_out=False, modality=modality)


def _crop_at(x: np.ndarray, y0: int, x0: int) -> np.ndarray:
    return x[..., y0 : y0 + CROP, x0 : x0 + CROP]


Pair = tuple[str, str, np.ndarray, np.ndarray, np.ndarray]


def pairs(data: Path, n_per_modality: int, rng: np.random.Generator) -> Iterator[Pair]:
    """(modality, method, untouched, tampered, mask) at analysis size, round robin over modalities and their
    training methods, from training-side files only; both images through the same format path."""
    pools = {m: [to_analysis(g)[0] for g in real_images(data, m, False, n_per_modality, rng)] for m in MODALITY_FOLDERS}
    pools = {m: p for m, p in pools.items() if len(p) >= 2}
    k = 0
    while pools:
        for mod, imgs in pools.items():
            methods = training_methods(mod)
            method = methods[k % len(methods)]
            i, j = rng.choice(len(imgs), 2, replace=False)
            real, fake, mask = tampered_pair(imgs[i], mod, method, rng, donor=imgs[j])
            yield mod, method, to_analysis(real)[0], to_analysis(fake)[0], mask
        k += 1


def build_set(data: Path, budget_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    t0 = time.time()
    for _mod, _method, real, fake, mask in pairs(data, 200, rng):
        if time.time() - t0 > budget_s:
            break
        h, w = fake.shape
        if h < CROP or w < CROP or real.shape != fake.shape:
            continue
        ma = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        fin, gin = net_input(fake), net_input(real)
        yy, xx = np.nonzero(ma > 0.5)
        cy, cx = (int(yy.mean()), int(xx.mean())) if yy.size else (h // 2, w // 2)
        body = body_mask(real)
        for _ in range(2):  # crops holding the tampered region somewhere inside
            y0 = int(np.clip(cy - rng.integers(12, CROP - 12), 0, h - CROP))
            x0 = int(np.clip(cx - rng.integers(12, CROP - 12), 0, w - CROP))
            lab = cv2.resize(_crop_at(ma, y0, x0), (CROP // STRIDE, CROP // STRIDE), interpolation=cv2.INTER_AREA)
            xs.append(_crop_at(fin, y0, x0))
            ys.append((lab > 0.3).astype(np.float32))
        for _ in range(3):  # untouched crops of the same original after the same format path, mostly in the body
            for _try in range(10):
                y0, x0 = int(rng.integers(0, h - CROP + 1)), int(rng.integers(0, w - CROP + 1))
                if body[y0 + CROP // 2, x0 + CROP // 2]:
                    break
            xs.append(_crop_at(gin, y0, x0))
            ys.append(np.zeros((CROP // STRIDE, CROP // STRIDE), np.float32))
    return np.stack(xs).astype(np.float16), np.stack(ys)[:, None]


def train(
    data: Path, out: Path, gen_s: float, train_s: float, calib_n: int, seed: int, threads: int,
    cache: Path | None = None, extra_caches: list[Path] | None = None,
) -> dict[str, Any]:
    """Make crops from ``data``'s training files for ``gen_s`` seconds (or read ``cache``), train for ``train_s``
    seconds, calibrate on ``calib_n`` held-back training files, write ``out``; returns the config written."""
    import torch

    from forensics.trainloop import seed_torch

    seed_torch(seed, threads)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            X, Y = z["x"], z["y"]
    else:
        X, Y = build_set(data, gen_s, rng)
        if cache is not None:  # at exactly ``cache`` (np.savez on a path would append .npz) and never half-written
            with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, x=X, y=Y)
    for extra in extra_caches or ():
        with np.load(extra, allow_pickle=False) as z:
            X, Y = np.concatenate([X, z["x"]]), np.concatenate([Y, z["y"]])
    gen_time = time.time() - t0
    net, log = fit_localizer(X, Y, rng, time_budget_s=train_s)

    # calibration on fresh training-side pairs (other random draws): untouched and tampered peaks -> logistic
    real_peaks, fake_peaks = [], []
    for _mod, _method, real, fake, _mask in itertools.islice(pairs(data, 60, rng), calib_n):
        real_peaks.append(image_peak(net, real)[0])
        fake_peaks.append(image_peak(net, fake)[0])
    calibration, auc = fit_calibration(np.array(real_peaks), np.array(fake_peaks))
    cfg = {
        "name": "localization",
        "model": {"width": 16},
        "stride": STRIDE,
        "crop": CROP,
        "inputs": ["gray - 0.5", "16 x (gray - blur sigma 1)", "8 x (blur sigma 1 - blur sigma 3)"],
        "n_crops": int(len(X)),
        "positive_cell_fraction": log["positive_cell_fraction"],
        "steps": log["steps"],
        "gen_seconds": round(gen_time, 1),
        "train_seconds": log["train_seconds"],
        "final_train_loss": log["final_train_loss"],
        "val_cell_auc": log["val_cell_auc"],
        "calibration_images": len(real_peaks),
        "calibration_auc": None if auc is None else round(auc, 4),
        "data": [MODALITY_FOLDERS[m] for m in MODALITY_FOLDERS],
        "tamper_generator": f"generators.tamper {T.VERSION} (unstamped)",
        "tamper_methods": {m: training_methods(m) for m in MODALITY_FOLDERS},
        "format_path": "the same random draw of forensics.formatpath.format_path for a tampered image and its original",
        "holdout": "files either held-out rule names excluded (benchmarks.localization_data.benchmark_side)",
        "trained_with": "python -m benchmarks.train_localization",
        "torch": torch.__version__,
    }
    save_localizer(net, cfg, calibration, out)
    return cfg


def fit_grain(data: Path, out: Path, n_per_modality: int, seed: int) -> dict[str, Any]:
    """Fit the grain model on ``n_per_modality`` untouched training-side images of each modality; write
    ``out/grain.json``; returns its info."""
    from forensics.analyzers.localization.grain import fit_grain_model
    from forensics.atomic import write_text

    rng = np.random.default_rng(seed)
    images = {m: [to_analysis(g)[0] for g in real_images(data, m, False, n_per_modality, rng)]
              for m in MODALITY_FOLDERS}
    model = fit_grain_model({m: v for m, v in images.items() if v}, rng)
    model.info["fitted_with"] = "python -m benchmarks.train_localization --grain-only"
    model.info["holdout"] = "files either held-out rule names excluded (benchmarks.localization_data.benchmark_side)"
    write_text(Path(out) / "grain.json", model.to_json())
    return model.info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV),
                    help=f"data folder holding {', '.join(MODALITY_FOLDERS.values())} [env var: {DATA_ENV}]")
    ap.add_argument("--out", type=Path, required=True,
                    help="output folder (the bundled weights live in forensics/weights/localization)")
    ap.add_argument("--gen-seconds", type=float, default=150)
    ap.add_argument("--train-seconds", type=float, default=300)
    ap.add_argument("--calib-n", type=int, default=120, help="tampered/untouched pairs the calibration draws")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="npz of generated crops (reused when present)")
    ap.add_argument("--extra-cache", type=Path, nargs="*", default=None, help="more crop npz files to train on")
    ap.add_argument("--grain-images", type=int, default=60, help="untouched images per modality for the grain model")
    ap.add_argument("--grain-only", action="store_true", help="fit and write only the grain model (grain.json)")
    a = ap.parse_args(argv)
    if a.data is None:
        held = ", ".join(MODALITY_FOLDERS.values())
        ap.error(f"no data folder: give --data DIR or set {DATA_ENV} (a folder holding {held})")
    if a.grain_only:
        print(json.dumps(fit_grain(a.data, a.out, a.grain_images, a.seed), indent=2))
        return
    cfg = train(a.data, a.out, a.gen_seconds, a.train_seconds, a.calib_n, a.seed, a.threads, a.cache, a.extra_cache)
    print(json.dumps(cfg, indent=2))


if __name__ == "__main__":
    main()
