"""Train the ``localization`` analyzer's patch network on tampered vs untouched crops made by ``generators.tamper``.

Composed here (benchmarks may import both forensics and generators): this module makes the crops and the tampered
calibration images; ``forensics.analyzers.localization.train`` trains, calibrates and writes the files the analyzer
reads: ``weights.safetensors`` (fp16), ``config.json``, ``calibration.json``.

    python -m benchmarks.train_localization --data DIR --out DIR

Only training-split files are used (``benchmarks.datasets.is_holdout`` keeps 20 % of files for the benchmark).
Tampered images are quantized to 8 bit (as the saved PNG would be) and never stamped.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.datafiles import DATA_ENV, FOLDERS, data_files
from forensics.analyzers.localization.model import STRIDE, net_input, to_analysis
from forensics.analyzers.localization.train import CROP, fit_calibration, fit_localizer, image_peak, save_localizer
from forensics.atomic import atomic_path
from forensics.body import body_mask
from generators import tamper as T


def read_gray(path: Path) -> np.ndarray | None:
    im = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return None if im is None else im.astype(np.float32) / 255.0


def make_tampered(
    gray: np.ndarray, rng: np.random.Generator, mode: str | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One unstamped, 8-bit-quantized tampering at a random body position; (pixels, mask, info)."""
    mode = mode or ("inject" if rng.random() < 0.5 else "remove")
    r = T.default_radius(gray.shape) * float(rng.uniform(0.6, 1.6))
    at = T.random_body_point(gray, r, rng)
    res = T.tamper_array(gray, mode, at, r, seed=int(rng.integers(1 << 30)), lo=0.0, hi=1.0)
    out = np.round(np.clip(res.values, 0, 1) * 255) / 255
    return out.astype(np.float32), res.mask, {"mode": mode, "at": at, "radius": r}


def _crop_at(x: np.ndarray, y0: int, x0: int) -> np.ndarray:
    return x[..., y0 : y0 + CROP, x0 : x0 + CROP]


def build_set(files: list[Path], budget_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    t0 = time.time()
    while time.time() - t0 < budget_s:
        g = read_gray(files[int(rng.integers(len(files)))])
        if g is None or min(g.shape) < 96:
            continue
        fake, mask, _ = make_tampered(g, rng)
        fa, s = to_analysis(fake)
        ga, _ = to_analysis(g)
        ma = cv2.resize(mask.astype(np.float32), (fa.shape[1], fa.shape[0]), interpolation=cv2.INTER_AREA)
        h, w = fa.shape
        if h < CROP or w < CROP:
            continue
        fin, gin = net_input(fa), net_input(ga)
        yy, xx = np.nonzero(ma > 0.5)
        cy, cx = (int(yy.mean()), int(xx.mean())) if yy.size else (h // 2, w // 2)
        body = body_mask(ga)
        for _ in range(3):  # crops holding the tampered region somewhere inside
            y0 = int(np.clip(cy - rng.integers(12, CROP - 12), 0, h - CROP))
            x0 = int(np.clip(cx - rng.integers(12, CROP - 12), 0, w - CROP))
            lab = cv2.resize(_crop_at(ma, y0, x0), (CROP // STRIDE, CROP // STRIDE), interpolation=cv2.INTER_AREA)
            xs.append(_crop_at(fin, y0, x0))
            ys.append((lab > 0.3).astype(np.float32))
        for _ in range(3):  # untouched crops of the same (original) image, mostly inside the body
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
    files = data_files(data, holdout=False)
    rng.shuffle(files)
    n_cal = min(calib_n, len(files) // 5)
    cal_files, train_files = files[:n_cal], files[n_cal:]
    t0 = time.time()
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            X, Y = z["x"], z["y"]
    else:
        X, Y = build_set(train_files, gen_s, rng)
        if cache is not None:  # at exactly ``cache`` (np.savez on a path would append .npz) and never half-written
            with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, x=X, y=Y)
    for extra in extra_caches or ():
        with np.load(extra, allow_pickle=False) as z:
            X, Y = np.concatenate([X, z["x"]]), np.concatenate([Y, z["y"]])
    gen_time = time.time() - t0
    net, log = fit_localizer(X, Y, rng, time_budget_s=train_s)

    # calibration on held-back training-split images: real peaks and tampered peaks -> logistic
    real_peaks, fake_peaks = [], []
    for p in cal_files:
        g = read_gray(p)
        if g is None or min(g.shape) < 96:
            continue
        real_peaks.append(image_peak(net, g)[0])
        fake, _, _ = make_tampered(g, rng)
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
        "data": list(FOLDERS),
        "tamper_generator": f"generators.tamper {T.VERSION} (unstamped, 8-bit)",
        "holdout": "zlib.crc32(file name) % 5 == 0 excluded",
        "trained_with": "python -m benchmarks.train_localization",
        "torch": torch.__version__,
    }
    save_localizer(net, cfg, calibration, out)
    return cfg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV),
                    help=f"data folder holding {', '.join(FOLDERS)} [env var: {DATA_ENV}]")
    ap.add_argument("--out", type=Path, required=True,
                    help="output folder (the bundled weights live in forensics/weights/localization)")
    ap.add_argument("--gen-seconds", type=float, default=150)
    ap.add_argument("--train-seconds", type=float, default=300)
    ap.add_argument("--calib-n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="npz of generated crops (reused when present)")
    ap.add_argument("--extra-cache", type=Path, nargs="*", default=None, help="more crop npz files to train on")
    a = ap.parse_args(argv)
    if a.data is None:
        ap.error(f"no data folder: give --data DIR or set {DATA_ENV} (a folder holding {', '.join(FOLDERS)})")
    cfg = train(a.data, a.out, a.gen_seconds, a.train_seconds, a.calib_n, a.seed, a.threads, a.cache, a.extra_cache)
    print(json.dumps(cfg, indent=2))


if __name__ == "__main__":
    main()
