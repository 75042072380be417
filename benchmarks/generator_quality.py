"""Quality figures for the bundled generators, computed offline (no Inception weights, nothing downloaded).

    medaudit bench generators --data DIR -n 200 --write-docs docs/BENCHMARKS.md

Every bundled generator (``generators.list_bundled()``) is sampled and compared with the real images of the
folder it was trained on (``config.json`` → ``data.name`` under ``--data``), loaded with ``forensics.io.load`` and
resized / center-cropped exactly as for training (``generators.data.ImageDataset``, no augmentation) at the
generator's output resolution. All metrics take plain arrays, so they can be reused on any image sets.

Feature extractors (``extractor_id`` is written into every result row)
----------------------------------------------------------------------
* **rand18** — timm ``resnet18`` with ``pretrained=False``, ``in_chans`` = 1 or 3, weights initialised by
  ``torch.manual_seed(0)`` with ``zero_init_last=False`` (so the residual branches are active), eval mode,
  input ``2x - 1`` at the image's own resolution, 512-d global-average-pooled features. A *random* network:
  the figures are "FD-rand18", never "FID" (Naeem et al. 2020; Lee et al. 2022, arXiv 2208.09218, show random
  embeddings rank generative models sensibly). Numbers depend on the timm/torch version that initialises the
  weights (recorded in ``extractor_id``); compare them only within one table.
* **tex** — hand-made multi-scale texture statistics (radiomics-like): intensity mean / std / quantiles,
  gradient-magnitude, Laplacian and local-std statistics at 1, 1/2 and 1/4 scale, neighbour autocorrelation
  at offsets 1, 2, 4 px, a 12-bin radially averaged log power spectrum and, for RGB, per-channel mean / std.
  Before the Fréchet distance they are z-scored with the real set's mean and std (the real set is the
  reference), so no single unit dominates ("FD-tex", in the spirit of the Fréchet Radiomics Distance).

Metrics
-------
* **Fréchet distance** ``|mu_a - mu_b|² + tr(S_a + S_b - 2 (S_a S_b)^½)`` on features; ``tr (S_a S_b)^½`` is
  computed exactly: as the nuclear norm of ``X_a X_bᵀ / sqrt((N_a - 1)(N_b - 1))`` (centred features) when
  N < d, else from the eigenvalues of the symmetric PSD ``S_a^½ S_b S_a^½`` (no complex sqrtm round-off).
  FD is biased at finite N and the bias depends on the model: every row records N; never compare FDs across N.
* **KID** — unbiased MMD² with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)³`` (Bińkowski et al. 2018),
  averaged over ``subsets`` random subsets of ``subset_size`` = min(1000, N // 2) per set, reported as
  mean ± std over the subsets. Can be slightly negative when the two sets are alike.
* **Precision / recall** (Kynkäänniemi et al. 2019) and **density / coverage** (Naeem et al. 2020) on rand18
  features, Euclidean k-NN balls with ``k = 5``: precision = share of samples inside some real ball, recall =
  share of real images inside some sample ball, density = mean number of real balls holding a sample / k,
  coverage = share of real balls holding at least one sample.
* **MS-SSIM diversity** — mean MS-SSIM over random pairs of distinct images of one set (lower = more diverse),
  given for the samples and for the real set. MS-SSIM is implemented here: 11-tap Gaussian window (σ = 1.5),
  data range 1, K1 = 0.01, K2 = 0.03, valid convolution, 2× average-pool between scales; the number of scales is
  the most that keep the coarsest side ≥ 11 px (3 at 64 px, 4 at 128 px, 5 from 176 px) and the first weights of
  Wang et al. (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) are renormalised to sum to 1; negative contrast-structure
  terms are clamped at 0; RGB = mean over channels. MS-SSIM(x, x) = 1.
* **Memorization** — for every sample, its nearest training image by normalised cross-correlation (NCC:
  Pearson correlation of the pixels at the evaluation resolution, aligned, no shift search) and, separately, by
  cosine similarity of rand18 features. Reported: median, 95th percentile and max of the per-sample NN-NCC and
  the number of **near copies**, NCC ≥ 0.95 (``NEAR_COPY_NCC``). The generators train on the whole folder, so
  the reference row (``real:<folder>``) gives the same figures for each real image against all *other* real
  images (leave-one-out): a sample set whose NN-NCC distribution sits well above that of the real images is
  reproducing its training set.
* **Samples/s** — ``sample(speed_n)`` (default 64) timed once after a warm-up call of 4 samples, on CPU, with the torch
  thread count and the CPU model recorded (shared machines make this figure noisy).

Reference rows (``real:<folder>``) compare two disjoint random halves of the real set (N = min(n, len // 2)):
the floor that a perfect generator would reach at that N.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.docs import cpu_name
from benchmarks.evaluations import Recorder, Section, register_evaluation
from generators.privacy import NEAR_COPY_NCC, nn_similarity

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DEFAULT_K = 5
DEFAULT_SPEED_N = 64
SAMPLE_BATCH = 16  # same chunking and seeds as generators.generate, so samples match `medaudit generate` (unstamped)


# ---------------------------------------------------------------------------------------------------- helpers
def _as_nchw(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """(N, H, W) / (N, H, W, C) / (N, C, H, W) with C in {1, 3} → float32 (N, C, H, W)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(f"expected a batch of 2-D or RGB images, got shape {x.shape}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


# ---------------------------------------------------------------------------------------------------- extractors
class RandomResNet18:
    """Fixed-seed randomly initialised timm resnet18 → 512-d pooled features (see module docstring)."""

    def __init__(self, in_chans: int = 1, seed: int = 0, batch_size: int = 64):
        import timm
        import torch

        self.in_chans, self.seed, self.batch_size = int(in_chans), int(seed), int(batch_size)
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(self.seed)
            self.model = timm.create_model("resnet18", pretrained=False, in_chans=self.in_chans, num_classes=0,
                                           zero_init_last=False).eval()
        finally:
            torch.random.set_rng_state(state)
        self.id = f"rand-resnet18(seed={self.seed}, in_chans={self.in_chans}, timm {timm.__version__}, " \
                  f"torch {torch.__version__.split('+')[0]})"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        x = _as_nchw(images)
        if x.shape[1] != self.in_chans:
            x = np.repeat(x, self.in_chans, axis=1) if x.shape[1] == 1 else x.mean(axis=1, keepdims=True)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[i : i + self.batch_size])) * 2.0 - 1.0
                out.append(self.model(t).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 512))


def _radial_spectrum(g: np.ndarray, bins: int = 12) -> np.ndarray:
    h, w = g.shape
    f = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2) / (min(h, w) / 2)
    edges = np.geomspace(1.0 / min(h, w), 1.0, bins + 1)
    out = np.empty(bins)
    for i in range(bins):
        m = (r >= edges[i]) & (r < edges[i + 1])
        out[i] = np.log10(f[m].mean() + 1e-12) if m.any() else -12.0
    return out


def texture_features(images: np.ndarray) -> np.ndarray:
    """Multi-scale local statistics per image (the ``tex`` extractor); float64 (N, D)."""
    import cv2

    x = _as_nchw(images)
    feats = []
    for im in x:
        g = im.mean(axis=0).astype(np.float32)
        f: list[float] = [g.mean(), g.std(), *np.quantile(g, [0.05, 0.25, 0.5, 0.75, 0.95])]
        s = g
        for _ in range(3):
            gx = cv2.Sobel(s, cv2.CV_32F, 1, 0, ksize=3)
            gy = cv2.Sobel(s, cv2.CV_32F, 0, 1, ksize=3)
            mag = np.hypot(gx, gy)
            lap = np.abs(cv2.Laplacian(s, cv2.CV_32F, ksize=3))
            mu = cv2.blur(s, (3, 3))
            lstd = np.sqrt(np.maximum(cv2.blur(s * s, (3, 3)) - mu * mu, 0))
            f += [mag.mean(), mag.std(), *np.quantile(mag, [0.5, 0.9]), lap.mean(), lap.std(), lstd.mean(), lstd.std()]
            if min(s.shape) >= 8:
                s = cv2.resize(s, (s.shape[1] // 2, s.shape[0] // 2), interpolation=cv2.INTER_AREA)
        sd = g.std() + 1e-6
        c = (g - g.mean()) / sd
        for d in (1, 2, 4):
            f += [float((c[:, d:] * c[:, :-d]).mean()), float((c[d:] * c[:-d]).mean())]
        f += list(_radial_spectrum(g))
        if im.shape[0] == 3:
            f += [*im.reshape(3, -1).mean(axis=1), *im.reshape(3, -1).std(axis=1)]
        feats.append(f)
    return np.asarray(feats, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- distances
def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D)."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (N >= 2, D) feature arrays of equal D, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    xa, xb = a - mu_a, b - mu_b
    ca, cb = len(a) - 1, len(b) - 1
    tr_a, tr_b = float((xa * xa).sum() / ca), float((xb * xb).sum() / cb)
    if max(len(a), len(b)) < a.shape[1]:
        # S_a S_b = Xa' Xa Xb' Xb / (ca cb) has the nonzero eigenvalues of (Xa Xb')(Xa Xb')' / (ca cb):
        # tr (S_a S_b)^½ = nuclear norm of Xa Xb' / sqrt(ca cb) — exact, and cheap when N < D
        tr_sqrt = float(np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / math.sqrt(ca * cb))
    else:
        s_a, s_b = xa.T @ xa / ca, xb.T @ xb / cb
        ra = _sqrt_psd(s_a)
        ev = np.linalg.eigvalsh(ra @ s_b @ ra)
        tr_sqrt = float(np.sqrt(np.clip(ev, 0, None)).sum())
    fd = float(((mu_a - mu_b) ** 2).sum() + tr_a + tr_b - 2.0 * tr_sqrt)
    return max(fd, 0.0)


def _mmd2_unbiased_poly(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100, subset_size: int | None = None,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception-style distance on any features: (mean, std) of unbiased MMD² over random subsets.

    ``subset_size`` defaults to min(1000, min(N_a, N_b) // 2) so the subsets differ from one another.
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    n = min(len(a), len(b))
    if n < 2:
        raise ValueError("KID needs at least 2 feature vectors per set")
    size = int(subset_size or max(2, min(1000, n // 2)))
    size = min(size, n)
    rng = np.random.default_rng(seed)
    vals = [
        _mmd2_unbiased_poly(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
        for _ in range(int(subsets))
    ]
    return float(np.mean(vals)), float(np.std(vals))


def _pairwise_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = (a * a).sum(1)[:, None]
    bb = (b * b).sum(1)[None, :]
    return np.sqrt(np.clip(aa + bb - 2.0 * a @ b.T, 0, None))


def prdc(real_features: np.ndarray, fake_features: np.ndarray, k: int = DEFAULT_K) -> dict[str, float]:
    """Precision, recall (Kynkäänniemi et al.), density and coverage (Naeem et al.) with k-NN balls."""
    r, f = np.asarray(real_features, np.float64), np.asarray(fake_features, np.float64)
    if len(r) <= k or len(f) <= k:
        raise ValueError(f"PRDC with k={k} needs more than {k} vectors per set ({len(r)} real, {len(f)} fake)")
    d_rr = _pairwise_dist(r, r)
    d_ff = _pairwise_dist(f, f)
    d_rf = _pairwise_dist(r, f)  # (N_real, N_fake)
    # k-th neighbour excluding the point itself (index 0 of the sorted row is the self-distance 0)
    rad_r = np.sort(d_rr, axis=1)[:, k]
    rad_f = np.sort(d_ff, axis=1)[:, k]
    inside_r = d_rf <= rad_r[:, None]  # sample j inside real ball i
    return {
        "precision": float(inside_r.any(axis=0).mean()),
        "recall": float((d_rf <= rad_f[None, :]).any(axis=1).mean()),
        "density": float(inside_r.sum(axis=0).mean() / k),
        "coverage": float((d_rf.min(axis=1) <= rad_r).mean()),
    }


# ---------------------------------------------------------------------------------------------------- MS-SSIM
def _gauss_1d(size: int = 11, sigma: float = 1.5):
    import torch

    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(c**2) / (2 * sigma**2))
    return g / g.sum()


def msssim_scales(side: int, win: int = 11, max_scales: int = 5) -> int:
    """How many scales MS-SSIM uses for images whose short side is ``side`` (coarsest side ≥ ``win``)."""
    s = 1
    while s < max_scales and side // (2**s) >= win:
        s += 1
    return s


def ms_ssim(a: np.ndarray, b: np.ndarray, scales: int | None = None, data_range: float = 1.0) -> np.ndarray:
    """MS-SSIM between paired image batches (N, H, W[, C]) or single images; returns float64 (N,) or a scalar."""
    import torch
    import torch.nn.functional as F

    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    single = a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3 and a.shape[0] > 3)
    if single:
        a, b = np.asarray(a)[None], np.asarray(b)[None]
    x, y = _as_nchw(a), _as_nchw(b)
    if x.shape != y.shape:
        raise ValueError(f"MS-SSIM needs equal shapes, got {x.shape} and {y.shape}")
    n, c, h, w = x.shape
    win = 11 if min(h, w) >= 11 else (min(h, w) // 2) * 2 - 1
    if win < 3:
        raise ValueError(f"images of {h}x{w} are too small for MS-SSIM")
    levels = scales or msssim_scales(min(h, w), win)
    weights = torch.tensor(MSSSIM_WEIGHTS[:levels], dtype=torch.float64)
    weights = weights / weights.sum()
    g = _gauss_1d(win)
    kx = g.view(1, 1, 1, win).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, win, 1).repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    xt = torch.from_numpy(x).double()
    yt = torch.from_numpy(y).double()
    mcs = []
    for lev in range(levels):
        mx, my = blur(xt), blur(yt)
        sxx = blur(xt * xt) - mx * mx
        syy = blur(yt * yt) - my * my
        sxy = blur(xt * yt) - mx * my
        cs_map = (2 * sxy + c2) / (sxx + syy + c2)
        lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
        cs = cs_map.flatten(2).mean(-1).clamp(min=0)  # (N, C)
        if lev < levels - 1:
            mcs.append(cs)
            xt, yt = F.avg_pool2d(xt, 2), F.avg_pool2d(yt, 2)
        else:
            ssim = (lum * cs_map).flatten(2).mean(-1).clamp(min=0)
    vals = torch.stack(mcs + [ssim], dim=0)  # (levels, N, C)
    out = torch.prod(vals ** weights.view(-1, 1, 1), dim=0).mean(-1).numpy()
    return float(out[0]) if single else out


def ms_ssim_diversity(images: np.ndarray, pairs: int = 200, seed: int = 0) -> float:
    """Mean MS-SSIM over ``pairs`` random pairs of distinct images (lower = more diverse)."""
    x = np.asarray(images, np.float32)
    n = len(x)
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, pairs)
    j = (i + rng.integers(1, n, pairs)) % n  # j != i
    return float(np.mean(ms_ssim(x[i], x[j])))


# ---------------------------------------------------------------------------------------------------- memorization
def memorization(samples: np.ndarray, train: np.ndarray, threshold: float = NEAR_COPY_NCC,
                 samples_feats: np.ndarray | None = None, train_feats: np.ndarray | None = None,
                 exclude_self: bool = False) -> dict[str, Any]:
    """NN-NCC distribution of samples vs training images, near-copy count, and feature-space NN cosine."""
    ncc, _ = nn_similarity(samples, train, center=True, exclude_self=exclude_self)
    out: dict[str, Any] = {
        "nn_ncc_p50": float(np.median(ncc)),
        "nn_ncc_p95": float(np.quantile(ncc, 0.95)),
        "nn_ncc_max": float(ncc.max()),
        "near_copies": int((ncc >= threshold).sum()),
        "near_copy_threshold": threshold,
        "n_queries": int(len(ncc)),
        "n_train": int(len(train)),
    }
    if samples_feats is not None and train_feats is not None:
        cos, _ = nn_similarity(samples_feats, train_feats, center=False, exclude_self=exclude_self)
        out.update(nn_feat_cos_p50=float(np.median(cos)), nn_feat_cos_p95=float(np.quantile(cos, 0.95)),
                   nn_feat_cos_max=float(cos.max()))
    return out


# ---------------------------------------------------------------------------------------------------- one comparison
def compare_sets(real: np.ndarray, fake: np.ndarray, *, k: int = DEFAULT_K, seed: int = 0,
                 rand18: RandomResNet18 | None = None, real_feats: np.ndarray | None = None,
                 real_tex: np.ndarray | None = None, pairs: int = 200) -> dict[str, Any]:
    """Distribution metrics between two image sets (N, H, W[, 3]) in [0, 1]; ``real`` is the reference."""
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    chans = _as_nchw(real[:1]).shape[1]
    rand18 = rand18 or RandomResNet18(in_chans=chans)
    fr = rand18(real) if real_feats is None else real_feats
    ff = rand18(fake)
    tr = texture_features(real) if real_tex is None else real_tex
    tf = texture_features(fake)
    mu, sd = tr.mean(0), tr.std(0) + 1e-8
    kid_m, kid_s = kid(fr, ff, seed=seed)
    row: dict[str, Any] = {
        "n_real": int(len(real)),
        "n_fake": int(len(fake)),
        "fd_rand18": frechet_distance(fr, ff),
        "kid_rand18": kid_m,
        "kid_rand18_std": kid_s,
        "fd_tex": frechet_distance((tr - mu) / sd, (tf - mu) / sd),
        **prdc(fr, ff, k=k),
        "k": k,
        "msssim_fake": ms_ssim_diversity(fake, pairs=pairs, seed=seed),
        "msssim_real": ms_ssim_diversity(real, pairs=pairs, seed=seed),
        "extractor_id": rand18.id,
    }
    row["_fake_feats"] = ff
    return row


# ---------------------------------------------------------------------------------------------------- models
def _model_info(model: Any) -> dict[str, Any]:
    """name, family, data folder name, resolution, channels, window and the object that samples."""
    if isinstance(model, (str, os.PathLike)):
        from generators import load_generator

        gen = load_generator(model, device="cpu")
    else:
        gen = model
    data = dict(getattr(gen, "data_", None) or getattr(gen, "data", None) or {})
    res = getattr(gen, "output_resolution", None) or getattr(gen, "resolution", None)
    return {
        "model": str(getattr(gen, "name_", None) or getattr(gen, "name", None) or type(gen).__name__),
        "family": getattr(gen, "family", None),
        "data": data.get("name"),
        "resolution": int(res) if res else None,
        "channels": int(getattr(gen, "channels", 0) or data.get("channels") or 0) or None,
        "window": data.get("window", "lung"),
        "gen": gen,
    }


def class_mix(gen: Any, n: int) -> list[tuple[str | None, int]]:
    """[(class, count)]: ``n`` split over a conditional model's classes in its training images' shares (largest
    remainder); ``[(None, n)]`` for a model without classes or without recorded class counts."""
    counts = (getattr(gen, "data_", None) or {}).get("classes") or {}
    classes = [c for c in (getattr(gen, "classes", None) or []) if counts.get(c)]
    if not classes:
        return [(None, n)]
    total = sum(counts[c] for c in classes)
    exact = [n * counts[c] / total for c in classes]
    take = [int(e) for e in exact]
    for i in sorted(range(len(classes)), key=lambda i: take[i] - exact[i])[: n - sum(take)]:
        take[i] += 1
    return [(c, k) for c, k in zip(classes, take, strict=True) if k]


def draw_samples(gen: Any, n: int, seed: int = 0, batch: int = SAMPLE_BATCH) -> np.ndarray:
    """``n`` samples in chunks of ``batch`` with the seeds ``generators.generate`` uses. A conditional model is
    sampled as it is meant to be used, with a class: in its training images' class shares (:func:`class_mix`) at
    guidance 1, i.e. from its estimate of each class's distribution (stronger guidance trades diversity for
    fidelity, and the null class alone sees only the dropped-out labels in training)."""
    out = []
    for k, (label, m) in enumerate(class_mix(gen, n)):
        kw = {} if label is None else {"class_label": label, "guidance": 1.0}
        out += [np.asarray(gen.sample(min(batch, m - s), seed=(int(seed) * 1_000_003 + 10_007 * k + c) % (2**63),
                                      **kw), np.float32) for c, s in enumerate(range(0, m, batch))]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def sampling_speed(gen: Any, n: int = DEFAULT_SPEED_N, seed: int = 0) -> float:
    """Samples per second of ``gen.sample(n)``, timed after one small warm-up call (``min(n, 4)`` samples)."""
    gen.sample(min(n, 4), seed=seed + 1)
    t0 = time.perf_counter()
    gen.sample(n, seed=seed)
    return n / max(time.perf_counter() - t0, 1e-9)


def load_real(folder: str | os.PathLike, resolution: int, channels: int | None,
              window: Any = "lung") -> np.ndarray:
    """Real images of ``folder`` as the generators saw them in training (no augmentation): (N, H, W[, 3])."""
    from generators.data import ImageDataset

    ds = ImageDataset(folder, resolution=resolution, channels=channels or "auto", window=window, augment=False)
    x = ds.images.numpy().transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x[..., 0] if x.shape[-1] == 1 else x, dtype=np.float32)


def _strip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def run(data_dir: str | os.PathLike, n: int = 200, models: Iterable[Any] | None = None, *, seed: int = 0,
        k: int = DEFAULT_K, speed_n: int = DEFAULT_SPEED_N, reference: bool = True,
        threads: int | None = None, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate generators against the real images they were trained on.

    Args:
        data_dir: folder holding the training folders named in each checkpoint's ``data.name``.
        n: samples per model; distribution metrics use N = min(n, real images) on both sides.
        models: bundled names, checkpoint dirs or generator objects (``sample(n, seed)``, ``channels``,
            ``resolution`` / ``output_resolution``, ``data_ = {"name": folder}``); default every bundled model.
        reference: add a ``real:<folder>`` row per data set (half vs half; leave-one-out memorization).
        threads: ``torch.set_num_threads`` for the whole run (default: leave torch's setting).
        speed_n: batch for the samples/s figure (0 skips it).

    Returns:
        One dict per model (then per reference), keys as in ``to_markdown`` plus n_real/n_fake, fd_tex,
        nn_feat_cos_*, extractor_id, threads, cpu, seed.
    """
    import torch

    if threads:
        torch.set_num_threads(int(threads))
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(int(threads))  # numpy's BLAS too
        except ImportError:
            pass
    log = log or (lambda m: None)
    if models is None:
        from generators import list_bundled

        models = [b["name"] for b in list_bundled()]
    data_dir = Path(data_dir)
    cache: dict[tuple, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    env = {"threads": torch.get_num_threads(), "cpu": cpu_name(), "seed": seed}

    def real_for(info: dict[str, Any]) -> dict[str, Any]:
        key = (info["data"], info["resolution"], info["channels"], str(info["window"]))
        if key not in cache:
            if not info["data"]:
                raise ValueError(f"{info['model']}: its config names no training data folder")
            folder = data_dir / info["data"]
            log(f"loading real images from {folder} at {info['resolution']} px")
            imgs = load_real(folder, info["resolution"], info["channels"], info["window"])
            rand18 = RandomResNet18(in_chans=3 if imgs.ndim == 4 else 1)
            cache[key] = {"images": imgs, "rand18": rand18, "feats": rand18(imgs), "tex": texture_features(imgs),
                          "data": info["data"], "resolution": info["resolution"]}
        return cache[key]

    def evaluate(model: Any) -> dict[str, Any]:
        info = _model_info(model)
        gen = info.pop("gen")
        real = real_for(info)
        imgs = real["images"]
        m = min(int(n), len(imgs))
        pick = np.sort(np.random.default_rng(seed).choice(len(imgs), m, replace=False))
        log(f"{info['model']}: sampling {n}")
        fake = draw_samples(gen, int(n), seed=seed)
        if fake.shape[1:] != imgs.shape[1:]:
            raise ValueError(f"samples are {fake.shape[1:]}, the real images {imgs.shape[1:]} (resolution/channels "
                             "in the generator's attributes do not match its output)")
        row = {**info, **env}
        row.update(compare_sets(imgs[pick], fake[:m], k=k, seed=seed, rand18=real["rand18"],
                                real_feats=real["feats"][pick], real_tex=real["tex"][pick]))
        fake_feats = row.pop("_fake_feats")
        if len(fake) > m:
            fake_feats = real["rand18"](fake)
        row.update(memorization(fake, imgs, samples_feats=fake_feats, train_feats=real["feats"]))
        row["samples_per_s"] = sampling_speed(gen, speed_n, seed=seed) if speed_n else None
        row["speed_n"] = speed_n or None
        log(f"{info['model']}: done")
        return row

    for model in models:
        try:
            rows.append(evaluate(model))
        except Exception as e:  # noqa: BLE001 - one unusable model gives an error row; the others still run
            name = getattr(model, "name_", None) or str(model)
            log(f"{name}: skipped ({type(e).__name__}: {e})")
            rows.append({"model": str(name), "error": f"{type(e).__name__}: {e}", **env})

    if reference:
        for real in cache.values():
            imgs = real["images"]
            half = min(int(n), len(imgs) // 2)
            if half <= k:
                continue
            perm = np.random.default_rng(seed).permutation(len(imgs))
            a, b = perm[:half], perm[half : 2 * half]
            row = {"model": f"real:{real['data']}", "family": "real", "data": real["data"],
                   "resolution": real["resolution"], "channels": 3 if imgs.ndim == 4 else 1, **env}
            row.update(compare_sets(imgs[a], imgs[b], k=k, seed=seed, rand18=real["rand18"],
                                    real_feats=real["feats"][a], real_tex=real["tex"][a]))
            row.pop("_fake_feats")
            row.update(memorization(imgs, imgs, samples_feats=real["feats"], train_feats=real["feats"],
                                    exclude_self=True))
            row["samples_per_s"] = None
            rows.append(row)
    return [_strip(r) for r in rows]


# ---------------------------------------------------------------------------------------------------- output
def _f(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, fmt)


def _k3(v: Any) -> Any:
    return None if v is None else 1e3 * v


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of ``run`` rows with a header naming N, the extractor, the threshold, threads and CPU."""
    if not rows:
        return "_No generators evaluated (no bundled weights found)._\n"
    r0 = next((r for r in rows if not r.get("error")), rows[0])
    lines = [
        f"Generator quality — real images of each model's training folder vs N samples (seed {r0.get('seed', 0)}). "
        f"FD-rand18 / KID / PRDC use {r0.get('extractor_id')}, k = {r0.get('k')}; FD-tex uses z-scored multi-scale "
        f"texture statistics. N = images per side for the distribution metrics; FD depends on N — compare rows "
        f"with equal N only. MS-SSIM: mean over 200 random pairs (lower = more diverse). NN-NCC: each sample's "
        f"highest normalised cross-correlation with a training image (p50 / p95 / max); near copies: NCC ≥ "
        f"{r0.get('near_copy_threshold', NEAR_COPY_NCC)}. `real:` rows: disjoint halves of the real set, and "
        f"leave-one-out NN-NCC of every real image. Samples/s: `sample({r0.get('speed_n') or DEFAULT_SPEED_N})` "
        f"after a warm-up, CPU ({r0.get('cpu')}), {r0.get('threads')} torch thread(s).",
        "",
        "| model | N | FD-rand18 | KID×10³ ± std | FD-tex | precision | recall | density | coverage "
        "| MS-SSIM (samples / real) | NN-NCC p50 / p95 / max | near copies | samples/s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | error: {r['error']} |" + " |" * 11)
            continue
        lines.append(
            f"| {r['model']} | {r.get('n_fake')} | {_f(r.get('fd_rand18'), '.2f')} "
            f"| {_f(_k3(r.get('kid_rand18')), '.3f')} ± {_f(_k3(r.get('kid_rand18_std')), '.3f')} "
            f"| {_f(r.get('fd_tex'), '.2f')} "
            f"| {_f(r.get('precision'), '.3f')} | {_f(r.get('recall'), '.3f')} | {_f(r.get('density'), '.3f')} "
            f"| {_f(r.get('coverage'), '.3f')} | {_f(r.get('msssim_fake'), '.3f')} / {_f(r.get('msssim_real'), '.3f')} "
            f"| {_f(r.get('nn_ncc_p50'), '.3f')} / {_f(r.get('nn_ncc_p95'), '.3f')} / {_f(r.get('nn_ncc_max'), '.3f')} "
            f"| {r.get('near_copies')}/{r.get('n_queries')} | {_f(r.get('samples_per_s'), '.1f')} |"
        )
    return "\n".join(lines) + "\n"


#: Figures of a ``run`` row that go to the results store (one row each per model).
STORED = ("fd_rand18", "kid_rand18", "kid_rand18_std", "fd_tex", "precision", "recall", "density", "coverage",
          "msssim_fake", "msssim_real", "nn_ncc_p50", "nn_ncc_p95", "nn_ncc_max", "near_copies", "samples_per_s")


@register_evaluation("generators")
def evaluate_generators(record: Recorder, *, data: Path, n: int = 200, models: tuple[str, ...] | None = None,
                        seed: int = 0, k: int = DEFAULT_K, speed_n: int = DEFAULT_SPEED_N, reference: bool = True,
                        threads: int | None = 1) -> Section:
    """Quality figures of each generator (and the real-vs-real reference rows), see :func:`run`.

    Args:
        data: folder holding the training folders named in each checkpoint's ``data.name``.
        models: bundled names or checkpoint dirs (default: every bundled generator).
    """
    rows = run(data, n, list(models) if models else None, seed=seed, k=k, speed_n=speed_n, reference=reference,
               threads=threads, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    for r in rows:
        if r.get("error"):
            record(kind="skip", detector=r["model"], reason=r["error"])
            continue
        record.figures({m: r.get(m) for m in STORED}, detector=r["model"], subset=str(r.get("data")),
                       n_real=r.get("n_real"), n_fake=r.get("n_fake"))
    return Section("generators", "Generator quality", to_markdown(rows))
