"""How well the ``localization`` analyzer finds local tampering made by ``generators.tamper`` (CT-GAN style, 2-D).

For each of ``-n`` held-out real images (``benchmarks.datasets.is_holdout``: never used to train the in-painter or
the analyzer), half chest CT and half chest X-ray: one tampered copy (inject or remove, alternating, at a random
position inside the body, default radius x U(0.6, 1.6)), encoded as an *unstamped* 8/16-bit PNG and decoded
again with ``forensics.io.load``, and the untouched original as loaded from its file. Reported:

* image level: ROC-AUC of the score (tampered vs untouched) with a bootstrap 95 % interval, TPR and FPR at 0.5;
* pixel level, over tampered images: ROC-AUC of the heatmap (upsampled to the image) against the tamper mask, IoU
  of heatmap >= 0.5 with the mask (0 when nothing is flagged), and the pointing game (the hottest cell within the
  lesion's radius + one cell);
* false positives on real DICOM scans shipped with pydicom (CT, MR).

The ``noise`` row is the training-free method; ``cnn`` was trained on tampering from the same generator, so it is
an in-distribution number, not a claim about other tampering tools.

    medaudit bench tamper --data DIR -n 100 --write-docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.datafiles import FOLDERS, data_files
from benchmarks.evaluations import Recorder, Section, register_evaluation
from forensics.analyzers.localization import LocalizationAnalyzer
from forensics.io import load
from forensics.metrics import roc_auc
from generators import tamper as T


def _held_out(data: Path, n: int, rng: np.random.Generator) -> list[Path]:
    per = {}
    for f in FOLDERS:
        files = data_files(data, True, (f,))
        rng.shuffle(files)
        per[f] = files
    out, i = [], 0
    while len(out) < n and any(per.values()):
        f = FOLDERS[i % len(FOLDERS)]
        if per[f]:
            out.append(per[f].pop())
        i += 1
    return out


def _boot_ci(y: np.ndarray, s: np.ndarray, rng: np.random.Generator, n: int = 300) -> tuple[float, float]:
    vals = []
    for _ in range(n):
        i = rng.integers(0, y.size, y.size)
        if 0 < y[i].sum() < y.size:
            vals.append(roc_auc(y[i], s[i]))
    return (float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))) if vals else (np.nan, np.nan)


def _pixel_stats(heat: np.ndarray, mask: np.ndarray, center: tuple[int, int], radius: float) -> dict[str, Any]:
    h, w = mask.shape
    up = cv2.resize(heat.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    pred = up >= 0.5
    inter, union = np.logical_and(pred, mask).sum(), np.logical_or(pred, mask).sum()
    cell = max(h / heat.shape[0], w / heat.shape[1])
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    cx, cy = (px + 0.5) * w / heat.shape[1], (py + 0.5) * h / heat.shape[0]
    hit = float(np.hypot(cx - center[0], cy - center[1]) <= 1.3 * radius + cell)
    return {"iou": float(inter / union) if union else 0.0, "hit": hit, "up": up}


def evaluate(
    data: Path, n: int, seed: int = 0, methods: tuple[str, ...] = ("copymove", "cnn", "noise"),
    weights_dir: Path | None = None,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    files = _held_out(data, n, rng)
    analyzers = {m: LocalizationAnalyzer(weights_dir, method=m, max_cells=96) for m in methods}
    analyzers = {m: a for m, a in analyzers.items() if a.availability()[0]}
    rows: list[dict[str, Any]] = []
    pix: dict[str, dict[str, list]] = {m: {"y": [], "s": []} for m in analyzers}
    t0 = time.time()
    for k, path in enumerate(files):
        real = load(path)
        g = real.pixels if real.pixels.ndim == 2 else real.pixels.mean(2)
        mode = "inject" if (k // 2) % 2 == 0 else "remove"  # files alternate CT / CXR: both modes for each
        r = T.default_radius(g.shape) * float(rng.uniform(0.6, 1.6))
        at = T.random_body_point(g, r, rng)
        data_bytes, info, mask = T.tamper_bytes(real, "png", mode, at, r, stamp=False, seed=k)
        fake = load(path.with_suffix(".tampered.png"), data=data_bytes)
        modality = "ct" if "ct_" in path.parent.name else "cxr"
        for m, a in analyzers.items():
            fr, ff = a.analyze(real), a.analyze(fake)
            st = _pixel_stats(ff.heatmap, mask, at, r)
            # pixel AUC on a fixed-size random sample of pixels per image (all mask pixels + as many others)
            ys, xs = np.nonzero(mask)
            oy, ox = rng.integers(0, mask.shape[0], 4 * ys.size), rng.integers(0, mask.shape[1], 4 * ys.size)
            yy, xx = np.r_[ys, oy], np.r_[xs, ox]
            pix[m]["y"].append(mask[yy, xx])
            pix[m]["s"].append(st["up"][yy, xx])
            rows.append({"method": m, "modality": modality, "mode": mode, "real": fr.score, "fake": ff.score,
                         "iou": st["iou"], "hit": st["hit"], "radius": r})
        print(f"\r{k + 1}/{len(files)} {time.time() - t0:.0f}s", end="", file=sys.stderr)
    print(file=sys.stderr)

    res: dict[str, Any] = {"n_images": len(files), "seconds": round(time.time() - t0, 1), "methods": {}}
    for m in analyzers:
        R = [r for r in rows if r["method"] == m]
        groups = {"all": R}
        for mod in ("ct", "cxr"):
            groups[mod] = [r for r in R if r["modality"] == mod]
        for mode in ("inject", "remove"):
            groups[mode] = [r for r in R if r["mode"] == mode]
        out = {}
        for name, G in groups.items():
            if not G:
                continue
            real = np.array([r["real"] for r in G], float)
            fake = np.array([r["fake"] for r in G], float)
            y, s = np.r_[np.zeros(real.size), np.ones(fake.size)], np.r_[real, fake]
            out[name] = {
                "n": len(G),
                "auc": roc_auc(y, s),
                "ci": _boot_ci(y, s, rng),
                "tpr@0.5": float(np.mean(fake >= 0.5)),
                "fpr@0.5": float(np.mean(real >= 0.5)),
                "iou": float(np.mean([r["iou"] for r in G])),
                "hit": float(np.mean([r["hit"] for r in G])),
            }
        ys = np.concatenate(pix[m]["y"])
        ss = np.concatenate(pix[m]["s"])
        out["pixel_auc"] = roc_auc(ys.astype(int), ss)
        out["dicom"] = _dicom_fp(analyzers[m])
        res["methods"][m] = out
    return res


def _dicom_fp(analyzer: LocalizationAnalyzer) -> dict[str, float | None]:
    import tempfile

    from pydicom import examples

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name in ("ct", "mr"):
            p = Path(d) / f"{name}.dcm"
            getattr(examples, name).save_as(p)
            out[name.upper()] = analyzer.analyze(load(p)).score
    return out


def _f(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, tuple):
        return f"{v[0]:.3f}–{v[1]:.3f}"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def render(res: dict[str, Any]) -> str:
    lines = [
        "# Local tampering: localization analyzer vs generators.tamper",
        "",
        f"{res['n_images']} held-out real images, one tampered copy each, unstamped PNG; {res['seconds']} s.",
        "",
        "Image level: tampered copy vs its untouched original. Pixel level over tampered images: heatmap (upsampled) "
        "vs the tamper mask; IoU of heatmap >= 0.5 (0 when nothing is flagged); hit = hottest cell within the lesion.",
        "",
        "| method | subset | n | image AUC (95 % CI) | TPR@0.5 | FPR@0.5 | IoU | hit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, out in res["methods"].items():
        for name in ("all", "ct", "cxr", "inject", "remove"):
            if name in out:
                o = out[name]
                lines.append(f"| {m} | {name} | {o['n']} | {_f(o['auc'])} ({_f(o['ci'])}) | {_f(o['tpr@0.5'])} | "
                             f"{_f(o['fpr@0.5'])} | {_f(o['iou'])} | {_f(o['hit'])} |")
    lines += ["", "| method | pixel AUC | pydicom CT score | pydicom MR score |", "|---|---|---|---|"]
    for m, out in res["methods"].items():
        lines.append(f"| {m} | {_f(out['pixel_auc'])} | {_f(out['dicom'].get('CT'))} | {_f(out['dicom'].get('MR'))} |")
    lines += [
        "",
        "`copymove` looks for grain copied within the image (its calibration was set on training-split files); "
        "`cnn` is trained on crops tampered by the same generator (training-split files only), so its numbers are "
        "in-distribution; `noise` is training-free. None has been tested against other tampering tools.",
        "",
    ]
    return "\n".join(lines)


@register_evaluation("tamper")
def evaluate_tamper(record: Recorder, *, data: Path, n: int = 100, seed: int = 0,
                    methods: tuple[str, ...] = ("copymove", "cnn", "noise"), threads: int = 1,
                    weights: Path | None = None) -> Section:
    """Image- and pixel-level figures of each localization method on ``n`` tampered held-out images.

    Args:
        data: folder with ``ct_lung_tcia/`` and ``cxr_kermany/``.
        n: held-out real images (half of each modality), one tampered copy each.
        weights: localization weights folder (default: the bundled one).
    """
    import torch

    torch.set_num_threads(threads)
    res = evaluate(Path(data), n, seed, tuple(methods), weights)
    for m, out in res["methods"].items():
        for name in ("all", "ct", "cxr", "inject", "remove"):
            if name in out:
                o = out[name]
                counts = {"detector": f"localization.{m}", "subset": name, "n_real": o["n"], "n_fake": o["n"]}
                record(metric="auc", value=o["auc"], lo=o["ci"][0], hi=o["ci"][1], **counts)
                record.figures({k: o[k] for k in ("tpr@0.5", "fpr@0.5", "iou", "hit")}, **counts)
        record(detector=f"localization.{m}", subset="pixels", metric="auc", value=out["pixel_auc"])
        for scan, score in out["dicom"].items():
            record.figures({"score": score}, detector=f"localization.{m}", subset=f"pydicom:{scan}", n_real=1)
    return Section("tamper", "Tamper localization", render(res))
