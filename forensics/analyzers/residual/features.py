"""Per-image statistics of how real acquisitions look in their finest detail, on one standardized image.

Two groups (research/generalization_probe.md lesson 2; ZED, Cozzolino et al., ECCV 2024):

- ``s{k}_*``: noise residuals at three scales (256, 128, 64 px; residual = image - its 3x3 median at full size,
  image - Gaussian(sigma 1) below): log std, log kurtosis, skewness, the log share beyond 3 sigma (tail mass), the
  spread of 8x8 block variances relative to the global one, and how block variance follows block brightness
  (X-ray and CT noise depends on the dose reaching each pixel; a generator has no dose). ``x_*`` compare scales:
  std ratios and the correlation of residual energy between neighbouring scales (real edges and grain line up).
- ``lc_*``: a cheap lossless-coding surprisal - the error of the LOCO-I / JPEG-LS median edge detector on the
  8-bit image, coded with a Laplace law per local-activity context fitted to the image itself: bits per pixel,
  bits in flat areas, the share of flat pixels, and how far the errors are from the Laplace law (extra bits of
  the Laplace code over the errors' own entropy: real sensor noise is close to it, smooth synthesis is not).

Every feature is dimensionless or a log, so a model of real images can compare images of any contrast.
"""

from __future__ import annotations

import cv2
import numpy as np

_SCALES = 3
_PER_SCALE = ("log_std", "log_kurt", "skew", "log_tail", "lvar_spread", "lvar_dose_corr")
_CROSS = ("log_std_ratio_10", "log_std_ratio_21", "energy_corr_01", "energy_corr_12")
_CODING = ("lc_bits", "lc_bits_flat", "lc_flat_share", "lc_misfit", "lc_misfit_flat")
FEATURE_NAMES: tuple[str, ...] = tuple(
    [f"s{k}_{n}" for k in range(_SCALES) for n in _PER_SCALE] + [f"x_{n}" for n in _CROSS] + list(_CODING))
#: Bumped whenever a feature changes, so models fitted on older features are refused, not misread.
FEATURES_VERSION = 1
#: Edges of the local-activity contexts of the coder (sum of absolute neighbour gradients, 8-bit levels).
_ACTIVITY_EDGES = np.array([1, 3, 6, 12, 24, 48])
_BLOCK = 8


def _residual(y: np.ndarray, level: int) -> np.ndarray:
    if level == 0:
        u8 = np.round(y * 255).astype(np.uint8)
        return y - cv2.medianBlur(u8, 3).astype(np.float32) / 255.0
    return y - cv2.GaussianBlur(y, (0, 0), 1.0)


def _blocks(a: np.ndarray, block: int) -> np.ndarray:
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block
    return a[:h, :w].reshape(h // block, block, w // block, block).swapaxes(1, 2).reshape(h // block, w // block, -1)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def _scale_features(y: np.ndarray, r: np.ndarray) -> tuple[list[float], np.ndarray]:
    """The per-scale statistics, and the log energy of the residual on a 32 x 32 grid (for cross-scale)."""
    v = r.ravel().astype(np.float64)
    v = v - v.mean()
    v2 = v * v  # products, not powers: ** on float64 arrays is several times slower
    var = float(v2.mean()) + 1e-14
    std = var**0.5
    kurt = float((v2 * v2).mean()) / var**2
    skew = float((v2 * v).mean()) / std**3
    tail = float(np.mean(v2 > 9 * var))
    lv = np.log(_blocks(r, _BLOCK).var(axis=2) + 1e-10)
    q10, q90 = np.quantile(lv, [0.1, 0.9])
    dose = _blocks(y, _BLOCK).mean(axis=2)
    feats = [np.log(std + 1e-7), np.log(max(kurt, 1e-3)), skew, np.log(tail + 1e-4), float(q90 - q10),
             _corr(lv, dose)]
    grid = 32
    energy = np.log(_blocks(r * r, r.shape[0] // grid).mean(axis=2) + 1e-12)
    return feats, energy


def _coding_features(x: np.ndarray) -> list[float]:
    """Surprisal of the 8-bit image under the MED predictor with per-context Laplace codes (LOCO-I style)."""
    u = np.round(np.clip(x, 0, 1) * 255).astype(np.int32)
    a, b, c = u[1:, :-1], u[:-1, 1:], u[:-1, :-1]  # left, above, above-left of each pixel u[1:, 1:]
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    pred = np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))
    err = (u[1:, 1:] - pred).ravel()
    activity = (np.abs(a - c) + np.abs(b - c)).ravel()
    ctx = np.searchsorted(_ACTIVITY_EDGES, activity, side="right")
    n, n_ctx = err.size, len(_ACTIVITY_EDGES) + 1
    counts = np.bincount(ctx, minlength=n_ctx).astype(np.float64)
    abs_sum = np.bincount(ctx, weights=np.abs(err), minlength=n_ctx)
    scale = np.maximum(abs_sum / np.maximum(counts, 1), 0.05)
    # discrete Laplace code P(e) = tanh(1/2b) exp(-|e|/b), with b = the context's mean |error|, summed per
    # context in closed form: every error costs -log2(tanh(1/2b)) + |e| / (b ln 2) bits
    bits = abs_sum / (scale * np.log(2)) - counts * np.log2(np.tanh(0.5 / scale))
    # the errors' own entropy per context, from a (context, error) histogram
    hist = np.bincount(ctx * 511 + err + 255, minlength=n_ctx * 511).reshape(n_ctx, 511).astype(np.float64)
    p = hist / np.maximum(counts[:, None], 1)
    entropy = -(hist * np.log2(np.where(hist > 0, p, 1.0))).sum(axis=1)
    misfit = bits - entropy  # >= 0 up to rounding: Laplace code minus the errors' own entropy
    flat = 0
    return [float(np.log(bits.sum() / n + 1e-3)), float(np.log(bits[flat] / max(counts[flat], 1) + 1e-3)),
            float(counts[flat] / n), float(misfit.sum() / n), float(misfit[flat] / max(counts[flat], 1))]


def extract_features(image: np.ndarray) -> np.ndarray:
    """Feature vector of one standardized image.

    Args:
        image: float32 (S, S) in [0, 1] (``forensics.formatpath.standardize`` output), S a multiple of 128.

    Returns:
        float64 (len(FEATURE_NAMES),), finite; the same input gives the same output.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != x.shape[1] or x.shape[0] % 128:
        raise ValueError(f"expected a standardized (S, S) grayscale image with S a multiple of 128, got {x.shape}")
    feats: list[float] = []
    stds, energies = [], []
    y = x
    for k in range(_SCALES):
        if k:
            y = cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)
        f, energy = _scale_features(y, _residual(y, k))
        feats += f
        stds.append(f[0])
        energies.append(energy)
    feats += [stds[1] - stds[0], stds[2] - stds[1], _corr(energies[0], energies[1]), _corr(energies[1], energies[2])]
    feats += _coding_features(x)
    out = np.asarray(feats, dtype=np.float64)
    return np.nan_to_num(out, nan=0.0, posinf=50.0, neginf=-50.0)


def extract_many(images) -> np.ndarray:
    """float64 (n, n_features) for a stack or list of standardized images."""
    return np.stack([extract_features(im) for im in images]) if len(images) else np.zeros((0, len(FEATURE_NAMES)))
