"""Training-set reader for a source that is not one image per file: a NIfTI volume as its axial slices.

Used by ``generators.data`` and ``benchmarks.datafiles`` so that generators and detectors see the same slices.
The scanner itself shows a NIfTI file by its middle slice (:mod:`forensics.io.nifti`).
"""

from __future__ import annotations

import os

import numpy as np

from forensics.io._common import DEFAULT_MAX_PIXELS, ROBUST_PERCENTILES
from forensics.io.guarded import read_file

#: A slice whose share of pixels above :data:`FOREGROUND_LEVEL` is below this is skipped (air above the skull).
MIN_FOREGROUND = 0.15
FOREGROUND_LEVEL = 0.1


def is_volume(path: str | os.PathLike) -> bool:
    """True for a NIfTI file (by name): read it with :func:`volume_slices`."""
    return os.fspath(path).lower().endswith((".nii", ".nii.gz"))


def volume_slices(path: str | os.PathLike, max_slices: int | None = None,
                  min_foreground: float = MIN_FOREGROUND) -> list[np.ndarray]:
    """The axial slices of a NIfTI volume, float32 (H, W) in [0, 1], oriented as the scanner shows the middle one.

    Intensities are normalized once per volume (the 0.5th percentile and the 99.5th percentile of the voxels
    above it map to 0 and 1), so slices of one scan keep their relative brightness. Slices with less than
    ``min_foreground`` of their pixels above :data:`FOREGROUND_LEVEL` are skipped; of the rest, ``max_slices``
    evenly spaced ones are kept (all when None).

    Raises:
        InputError: as :func:`forensics.io.load` for an unreadable or damaged file.
    """
    from forensics.errors import InputError
    from forensics.io.nifti import decode_volume
    from forensics.io.sniff import sniff_format

    data = read_file(path)
    if sniff_format(data) != "nifti":
        raise InputError("unsupported_format", "not a single-file NIfTI volume")
    vol = decode_volume(data, DEFAULT_MAX_PIXELS).astype(np.float32)
    finite = vol[np.isfinite(vol)]
    step = max(1, finite.size // (1 << 18))
    sample = finite[::step]
    lo = float(np.percentile(sample, ROBUST_PERCENTILES[0])) if sample.size else 0.0
    above = sample[sample > lo]
    hi = float(np.percentile(above, ROBUST_PERCENTILES[1])) if above.size else lo + 1.0
    unit = np.nan_to_num(np.clip((vol - lo) / max(hi - lo, 1e-6), 0.0, 1.0))
    keep = [k for k in range(unit.shape[2]) if (unit[:, :, k] > FOREGROUND_LEVEL).mean() >= min_foreground]
    if max_slices is not None and len(keep) > max_slices:
        keep = [keep[int(i)] for i in np.linspace(0, len(keep) - 1, max_slices).round()]
    # array axes are (x=R, y=A): rows run anterior -> posterior as in forensics.io.nifti
    return [np.ascontiguousarray(np.flipud(unit[:, :, k].T)) for k in keep]
