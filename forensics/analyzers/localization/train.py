"""Train the localization analyzer's patch network on labelled crops, calibrate its image score, save the files the
analyzer reads (``weights.safetensors`` fp16, ``config.json``, ``calibration.json``).

Arrays in, files out: the crops and the tampered calibration images are made by the caller
(``benchmarks.train_localization`` composes them with ``generators.tamper``), so this module needs neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.analyzers.localization.model import build, net_input, to_analysis, valid_cells

#: Side of the training crops in analysis pixels (8 x 8 cells of STRIDE px).
CROP = 64


def fit_localizer(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    time_budget_s: float | None,
    max_steps: int | None = None,
    lr: float = 2e-3,
    batch_size: int = 32,
    width: int = 16,
    progress: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Train the net on crops ``x`` (n, 3, CROP, CROP) of :func:`net_input` channels with cell labels ``y``
    (n, 1, CROP/STRIDE, CROP/STRIDE) in {0, 1}: class-weighted BCE, random horizontal flips, AdamW with cosine decay.

    A random 10% of the crops (drawn from ``rng``) is held back for a cell-level AUC. Parameter initialisation uses
    torch's global generator: seed it first (:func:`forensics.trainloop.seed_torch`).

    Returns:
        (net in eval mode, log) with ``log`` = positive_cell_fraction, steps, train_seconds, final_train_loss (mean
        of the last 100 steps), val_cell_auc (None when the held-back cells hold one class).
    """
    import torch

    from forensics import trainloop
    from forensics.metrics import roc_auc

    net = build(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    pos_frac = float(y.mean())
    # positives are a few percent of the cells: weight them up to balance the classes
    lossf = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos_frac) / max(pos_frac, 1e-3)))
    perm = rng.permutation(len(x))
    n_val = max(1, len(x) // 10)
    xv, yv = torch.from_numpy(x[perm[:n_val]].astype(np.float32)), y[perm[:n_val]]
    xt, yt = torch.from_numpy(x[perm[n_val:]].astype(np.float32)), torch.from_numpy(y[perm[n_val:]])
    losses: list[float] = []

    def step(_: int) -> dict[str, float]:
        idx = torch.from_numpy(rng.integers(0, len(xt), batch_size))
        xb, yb = xt[idx], yt[idx]
        if rng.random() < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        losses.append(trainloop.optimizer_step(opt, lossf(net(xb), yb)))
        return {"loss": losses[-1]}

    net.train()
    res = trainloop.run(step, max_steps=max_steps, time_budget_s=time_budget_s, schedule=trainloop.cosine_lr(opt, lr),
                        progress=progress, desc="localization")
    net.eval()
    with torch.no_grad():
        pv = torch.cat([net(xv[i : i + 64]) for i in range(0, len(xv), 64)]).numpy().ravel()
    cells = yv.ravel() > 0.5
    cell_auc = roc_auc(cells, pv) if 0 < cells.sum() < cells.size else None
    log = {"positive_cell_fraction": round(pos_frac, 4), "steps": res.steps, "train_seconds": round(res.wall_s, 1),
           "final_train_loss": round(float(np.mean(losses[-100:])), 4) if losses else None,
           "val_cell_auc": None if cell_auc is None else round(cell_auc, 4)}
    return net, log


def image_peak(net, gray: np.ndarray) -> tuple[float, np.ndarray]:
    """(max of the 3x3-averaged logit map over valid cells, the logit map) for one image in [0, 1]."""
    import torch

    ga, _ = to_analysis(gray)
    with torch.no_grad():
        logit = net(torch.from_numpy(net_input(ga))[None])[0, 0].numpy()
    sm = cv2.blur(logit, (3, 3), borderType=cv2.BORDER_REFLECT) if min(logit.shape) >= 3 else logit
    ok = valid_cells(ga, sm.shape)
    return (float(sm[ok].max()) if ok.any() else float(sm.min())), logit


def fit_calibration(real_peaks: np.ndarray, fake_peaks: np.ndarray) -> tuple[dict[str, float], float | None]:
    """(calibration.json content, AUC of the peaks) from image peaks of untouched and tampered images.

    The logistic's centre is the 97th percentile of real peaks (so at most ~3-5% of real images score above 0.5);
    its scale spreads the gap between the class medians over 6 units (at least 0.25).
    """
    from forensics.metrics import roc_auc

    rp, fp = np.asarray(real_peaks, dtype=np.float64), np.asarray(fake_peaks, dtype=np.float64)
    center = float(np.quantile(rp, 0.97))
    scale = float(max(0.25, (np.median(fp) - np.median(rp)) / 6)) if fp.size else 1.0
    auc = roc_auc(np.r_[np.zeros(rp.size), np.ones(fp.size)], np.r_[rp, fp]) if fp.size else None
    calibration = {
        "center": round(center, 4),
        "scale": round(scale, 4),
        "real_peak_median": round(float(np.median(rp)), 4),
        "tampered_peak_median": round(float(np.median(fp)), 4),
    }
    return calibration, auc


def save_localizer(net, config: dict[str, Any], calibration: dict[str, float], out: str | Path) -> Path:
    """Write ``weights.safetensors`` (fp16), ``config.json`` and ``calibration.json`` into ``out``, each atomically."""
    from forensics.atomic import write_text
    from forensics.trainloop import save_tensors

    out = Path(out)
    save_tensors(out / "weights.safetensors", {k: v.half().contiguous() for k, v in net.state_dict().items()})
    write_text(out / "config.json", json.dumps(config, indent=2))
    write_text(out / "calibration.json", json.dumps(calibration, indent=2))
    return out
