"""Train the ``localization`` analyzer's patch network on tampered vs untouched crops made by ``generators.tamper``.

Composed here (benchmarks may import both forensics and generators); the result is plain files that
``forensics.analyzers.localization`` reads: ``weights.safetensors`` (fp16), ``config.json``, ``calibration.json``.

    python -m benchmarks.train_localization --data /work/shared/data --out forensics/weights/localization

Only training-split files are used (``generators.tamper.is_holdout`` keeps 20 % of files for the benchmark).
Tampered images are quantized to 8 bit (as the saved PNG would be) and never stamped.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.analyzers.localization.model import STRIDE, build, net_input, to_analysis, valid_cells
from generators import tamper as T

CROP = 64
FOLDERS = ("ct_lung_tcia", "cxr_kermany")


def data_files(root: Path, holdout: bool, folders: tuple[str, ...] = FOLDERS) -> list[Path]:
    """PNG/JPEG files of ``folders`` below ``root`` on one side of ``generators.tamper.is_holdout``, sorted."""
    out = []
    for f in folders:
        d = root / f
        if d.is_dir():
            out += [p for p in sorted(d.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                    and T.is_holdout(p.name) == holdout]
    return out


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
        body = T.body_mask(ga)
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


def image_peak(net, gray: np.ndarray) -> tuple[float, np.ndarray]:
    """(max of the 3x3-averaged logit map, the logit map) for one image in [0, 1]."""
    import torch

    ga, _ = to_analysis(gray)
    with torch.no_grad():
        logit = net(torch.from_numpy(net_input(ga))[None])[0, 0].numpy()
    sm = cv2.blur(logit, (3, 3), borderType=cv2.BORDER_REFLECT) if min(logit.shape) >= 3 else logit
    ok = valid_cells(ga, sm.shape)
    return (float(sm[ok].max()) if ok.any() else float(sm.min())), logit


def train(
    data: Path, out: Path, gen_s: float, train_s: float, calib_n: int, seed: int, threads: int,
    cache: Path | None = None, extra_caches: list[Path] | None = None,
) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
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
        if cache is not None:
            np.savez(cache, x=X, y=Y)
    for extra in extra_caches or ():
        with np.load(extra, allow_pickle=False) as z:
            X, Y = np.concatenate([X, z["x"]]), np.concatenate([Y, z["y"]])
    gen_time = time.time() - t0
    net = build(16)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    pos_frac = float(Y.mean())
    pos_w = torch.tensor((1 - pos_frac) / max(pos_frac, 1e-3))
    lossf = torch.nn.BCEWithLogitsLoss(pos_weight=pos_w)
    t1, step, losses = time.time(), 0, []
    # 10 % of the crops held back to report a cell-level AUC
    perm = rng.permutation(len(X))
    n_val = max(1, len(X) // 10)
    Xv, Yv = torch.from_numpy(X[perm[:n_val]].astype(np.float32)), Y[perm[:n_val]]
    Xt, Yt = torch.from_numpy(X[perm[n_val:]].astype(np.float32)), torch.from_numpy(Y[perm[n_val:]])
    net.train()
    while time.time() - t1 < train_s:
        frac = (time.time() - t1) / train_s
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        idx = torch.from_numpy(rng.integers(0, len(Xt), 32))
        xb, yb = Xt[idx], Yt[idx]
        if rng.random() < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        loss = lossf(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
    net.eval()
    from sklearn.metrics import roc_auc_score

    with torch.no_grad():
        pv = torch.cat([net(Xv[i : i + 64]) for i in range(0, len(Xv), 64)]).numpy().ravel()
    yv = Yv.ravel() > 0.5
    cell_auc = float(roc_auc_score(yv, pv)) if 0 < yv.sum() < yv.size else None

    # calibration on held-back training-split images: real peaks and tampered peaks -> logistic
    real_peaks, fake_peaks = [], []
    for p in cal_files:
        g = read_gray(p)
        if g is None or min(g.shape) < 96:
            continue
        real_peaks.append(image_peak(net, g)[0])
        fake, _, _ = make_tampered(g, rng)
        fake_peaks.append(image_peak(net, fake)[0])
    rp, fp = np.array(real_peaks), np.array(fake_peaks)
    # centre: the 97th percentile of real peaks (so <= ~3-5 % of real images score above 0.5)
    center = float(np.quantile(rp, 0.97))
    scale = float(max(0.25, (np.median(fp) - np.median(rp)) / 6)) if fp.size else 1.0

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(out / "weights.safetensors"))
    auc = float(roc_auc_score(np.r_[np.zeros(rp.size), np.ones(fp.size)], np.r_[rp, fp])) if fp.size else None
    cfg = {
        "name": "localization",
        "model": {"width": 16},
        "stride": STRIDE,
        "crop": CROP,
        "inputs": ["gray - 0.5", "16 x (gray - blur sigma 1)", "8 x (blur sigma 1 - blur sigma 3)"],
        "n_crops": int(len(X)),
        "positive_cell_fraction": round(pos_frac, 4),
        "steps": step,
        "gen_seconds": round(gen_time, 1),
        "train_seconds": round(time.time() - t1, 1),
        "final_train_loss": round(float(np.mean(losses[-100:])), 4),
        "val_cell_auc": None if cell_auc is None else round(cell_auc, 4),
        "calibration_images": int(rp.size),
        "calibration_auc": None if auc is None else round(auc, 4),
        "data": list(FOLDERS),
        "tamper_generator": f"generators.tamper {T.VERSION} (unstamped, 8-bit)",
        "holdout": "zlib.crc32(file name) % 5 == 0 excluded",
        "trained_with": "python -m benchmarks.train_localization",
        "torch": torch.__version__,
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    calibration = {
        "center": round(center, 4),
        "scale": round(scale, 4),
        "real_peak_median": round(float(np.median(rp)), 4),
        "tampered_peak_median": round(float(np.median(fp)), 4),
    }
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2))
    return cfg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("forensics/weights/localization"))
    ap.add_argument("--gen-seconds", type=float, default=150)
    ap.add_argument("--train-seconds", type=float, default=300)
    ap.add_argument("--calib-n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="npz of generated crops (reused when present)")
    ap.add_argument("--extra-cache", type=Path, nargs="*", default=None, help="more crop npz files to train on")
    a = ap.parse_args(argv)
    cfg = train(a.data, a.out, a.gen_seconds, a.train_seconds, a.calib_n, a.seed, a.threads, a.cache, a.extra_cache)
    print(json.dumps(cfg, indent=2))


if __name__ == "__main__":
    main()
