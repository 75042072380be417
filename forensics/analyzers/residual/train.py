"""Fit the residual analyzer's one-class models on real images only (what ``medaudit train residual`` calls).

Works on arrays: the caller (``benchmarks.train_residual``) lists, splits and loads the data folders. Every real
image goes through ``forensics.formatpath.format_path`` several times, so resizing, JPEG, window/level and bit
depth are part of what "real" looks like, then through ``standardize`` and the features.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from forensics.analyzers.residual.features import extract_features
from forensics.analyzers.residual.model import REAL_TAIL, RealModel, fit_group
from forensics.formatpath import STANDARD_SIZE, format_path, is_flat, standardize


def variant_features(images: Sequence[np.ndarray], draws: int, rng: np.random.Generator, *,
                     progress: str | None = None) -> np.ndarray:
    """float64 (n * draws, d): features of ``draws`` random format-path variants of each image (blank ones
    skipped, as the analyzer skips them)."""
    out = []
    it: Any = images
    if progress:
        from tqdm import tqdm

        it = tqdm(images, desc=progress, file=sys.stderr, leave=False)
    for im in it:
        for _ in range(draws):
            x = standardize(format_path(im, rng), STANDARD_SIZE)
            if not is_flat(x):
                out.append(extract_features(x))
    return np.stack(out) if out else np.zeros((0, 0))


def fit_residual(groups: dict[str, dict[str, Any]], *, draws: int = 4, calibration_draws: int = 8,
                 estimator: str = "ledoit_wolf", real_tail: float = REAL_TAIL, seed: int = 0,
                 progress: bool = False, info: dict[str, Any] | None = None) -> RealModel:
    """A :class:`RealModel` with one group per entry of ``groups``.

    Args:
        groups: {name: {"fit": [real pixels], "calibration": [real pixels of other sources], "modalities":
            [DICOM modality codes this group stands for], "colour": True for a modality of colour images (a grey
            image without a modality is then not compared with it)}}; pixels float (H, W[, 3]) in [0, 1].
        draws / calibration_draws: format-path variants per fitting / calibration image.
        estimator: covariance estimator (``ledoit_wolf`` or ``mcd``).
        real_tail: share of calibration images allowed to reach score 0.5.
    """
    rng = np.random.default_rng(seed)
    fitted, modalities, counts = {}, {}, {}
    for name, g in groups.items():
        fit = variant_features(g["fit"], draws, rng, progress=f"{name} fit" if progress else None)
        cal = variant_features(g["calibration"], calibration_draws, rng,
                               progress=f"{name} calibration" if progress else None)
        fitted[name] = fit_group(fit, cal, estimator=estimator, real_tail=real_tail, seed=seed)
        modalities[name] = list(g.get("modalities", []))
        counts[name] = {"fit_images": len(g["fit"]), "calibration_images": len(g["calibration"]),
                        "fit_vectors": int(fit.shape[0]), "calibration_vectors": int(cal.shape[0])}
    meta = {"estimator": estimator, "draws": draws, "calibration_draws": calibration_draws, "seed": seed,
            "counts": counts}
    meta.update(info or {})
    colour = [name for name, g in groups.items() if g.get("colour")]
    return RealModel(fitted, modalities, meta, colour_groups=colour)
