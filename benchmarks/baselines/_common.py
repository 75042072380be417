"""Shared pieces of the baselines: preprocessing, spectra and a small CPU training loop for torch models."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from forensics.formatpath import standardize


def gray_stack(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """float32 (n, size, size): grayscale, square center crop, resize (``forensics.formatpath.standardize``)."""
    if not len(images):
        return np.zeros((0, size, size), np.float32)
    return np.stack([standardize(x, size) for x in images]).astype(np.float32)


def _radius_map(size: int) -> np.ndarray:
    yy, xx = np.indices((size, size))
    c = size // 2
    return np.hypot(yy - c, xx - c)


def azimuthal_spectrum(x: np.ndarray, n_bins: int | None = None, log: bool = True) -> np.ndarray:
    """1-D azimuthal average of the (log) power spectrum of a square image, radius 0 .. size/2 - 1.

    Args:
        x: float (S, S).
        n_bins: output length (default S/2).
        log: 20 log10 |F| (Durall et al.) instead of |F|^2.
    """
    s = x.shape[0]
    f = np.fft.fftshift(np.fft.fft2(x - x.mean()))
    mag = 20 * np.log10(np.abs(f) + 1e-8) if log else np.abs(f) ** 2
    r = _radius_map(s).astype(int)
    n = n_bins or s // 2
    sums = np.bincount(r.ravel(), weights=mag.ravel(), minlength=n)[:n]
    counts = np.bincount(r.ravel(), minlength=n)[:n]
    return (sums / np.maximum(counts, 1)).astype(np.float64)


def train_torch(model, x: np.ndarray, y: np.ndarray, *, steps: int, time_budget_s: float | None, batch: int,
                lr: float, seed: int, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                crop: int | None = None) -> dict:
    """Adam + BCE on balanced mini-batches of ``x`` (n, S, S) float32; random crops and flips; returns a log."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pos, neg = np.nonzero(y == 1)[0], np.nonzero(y == 0)[0]
    if not len(pos) or not len(neg):
        raise ValueError("training needs both classes")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    s = x.shape[1]
    c = crop or s
    t0 = time.perf_counter()
    model.train()
    done = 0
    while done < steps:
        done += 1
        idx = np.concatenate([rng.choice(pos, batch // 2), rng.choice(neg, batch - batch // 2)])
        ys, xs = rng.integers(0, s - c + 1, len(idx)), rng.integers(0, s - c + 1, len(idx))
        xb = np.stack([x[i, a : a + c, b : b + c] for i, a, b in zip(idx, ys, xs, strict=True)])
        if augment is not None:
            xb = augment(xb, rng)
        if rng.random() < 0.5:
            xb = xb[:, :, ::-1]
        xt = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)[:, None])
        loss = loss_fn(model(xt).reshape(-1), torch.from_numpy(y[idx].astype(np.float32)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
            break
    model.eval()
    return {"steps": done, "wall_s": round(time.perf_counter() - t0, 1), "final_loss": round(float(loss.item()), 4)}


def torch_predict(model, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """sigmoid(logits) (n,) of (n, S, S) float32 inputs, in eval mode."""
    import torch

    if not len(x):
        return np.zeros(0)
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xt = torch.from_numpy(np.ascontiguousarray(x[i : i + batch], dtype=np.float32)[:, None])
            out.append(torch.sigmoid(model(xt).reshape(-1).float()).numpy())
    return np.concatenate(out).astype(np.float64)


def state_arrays(model) -> list[np.ndarray]:
    return [v.detach().cpu().numpy() for v in model.state_dict().values()]
