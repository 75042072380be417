"""Hand-crafted spectral and noise-residual features of one standardized image.

Four groups (research/detection.md 1.2, 1.6; research/generalization_probe.md):

- ``spec_*``: azimuthally averaged log power spectrum in ``N_RADIAL`` radial bins, normalized by the mean of the
  lowest bins (Durall et al. 2020) - upsampling and generator decoders bend its tail;
- ``dct_*``: 8x8 block DCT statistics - mean log magnitude per zig-zag diagonal and the share of near-zero
  coefficients (Frank et al. 2020);
- ``res_*``: statistics of high-pass noise residuals (Laplacian, horizontal/vertical differences, difference of
  Gaussians, median residual): log std, kurtosis, skewness and std ratios. Residual kurtosis is the feature the
  probe found to carry over to unseen generators (real detail is heavy-tailed, generator output near-Gaussian);
- ``per_*``: upsampling periodicity - peaks of the residual spectrum at N/2, N/4, N/8 relative to their surround
  (NPR, Tan et al. 2024).

Input: float32 (S, S) in [0, 1], the output of :func:`forensics.formatpath.standardize`.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

N_RADIAL = 24
_DCT_DIAGONALS = 15
_RESIDUALS = ("lap", "dx", "dy", "dog", "med")


def _names() -> list[str]:
    names = [f"spec_{i:02d}" for i in range(N_RADIAL)]
    names += ["spec_slope_hi", "spec_tail_ratio"]
    names += [f"dct_diag_{i:02d}" for i in range(1, _DCT_DIAGONALS)]
    names += ["dct_zero_frac_hi", "dct_zero_frac_all"]
    for r in _RESIDUALS:
        names += [f"res_{r}_logstd", f"res_{r}_kurtosis", f"res_{r}_skew", f"res_{r}_absdev_ratio"]
    names += ["res_ratio_lap_dog", "res_ratio_dx_dy", "res_lap_kurtosis_local_p10", "res_lap_kurtosis_local_med"]
    names += ["per_2", "per_4", "per_8", "per_2_diag", "per_4_diag"]
    return names


FEATURE_NAMES: tuple[str, ...] = tuple(_names())


@functools.lru_cache(maxsize=8)
def _radial_index(h: int, w: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - h // 2, xx - w // 2) / (min(h, w) / 2)
    idx = np.minimum((r * n_bins).astype(np.intp), n_bins).ravel()
    counts = np.bincount(idx, None, n_bins + 1)[:n_bins]
    return idx, np.maximum(counts, 1)


@functools.lru_cache(maxsize=8)
def _hann(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)


_DCT8 = np.array([[np.cos((2 * j + 1) * i * np.pi / 16) for j in range(8)] for i in range(8)], dtype=np.float32)
_DCT8[0] *= 1 / np.sqrt(2)
_DCT8 *= 0.5
_DIAG8 = np.add.outer(np.arange(8), np.arange(8))


def _radial_profile(power: np.ndarray, n_bins: int) -> np.ndarray:
    idx, counts = _radial_index(power.shape[0], power.shape[1], n_bins)
    return np.bincount(idx, power.ravel(), n_bins + 1)[:n_bins] / counts


def _moments(r: np.ndarray) -> tuple[float, float, float, float]:
    v = r.ravel().astype(np.float32)
    v = v - v.mean()
    v2 = v * v
    var = float(v2.mean()) + 1e-12
    std = var**0.5
    kurt = float((v2 * v2).mean()) / var**2
    skew = float((v2 * v).mean()) / std**3
    # mean absolute deviation / std: 0.80 for a Gaussian, lower for heavy tails
    mad_ratio = float(np.mean(np.abs(v)) / std)
    return std, kurt, skew, mad_ratio


def _local_kurtosis(r: np.ndarray, block: int = 32) -> tuple[float, float]:
    h, w = r.shape
    hb, wb = h // block, w // block
    if hb == 0 or wb == 0:
        k = _moments(r)[1]
        return k, k
    b = r[: hb * block, : wb * block].reshape(hb, block, wb, block).transpose(0, 2, 1, 3).reshape(hb * wb, -1)
    b = b - b.mean(axis=1, keepdims=True)
    b2 = b * b
    var = b2.mean(axis=1) + 1e-12
    k = (b2 * b2).mean(axis=1) / var**2
    # flat blocks (background, clipped regions) say little about noise texture
    if k.size >= 4:
        busy = var > np.quantile(var, 0.25)
        k = k[busy] if busy.any() else k  # a flat image has no busier blocks: keep them all
    return float(np.quantile(k, 0.1)), float(np.median(k))


def _peak(mag: np.ndarray, y: int, x: int) -> float:
    h, w = mag.shape
    ys = [(y + d) % h for d in (-2, -1, 0, 1, 2)]
    xs = [(x + d) % w for d in (-2, -1, 0, 1, 2)]
    win = mag[np.ix_(ys, xs)]
    ring = np.concatenate([win[0], win[-1], win[1:-1, 0], win[1:-1, -1]])
    return float(np.log(mag[y, x] + 1e-9) - np.log(np.median(ring) + 1e-9))


def _dct_features(x: np.ndarray) -> list[float]:
    h, w = (x.shape[0] // 8) * 8, (x.shape[1] // 8) * 8
    blocks = (x[:h, :w] * 255.0 - 128.0).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    # an orthonormal 8x8 DCT-II of every block at once: C @ B @ C.T
    coef = np.abs(_DCT8 @ blocks.astype(np.float32) @ _DCT8.T)
    diag = _DIAG8
    logmag = np.log1p(coef).mean(axis=0)
    feats = [float(logmag[diag == d].mean()) for d in range(1, _DCT_DIAGONALS)]
    feats = [f - feats[0] for f in feats]  # relative to the lowest AC diagonal: contrast-free
    hi = coef[:, diag >= 8]
    feats.append(float(np.mean(hi < 0.5)))
    feats.append(float(np.mean(coef[:, diag >= 1] < 0.5)))
    return feats


def extract_features(image: np.ndarray) -> np.ndarray:
    """Feature vector of one standardized image.

    Args:
        image: float32 (S, S) in [0, 1] (``standardize`` output); S >= 32.

    Returns:
        float64 (len(FEATURE_NAMES),), finite.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a (S, S) grayscale image, got shape {x.shape}")
    feats: list[float] = []

    # 1. azimuthal log power spectrum (Hann window against edge leakage)
    f = np.fft.fftshift(np.fft.fft2((x - x.mean()) * _hann(*x.shape)))
    power = f.real**2 + f.imag**2
    prof = np.log(_radial_profile(power, N_RADIAL) + 1e-12)
    prof = prof - prof[1:4].mean()
    feats += prof.tolist()
    hi = prof[N_RADIAL // 2 :]
    feats.append(float(np.polyfit(np.arange(hi.size), hi, 1)[0]))
    feats.append(float(prof[-3:].mean() - prof[N_RADIAL // 2 - 2 : N_RADIAL // 2 + 1].mean()))

    # 2. block DCT
    feats += _dct_features(x)

    # 3. noise residuals
    res = {
        "lap": cv2.Laplacian(x, cv2.CV_32F, ksize=1),
        "dx": np.diff(x, axis=1),
        "dy": np.diff(x, axis=0),
        "dog": x - cv2.GaussianBlur(x, (0, 0), 1.0),
        "med": x - cv2.medianBlur(np.round(x * 255).astype(np.uint8), 3).astype(np.float32) / 255.0,
    }
    stds = {}
    for name in _RESIDUALS:
        std, kurt, skew, mad = _moments(res[name])
        stds[name] = std
        feats += [float(np.log(std + 1e-6)), float(np.log(max(kurt, 1e-3))), float(skew), mad]
    feats.append(float(np.log((stds["lap"] + 1e-6) / (stds["dog"] + 1e-6))))
    feats.append(float(np.log((stds["dx"] + 1e-6) / (stds["dy"] + 1e-6))))
    kp10, kmed = _local_kurtosis(res["lap"])
    feats += [float(np.log(max(kp10, 1e-3))), float(np.log(max(kmed, 1e-3)))]  # kurtosis >= 1 unless flat

    # 4. upsampling periodicity in the residual spectrum
    mag = np.abs(np.fft.fft2(res["lap"]))
    n = x.shape[0]
    feats += [
        max(_peak(mag, 0, n // 2), _peak(mag, n // 2, 0)),
        max(_peak(mag, 0, n // 4), _peak(mag, n // 4, 0)),
        max(_peak(mag, 0, n // 8), _peak(mag, n // 8, 0)),
        _peak(mag, n // 2, n // 2),
        _peak(mag, n // 4, n // 4),
    ]
    out = np.asarray(feats, dtype=np.float64)
    return np.nan_to_num(out, nan=0.0, posinf=50.0, neginf=-50.0)


def extract_many(images: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """float64 (n, n_features) for a stack or list of standardized images."""
    return np.stack([extract_features(im) for im in images]) if len(images) else np.zeros((0, len(FEATURE_NAMES)))
