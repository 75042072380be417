"""Fit the fused localizer's calibration on training tamper methods and measure it per method on held-out files.

    python -m benchmarks.localizer_eval --data DIR --cache DIR [--write-config forensics/weights/localization]

1. *fit* set: training-side files (neither held-out rule names them), each modality x each tamper method the
   registry marks for training; a tampered image and its untouched original through the same format path. The
   fused logistic (``fused.fit_logistic``) is fitted on their three image-level peaks; the operating threshold is
   the score that at most 1 % of these untouched originals reach.
2. *test* set: held-out files, every method of the modality (training and held-out methods), the untouched
   originals and one shortcut control of each (down-and-up resize, JPEG q=70, or a light denoise, in turn). One
   format-path draw per image: its untouched version is the negative for every method applied to it.
   Per method: image AUC (tampered vs every untouched image and control of its modality), TPR at the threshold and
   at 1 % FPR on those negatives, pixel AUC (cells of the heatmap vs the mask, over tampered images).
3. ``support`` (what fusion reads before a local finding may reach ``high``): false-alarm rate of held-out
   untouched images + controls at the threshold, and the lowest TPR there over the held-out methods.

Images are first reduced to ``--max-side`` (512 px) so a run fits a CPU budget: copy-move takes seconds per image on
one core. Features are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.localization_data import MODALITY_FOLDERS, real_images, tampered_pair
from forensics.analyzers.localization import LocalizationAnalyzer
from forensics.analyzers.localization.fused import FEATURES, LocalizerConfig, feature_maps, fit_logistic
from forensics.metrics import roc_auc
from generators import tamper as T


def _control(real: np.ndarray, k: int) -> tuple[str, np.ndarray]:
    from forensics.formatpath import jpeg_roundtrip

    kind = ("resized", "jpeg70", "denoised")[k % 3]
    if kind == "resized":
        h, w = real.shape
        small = cv2.resize(real, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return kind, np.round(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255) / 255
    if kind == "jpeg70":
        return kind, jpeg_roundtrip(real, 70)
    return kind, np.round(cv2.GaussianBlur(real, (0, 0), 0.7) * 255) / 255


def _cap(gray: np.ndarray, side: int) -> np.ndarray:
    s = min(1.0, side / max(gray.shape))
    if s >= 1.0:
        return gray
    return cv2.resize(gray, (round(gray.shape[1] * s), round(gray.shape[0] * s)), interpolation=cv2.INTER_AREA)


def collect(data: Path, heldout: bool, per_cell: int, seed: int, cache: Path, analyzer: LocalizationAnalyzer,
            budget_s: float, max_side: int) -> list[dict[str, Any]]:
    """Feature rows (peaks, and for tampered images the cell map and mask on the cell grid) for each modality x
    method; ``heldout`` picks the test set (all methods, controls) or the fit set (training methods only)."""
    out_path = cache / f"{'test' if heldout else 'fit'}_{per_cell}_{seed}_{max_side}_{int(budget_s)}.json"
    if out_path.is_file():
        return json.loads(out_path.read_text())
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    net, grain, cal = analyzer._load(), analyzer.grain_model, analyzer.copy_calibration
    pools = {m: [_cap(g, max_side) for g in real_images(data, m, heldout, per_cell + 1, rng)] for m in MODALITY_FOLDERS}
    # image by image across every modality x method, so a budget cut leaves every method with as many images; one
    # format-path draw per image, so its untouched version (and control) serve as negatives for all its methods
    for i in range(per_cell):
        for mod, imgs in pools.items():
            if i >= len(imgs) - 1 or time.time() - t0 > budget_s:
                continue
            methods = T.tamper_methods(modality=mod) if heldout else T.tamper_methods(modality=mod, held_out=False)
            fseed = int(rng.integers(1 << 30))
            real = None
            for method in methods:
                real, fake, mask = tampered_pair(imgs[i], mod, method, rng, donor=imgs[i + 1], format_seed=fseed)
                mf = feature_maps(fake, net, grain, mod, cal)
                h, w = mf.cells.shape[1:]
                m = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.3
                rows.append({"modality": mod, "method": method, "held_out": T.tamper_method(method).held_out,
                             "label": 1, "peaks": mf.peaks.tolist(), "cells": mf.cells[:, mf.valid].T.round(3).tolist(),
                             "mask": m[mf.valid].tolist()})
            base = {"modality": mod, "image": i}
            rows.append({**base, "label": 0, "kind": "untouched",
                         "peaks": feature_maps(real, net, grain, mod, cal).peaks.tolist()})
            if heldout:
                kind, ctl = _control(real, i)
                rows.append({**base, "label": 0, "kind": kind,
                             "peaks": feature_maps(ctl.astype(np.float32), net, grain, mod, cal).peaks.tolist()})
            print(f"{'test' if heldout else 'fit'} {len(rows)} rows {time.time() - t0:.0f}s", file=sys.stderr)
    print(file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(rows))
    return rows


def _tpr_at_fpr(neg: np.ndarray, pos: np.ndarray, fpr: float = 0.01) -> float:
    thr = float(np.quantile(neg, 1 - fpr, method="higher")) if neg.size else np.inf
    return float(np.mean(pos > thr))


def measure(fit_rows: list[dict], test_rows: list[dict]) -> dict[str, Any]:
    """Fit on ``fit_rows``, measure on ``test_rows``: the config to write and the per-method table."""
    x = np.array([r["peaks"] for r in fit_rows])
    y = np.array([r["label"] for r in fit_rows])
    mods = np.array([r["modality"] for r in fit_rows])
    w, b = fit_logistic(x, y, mods)
    cfg = LocalizerConfig(w.tolist(), b, 0.5, {}, {})
    s_fit = np.array([cfg.image_logit(p, m) for p, m in zip(x, mods, strict=True)])
    thr_logit = float(np.quantile(s_fit[y == 0], 0.99, method="higher"))
    threshold = float(1 / (1 + np.exp(-thr_logit)))
    cfg.threshold = threshold
    st = [1 / (1 + np.exp(-cfg.image_logit(np.array(r["peaks"]), r["modality"]))) for r in test_rows]
    table: dict[str, Any] = {}
    for r, s in zip(test_rows, st, strict=True):
        r["score"] = float(s)
    for mod in sorted({r["modality"] for r in test_rows}):
        neg_rows = [r for r in test_rows if r["modality"] == mod and r["label"] == 0]
        neg = np.array([r["score"] for r in neg_rows])
        for method in sorted({r["method"] for r in test_rows if r["modality"] == mod and r["label"] == 1}):
            pos_rows = [r for r in test_rows if r["label"] == 1 and r["modality"] == mod and r["method"] == method]
            pos = np.array([r["score"] for r in pos_rows])
            cells = np.concatenate([np.array(r["cells"]).reshape(-1, len(FEATURES)) for r in pos_rows])
            lab = np.concatenate([np.array(r["mask"], bool) for r in pos_rows])
            heat = cfg.cell_probability(cells.T[:, :, None], mod)[:, 0]
            table[f"{mod}/{method}"] = {
                "held_out": pos_rows[0]["held_out"], "n": len(pos),
                "image_auc": roc_auc(np.r_[np.zeros(neg.size), np.ones(pos.size)], np.r_[neg, pos]),
                "tpr_at_threshold": float(np.mean(pos >= threshold)),
                "tpr_at_1pct_fpr": _tpr_at_fpr(neg, pos),
                "pixel_auc": roc_auc(lab.astype(int), heat) if 0 < lab.sum() < lab.size else None,
                # each part's image-level peak alone (what fusing them adds)
                "part_auc": {f: roc_auc(np.r_[np.zeros(len(neg_rows)), np.ones(len(pos_rows))],
                                        np.r_[[r["peaks"][k] for r in neg_rows], [r["peaks"][k] for r in pos_rows]])
                             for k, f in enumerate(FEATURES)},
            }
    negs = np.array([r["score"] for r in test_rows if r["label"] == 0])
    held = [v for v in table.values() if v["held_out"]]
    by_kind = {k: float(np.mean([r["score"] >= threshold for r in test_rows if r["label"] == 0 and r["kind"] == k]))
               for k in ("untouched", "resized", "jpeg70", "denoised")}
    support = {
        "threshold": round(threshold, 4),
        "heldout_negatives": int(negs.size),
        "heldout_fpr": round(float(np.mean(negs >= threshold)), 4),
        "heldout_fpr_by_kind": {k: round(v, 4) for k, v in by_kind.items()},
        "heldout_methods_min_tpr": round(min(v["tpr_at_threshold"] for v in held), 4) if held else 0.0,
        "heldout_methods_mean_tpr": round(float(np.mean([v["tpr_at_threshold"] for v in held])), 4) if held else 0.0,
    }
    return {"weights": [round(v, 5) for v in w.tolist()], "bias": {k: round(v, 5) for k, v in b.items()},
            "threshold": round(threshold, 4),
            "support": support, "table": table, "fit_rows": len(fit_rows), "test_rows": len(test_rows)}


def render(res: dict[str, Any]) -> str:
    head = "| modality/method | held out | n | image AUC | TPR@thr | TPR@1%FPR | pixel AUC | AUC copy / cnn / grain |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for k, v in res["table"].items():
        pa = "n/a" if v["pixel_auc"] is None else f"{v['pixel_auc']:.3f}"
        lines.append(f"| {k} | {'yes' if v['held_out'] else 'no'} | {v['n']} | {v['image_auc']:.3f} | "
                     f"{v['tpr_at_threshold']:.3f} | {v['tpr_at_1pct_fpr']:.3f} | {pa} | "
                     + " / ".join(f"{v['part_auc'][f]:.2f}" for f in FEATURES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True, help="folder for the per-image feature rows")
    ap.add_argument("--fit-n", type=int, default=6, help="training-side images per modality x training method")
    ap.add_argument("--test-n", type=int, default=8, help="held-out images per modality x method")
    ap.add_argument("--only", choices=("fit", "test"), default=None, help="collect one set and stop")
    ap.add_argument("--max-side", type=int, default=512,
                    help="images are reduced to this long side first (copy-move takes seconds per 768 px image)")
    ap.add_argument("--budget-s", type=float, default=3600.0, help="stop collecting a set after this many seconds")
    ap.add_argument("--write-config", type=Path, default=None, help="write localizer.json into this folder")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    an = LocalizationAnalyzer(method="fused")
    fit = None if a.only == "test" else collect(a.data, False, a.fit_n, 1, a.cache, an, a.budget_s, a.max_side)
    test = None if a.only == "fit" else collect(a.data, True, a.test_n, 2, a.cache, an, a.budget_s, a.max_side)
    if fit is None or test is None:
        return
    res = measure(fit, test)
    print(render(res), file=sys.stderr)
    if a.write_config is not None:
        cfg = {k: res[k] for k in ("weights", "bias", "threshold", "support")}
        cfg["features"] = list(FEATURES)
        cfg["info"] = {"fitted_with": "python -m benchmarks.localizer_eval", "fit_rows": res["fit_rows"],
                       "test_rows": res["test_rows"], "per_method": res["table"]}
        (a.write_config / "localizer.json").write_text(json.dumps(cfg, indent=1))
    print(json.dumps({k: res[k] for k in ("weights", "bias", "threshold", "support")}, indent=1))


if __name__ == "__main__":
    main()
