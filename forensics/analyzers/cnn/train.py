"""Train the patch CNN on standardized images with :func:`forensics.trainloop.run` (what ``forensics.training``
calls for the suite), and score images with a trained model.

Works on arrays only (images standardized by the caller, labels); data sets, splits and calibration are the
caller's.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def fit_cnn(
    images: np.ndarray,
    label: np.ndarray,
    *,
    config: dict[str, Any] | None = None,
    time_budget_s: float | None = None,
    max_steps: int = 3000,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    threads: int = 1,
    progress: bool = False,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Train the patch CNN on random crops of ``images`` (n, S, S) float16/32 standardized, ``label`` (n,) in
    {0 real, 1 synthetic}: balanced classes, flips and 90-degree turns, AdamW with cosine decay over the step or
    time budget (whichever ends first).

    Returns:
        (model in eval mode, config, log) with ``log`` = steps, wall seconds, final loss (EMA), batch size, lr,
        parameter count.
    """
    import torch

    from forensics import trainloop
    from forensics.analyzers.cnn.model import DEFAULT_CONFIG, build_model

    cfg = json.loads(json.dumps(config or DEFAULT_CONFIG))
    trainloop.seed_torch(seed, threads)
    rng = np.random.default_rng(seed + 1)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    p, s = cfg["patch"], images.shape[1]
    pos, neg = np.flatnonzero(label == 1), np.flatnonzero(label == 0)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("training needs both real and synthetic images")
    loss_fn = torch.nn.BCEWithLogitsLoss()
    ema_loss: float | None = None

    def step(_: int) -> dict[str, float]:
        nonlocal ema_loss
        half = batch_size // 2
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, batch_size - half)])
        ys, xs = rng.integers(0, s - p + 1, batch_size), rng.integers(0, s - p + 1, batch_size)
        crops = np.stack([images[i, y : y + p, x : x + p] for i, y, x in zip(idx, ys, xs, strict=True)])
        crops = crops.astype(np.float32)
        k = int(rng.integers(4))
        crops = np.rot90(crops, k, axes=(1, 2))
        if rng.random() < 0.5:
            crops = crops[:, :, ::-1]
        xb = torch.from_numpy((np.ascontiguousarray(crops)[:, None] - cfg["norm_mean"]) / cfg["norm_std"])
        yb = torch.from_numpy(label[idx].astype(np.float32))
        lv = trainloop.optimizer_step(opt, loss_fn(model(xb).squeeze(1), yb))
        ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
        return {"loss": ema_loss}

    model.train()
    res = trainloop.run(step, max_steps=max_steps, time_budget_s=time_budget_s, schedule=trainloop.cosine_lr(opt, lr),
                        progress=progress, desc="cnn")
    model.eval()
    log = {"steps": res.steps, "wall_s": round(res.wall_s, 1), "final_loss_ema": ema_loss,
           "batch_size": batch_size, "lr": lr, "parameters": sum(q.numel() for q in model.parameters())}
    return model, cfg, log


def cnn_logits(model, config: dict[str, Any], images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Image logits (n,) of standardized images (n, S, S), aggregated over the patch grid."""
    from forensics.analyzers.cnn.model import aggregate, patch_logits

    out = [aggregate(patch_logits(model, config, images[i : i + batch].astype(np.float32)), config["aggregate"])
           for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros(0)
