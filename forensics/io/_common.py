"""Pieces every loader shares: the pixel budget and the robust min-max mapping to [0, 1]."""

from __future__ import annotations

import numpy as np

from forensics.errors import InputError

# 2**27 = 134 million pixels (about 11585 x 11585, or 512 x 512 x 512 frames): larger than any radiograph or
# mammogram, small enough that the float32 copy of a grey image stays near 0.5 GB.
DEFAULT_MAX_PIXELS = 1 << 27

# Percentiles of the robust min-max used when a file carries no window of its own.
ROBUST_PERCENTILES = (0.5, 99.5)
# The percentiles are taken on a strided sample of at most about this many values (fast, same answer in practice).
_SAMPLE = 1 << 16


def check_pixels(count: int, max_pixels: int, what: str) -> None:
    """Raise ``too_many_pixels`` when a declared size is above the budget (called before decoding)."""
    if count > max_pixels:
        raise InputError("too_many_pixels", f"declared size {what} = {count} pixels exceeds max_pixels={max_pixels}")


def robust_unit(arr: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Map ``arr`` to float32 [0, 1] between its 0.5th and 99.5th percentiles (over all channels).

    Returns:
        (pixels float32 in [0, 1], low, high) where low/high are the values mapped to 0 and 1. A constant image
        maps to zeros. Non-finite values are ignored for the percentiles and become 0.
    """
    a = np.asarray(arr)
    flat = a.reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    sample = flat[::step]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return np.zeros(a.shape, np.float32), 0.0, 0.0
    lo, hi = (float(v) for v in np.percentile(sample, ROBUST_PERCENTILES))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    out = a.astype(np.float32)  # always a copy
    if hi <= lo:
        out[...] = 0.0
        return out, lo, hi
    out -= np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return out, lo, hi
