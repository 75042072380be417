"""Fit one autoencoder fake maker on real grayscale images (random crops at native resolution, L1 loss) with the
project's one training loop, and save it as safetensors with its config in the metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def fit_autoencoder(
    images: list[np.ndarray],
    upsampler: str,
    stride: int,
    out_path: str | Path,
    *,
    time_budget_s: float | None = 120.0,
    max_steps: int = 2000,
    crop: int = 96,
    batch_size: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Train on random ``crop`` px crops of ``images`` (float32 (H, W) in [0, 1], each at least ``crop`` on both
    sides) and write ``out_path``; returns the training log (steps, wall seconds, final L1)."""
    import torch

    from forensics import trainloop
    from generators.fakemakers.network import AutoEncoder

    config = {"upsampler": upsampler, "stride": stride, "width": 16, "latent": 4}
    trainloop.seed_torch(seed)
    rng = np.random.default_rng(seed)
    usable = [im for im in images if min(im.shape) >= crop]
    if not usable:
        raise ValueError(f"no training image is {crop} px or larger")
    model = AutoEncoder(**config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ema: list[float] = []

    def step(_: int) -> dict[str, float]:
        crops = []
        for i in rng.integers(len(usable), size=batch_size):
            im = usable[i]
            y, x = rng.integers(im.shape[0] - crop + 1), rng.integers(im.shape[1] - crop + 1)
            crops.append(im[y : y + crop, x : x + crop])
        xb = torch.from_numpy(np.stack(crops)[:, None].astype(np.float32))
        loss = trainloop.optimizer_step(opt, torch.nn.functional.l1_loss(model(xb), xb))
        ema.append(loss if not ema else 0.98 * ema[-1] + 0.02 * loss)
        return {"l1": ema[-1]}

    model.train()
    res = trainloop.run(step, max_steps=max_steps, time_budget_s=time_budget_s,
                        schedule=trainloop.cosine_lr(opt, lr), progress=progress, desc=f"ae {upsampler} s{stride}")
    log = {"steps": res.steps, "wall_s": round(res.wall_s, 1), "final_l1_ema": round(ema[-1], 5) if ema else None,
           "crop": crop, "batch_size": batch_size, "parameters": sum(p.numel() for p in model.parameters())}
    tensors = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    trainloop.save_tensors(out_path, tensors, metadata={"config": json.dumps(config), "log": json.dumps(log)})
    return log
