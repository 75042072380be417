"""Train :class:`InpaintNet` on 32 px patches of real chest CT and radiographs (what the bundled weights are).

Random crops (16-128 px, scaled to 32 px) get an irregular circular hole (radius 4-11 px); the loss is L1 on the
hole, in units normalized by the known pixels' mean and std, as ``remove`` feeds the network. The loop is
``forensics.trainloop`` (time budget, cosine schedule, AdamW).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.atomic import write_text

from .edit import _irregular_radius
from .network import PATCH, InpaintNet, forget

#: The data folders (below ``data_dir``) the bundled weights were trained on.
FOLDERS = ("ct_lung_tcia", "cxr_kermany")


def _list_images(root: Path, folders: tuple[str, ...]) -> list[Path]:
    out = []
    for f in folders:
        d = root / f
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return out


def _load_training_images(paths: list[Path], max_side: int = 512) -> list[np.ndarray]:
    """float32 (H, W) grayscale in [0, 1], the long side capped at ``max_side``; unreadable files are skipped."""
    ims = []
    for p in paths:
        im = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if im is None:
            continue
        s = max_side / max(im.shape)
        if s < 1:
            im = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        ims.append(im.astype(np.float32) / 255.0)
    return ims


def _training_batch(ims: list[np.ndarray], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(patches, masks), both float32 (n, 1, 32, 32): patches normalized by their known pixels, masks 1 in the hole."""
    xs, ms = np.zeros((n, 1, PATCH, PATCH), np.float32), np.zeros((n, 1, PATCH, PATCH), np.float32)
    yy, xx = np.mgrid[0:PATCH, 0:PATCH].astype(np.float32)
    i = 0
    while i < n:
        im = ims[rng.integers(len(ims))]
        h, w = im.shape
        s = int(rng.integers(16, min(h, w, 128) + 1))
        y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = cv2.resize(im[y0 : y0 + s, x0 : x0 + s], (PATCH, PATCH), interpolation=cv2.INTER_AREA)
        if crop.std() < 0.01 and rng.random() < 0.9:
            continue  # mostly skip empty background
        cx, cy = PATCH / 2 + rng.uniform(-3, 3, 2)
        th = np.arctan2(yy - cy, xx - cx)
        rb = _irregular_radius(th, rng.uniform(4, 11), rng, rough=0.1)
        m = (np.hypot(xx - cx, yy - cy) <= rb).astype(np.float32)
        known = m < 0.5
        mu, sd = crop[known].mean(), crop[known].std() + 1e-6 + 1e-3 * (np.abs(crop).max() + 1e-6)
        xs[i, 0], ms[i, 0] = (crop - mu) / sd, m
        i += 1
    return xs, ms


def train_inpainter(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    holdout: Callable[[str], bool] | None = None,
    time_budget_s: float | None = 300.0,
    max_steps: int | None = None,
    batch_size: int = 24,
    lr: float = 2e-3,
    width: int = 16,
    seed: int = 0,
    threads: int | None = 2,
    progress: bool = False,
) -> dict[str, Any]:
    """Train :class:`InpaintNet` on the images of ``data_dir``/ct_lung_tcia and /cxr_kermany; save fp16 weights.

    Args:
        data_dir: folder holding the ``FOLDERS`` (PNG / JPEG files).
        out_dir: where ``weights.safetensors`` and ``config.json`` are written (atomically; a cached network loaded
            from there is dropped).
        holdout: file name -> True for files to leave out, so that an evaluation on them measures unseen images
            (the bundled weights: ``benchmarks.datasets.is_holdout``). None trains on every file.
        time_budget_s, max_steps: the training budget (at least one); the learning rate decays (cosine) over it.
        threads: torch CPU threads (results repeat only with the same count); None leaves torch's default.
        progress: a progress bar on stderr.

    Returns:
        The config written to ``config.json`` (steps, validation L1 on the hole against a mean-fill baseline, data).

    Raises:
        FileNotFoundError: no training image under ``data_dir``.
    """
    import torch

    from forensics import trainloop

    trainloop.seed_torch(seed, threads)
    rng = np.random.default_rng(seed)
    root = Path(data_dir)
    paths = _list_images(root, FOLDERS)
    kept = [p for p in paths if holdout is None or not holdout(p.name)]
    ims = _load_training_images(kept)
    if not ims:
        raise FileNotFoundError(f"no training images under {root} ({', '.join(FOLDERS)})")
    net = InpaintNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    vx, vm = _training_batch(ims, 256, np.random.default_rng(seed + 1))
    losses: list[float] = []

    def step(_i: int) -> dict[str, float]:
        x, m = (torch.from_numpy(a) for a in _training_batch(ims, batch_size, rng))
        pred = net(torch.cat([x * (1 - m), m], 1))
        losses.append(trainloop.optimizer_step(opt, (torch.abs(pred - x) * m).sum() / m.sum().clamp(min=1)))
        return {"l1": losses[-1]}

    res = trainloop.run(step, max_steps=max_steps, time_budget_s=time_budget_s,
                        schedule=trainloop.cosine_lr(opt, lr), progress=progress, desc="in-painter")
    net.eval()
    with torch.no_grad():
        x, m = torch.from_numpy(vx), torch.from_numpy(vm)
        val = float((torch.abs(net(torch.cat([x * (1 - m), m], 1)) - x) * m).sum() / m.sum())
        mean_fill = (x * (1 - m)).sum((2, 3), keepdim=True) / (1 - m).sum((2, 3), keepdim=True)
        base = float((torch.abs(mean_fill - x) * m).sum() / m.sum())
    out = Path(out_dir)
    trainloop.save_tensors(out / "weights.safetensors", {k: v.half().contiguous() for k, v in net.state_dict().items()})
    cfg = {
        "name": "tamper_inpaint",
        "model": {"width": width},
        "patch": PATCH,
        "dtype": "float16",
        "steps": res.steps,
        "batch_size": batch_size,
        "train_seconds": round(res.wall_s, 1),
        "val_l1_hole": round(val, 4),
        "val_l1_hole_mean_fill_baseline": round(base, 4),
        "final_train_l1": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "data": list(FOLDERS),
        "n_images": len(ims),
        "holdout": f"{holdout.__module__}.{holdout.__qualname__}: {len(paths) - len(kept)} files excluded"
        if holdout is not None
        else "none",
        "licence": "weights trained on CC BY 3.0 (Lung-PET-CT-Dx, TCIA) and CC BY 4.0 (Kermany) images",
        "trained_with": "medaudit train inpainter",
        "torch": torch.__version__,
    }
    write_text(out / "config.json", json.dumps(cfg, indent=2))
    forget(out)
    return cfg
