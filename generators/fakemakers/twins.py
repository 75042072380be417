"""Real twins of fake-maker remakes: the real image with exactly as little fine detail as its remake.

A decoder's remake is smoother than the real image it came from, and so is every real image a viewer shrank and
enlarged again. Trained on (real, remake) pairs alone, the detectors learned "smooth = synthetic" and flagged most
resized real images (docs/BENCHMARKS.md, "Fake makers and a real-only model"). Each remake therefore gets a real twin
labelled real: the real image low-passed to the remake's radial power spectrum. Within a pair, the amount of detail
is then equal by construction, and only how the pixels were made - the decoder's texture, its upsampler's grid -
can separate them.
"""

from __future__ import annotations

import numpy as np

#: Radial frequency bins of the matched power spectrum.
N_BINS = 48


def _radial(h: int, w: int) -> np.ndarray:
    """Radial frequency of every DCT-II coefficient of an (h, w) image, scaled to [0, 1] (1 = the corner)."""
    fy = np.arange(h)[:, None] / (2.0 * h)
    fx = np.arange(w)[None, :] / (2.0 * w)
    return np.sqrt(fy**2 + fx**2) / np.sqrt(0.5)


def envelope_twin(real: np.ndarray, remake: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """``real`` (float32 (H, W) in [0, 1]) filtered so its radial power spectrum follows ``remake``'s (same shape).

    Gains are capped at 1: detail the remake lost is removed from the real image, detail it added (a decoder's grid,
    noise) is never copied in - that is the trace the detectors should learn. The spectra are DCTs (a mirrored
    image has no edge jump, whose leakage would otherwise swamp the fine-detail bins).
    """
    from scipy.fft import dctn, idctn

    real = np.asarray(real, np.float64)
    remake = np.asarray(remake, np.float64)
    if real.shape != remake.shape or real.ndim != 2:
        raise ValueError(f"need two grayscale images of one shape, got {real.shape} and {remake.shape}")
    rad = _radial(*real.shape)
    idx = np.minimum((rad * n_bins).astype(int), n_bins - 1).ravel()
    r_spec = dctn(real, norm="ortho")
    f_spec = dctn(remake, norm="ortho")

    def profile(spec: np.ndarray) -> np.ndarray:
        return np.bincount(idx, (spec**2).ravel(), n_bins) / np.maximum(np.bincount(idx, None, n_bins), 1)

    gain = np.sqrt(profile(f_spec) / np.maximum(profile(r_spec), 1e-18))
    centres = (np.arange(n_bins) + 0.5) / n_bins
    g = np.interp(rad, centres, np.clip(gain, 0.0, 1.0))
    g[0, 0] = 1.0  # the mean stays
    out = idctn(r_spec * g, norm="ortho")
    return np.clip(out, 0.0, 1.0).astype(np.float32)
