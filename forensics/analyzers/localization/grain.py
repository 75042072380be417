"""Grain consistency against a model of real acquisitions: the unsupervised half of the localizer.

A scanner's noise has a level that depends on the brightness, and a *shape* (how fine it is, how it correlates
from pixel to pixel, how heavy its tails are) that the acquisition and reconstruction chain fix for the whole
image. A region whose grain was synthesized - decoded by a network, smoothed by an in-painter, pasted from another
scan with other noise - departs from both. Per cell (``WINDOW`` px windows every ``STRIDE`` px) seven statistics:

* within the image (robust deviation from the same image's cells at the same brightness): ``log σ`` of the fine
  residual (image − blur σ=1), ``log σ`` of the band residual (blur σ=1 − blur σ=3), the fine residual's lag-1
  autocorrelation and its log kurtosis;
* against real acquisitions of the modality (deviation from the median of real training images at the same
  brightness): the band-to-fine ratio, the autocorrelation and the kurtosis, which do not depend on the dose.

The model (:class:`GrainModel`, JSON) holds, per modality, the per-brightness medians of the three shape statistics
and the robust covariance of the seven deviations on real cells; a cell's anomaly is its Mahalanobis distance,
averaged over a lesion-sized neighbourhood. It is fitted on untouched real images only (``fit_grain_model``), in the
spirit of Back-in-Time Diffusion (fit what real scans look like, flag what does not), with statistics instead of a
diffusion model so it runs in milliseconds on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.analyzers.localization.copymove import box_mean

STRIDE = 8  # one cell per 8 x 8 analysis pixels (the cnn's grid)
WINDOW = 16  # statistics over 16 x 16 pixels around each cell
BINS = 12  # brightness bins
N_FEATURES = 5
FEATURES = ("d_log_fine", "d_log_band", "d_autocorr", "m_band_ratio", "m_autocorr")
#: Modalities a model may be fitted for (the keys of ``GrainModel.modalities``); ``any`` pools them all.
MODALITY_KEYS = ("ct", "xray", "mri", "mammo", "any")
_FLOOR = (0.1 / 255) ** 2  # a tenth of a grey level: keeps logarithms finite on flat regions


def modality_key(code: str | None) -> str:
    """The grain model's key for a DICOM modality code (or the estimate's): CT, CR/DX, MR, MG; else ``any``."""
    c = (code or "").upper()
    return {"CT": "ct", "CR": "xray", "DX": "xray", "RG": "xray", "MR": "mri", "MG": "mammo"}.get(c, "any")


@dataclass
class CellStats:
    """Per-cell raw statistics on the cell grid (h, w)."""

    raw: np.ndarray  # (4, h, w): log σ fine, log σ band, lag-1 autocorrelation, log kurtosis
    mu: np.ndarray  # (h, w) mean brightness
    valid: np.ndarray  # (h, w) bool: enough off-edge, unsaturated pixels


def cell_stats(gray: np.ndarray) -> CellStats:
    """Statistics of every ``WINDOW`` px window, sampled every ``STRIDE`` px, of a float (H, W) image in [0, 1]."""
    g = gray.astype(np.float32)
    b1 = cv2.GaussianBlur(g, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    b3 = cv2.GaussianBlur(g, (0, 0), 3.0, borderType=cv2.BORDER_REFLECT)
    r1, r2 = g - b1, b1 - b3
    grad = np.hypot(cv2.Sobel(b3, cv2.CV_32F, 1, 0), cv2.Sobel(b3, cv2.CV_32F, 0, 1))
    inside = (b3 > 0.02) & (b3 < 0.98)
    # anatomy edges carry structure, not grain; smooth slopes stay in
    thr = 5.0 * float(np.median(grad[inside])) + 1e-6 if inside.sum() > 64 else np.inf
    w = (inside & (grad <= thr)).astype(np.float32)
    rx = np.zeros_like(r1)
    rx[:, :-1] = r1[:, :-1] * r1[:, 1:]
    ry = np.zeros_like(r1)
    ry[:-1] = r1[:-1] * r1[1:]
    wr = w * r1
    maps = [w, wr * r1, wr * r1**3, w * r2 * r2, w * 0.5 * (rx + ry), g]
    off = STRIDE // 2
    sampled = [box_mean(m, WINDOW)[off::STRIDE, off::STRIDE] for m in maps]
    ws, m2, m4, e2, c1, mu = sampled
    d = ws + 1e-8
    m2, m4, e2, c1 = m2 / d, np.maximum(m4, 0) / d, e2 / d, c1 / d
    raw = np.stack([
        0.5 * np.log(np.maximum(m2, 0) + _FLOOR),
        0.5 * np.log(np.maximum(e2, 0) + _FLOOR),
        np.clip(c1 / (m2 + _FLOOR), -1, 1),
        np.log(m4 / (m2 * m2 + 1e-12) + 1e-6),
    ]).astype(np.float32)
    return CellStats(raw, mu.astype(np.float32), ws > 0.35)


def _bin_index(mu: np.ndarray) -> np.ndarray:
    return np.clip((mu * BINS).astype(int), 0, BINS - 1)


def _image_medians(v: np.ndarray, bins: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-cell median of ``v`` over the image's valid cells of the same brightness bin (overall median where a
    bin holds fewer than 8 cells)."""
    out = np.zeros_like(v)
    sel_all = valid
    overall = float(np.median(v[sel_all])) if sel_all.any() else 0.0
    for b in range(BINS):
        sel = valid & (bins == b)
        out[bins == b] = float(np.median(v[sel])) if sel.sum() >= 8 else overall
    return out


def deviations(stats: CellStats, shape_medians: np.ndarray) -> np.ndarray:
    """(7, h, w) deviations: the four raw statistics against the image's own cells at the same brightness, and the
    three shape statistics against the real-acquisition medians ``shape_medians`` (3, BINS)."""
    bins = _bin_index(stats.mu)
    raw, valid = stats.raw, stats.valid
    within = np.stack([raw[k] - _image_medians(raw[k], bins, valid) for k in range(3)])
    shape = np.stack([raw[1] - raw[0], raw[2]])
    model = shape - shape_medians[:, bins]
    return np.concatenate([within, model]).astype(np.float32)


@dataclass
class GrainModel:
    """Per-modality statistics of real grain (``fit_grain_model``); JSON in and out."""

    modalities: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> GrainModel:
        d = json.loads(Path(path).read_text())
        return cls(d["modalities"], d.get("info", {}))

    def to_json(self) -> str:
        return json.dumps({"modalities": self.modalities, "info": self.info}, indent=1)

    def params(self, key: str) -> dict[str, Any]:
        return self.modalities.get(key) or self.modalities["any"]

    def distance(self, st: CellStats, key: str) -> np.ndarray:
        """Per-cell RMS of the deviations in units of their robust spread on real cells, each clipped to 8.

        Not a Mahalanobis distance: on real cells the deviations move together with the anatomy's texture energy,
        and a synthesized patch (smooth, or grain from elsewhere) moves along that same direction, only farther."""
        p = self.params(key)
        dev = deviations(st, np.asarray(p["shape_medians"], np.float32))
        z = dev / np.asarray(p["spread"], np.float32)[:, None, None]
        return np.sqrt(np.mean(np.clip(z, -8, 8) ** 2, axis=0))

    def anomaly(self, gray: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(per-cell anomaly, valid cells) of a float (H, W) image in [0, 1]: the distance averaged over the 3 x 3
        neighbouring valid cells (a lesion is larger than one cell), minus the real cells' median of that."""
        return self._smoothed(cell_stats(gray), key, float(self.params(key)["cell_median"]))

    def _smoothed(self, st: CellStats, key: str, centre: float) -> tuple[np.ndarray, np.ndarray]:
        v = st.valid.astype(np.float32)
        d = self.distance(st, key)
        num = cv2.boxFilter(d * v, cv2.CV_32F, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
        den = cv2.boxFilter(v, cv2.CV_32F, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
        ok = st.valid & (den >= 3)
        return np.where(ok, num / np.maximum(den, 1) - centre, 0.0).astype(np.float32), ok


def fit_grain_model(images: dict[str, list[np.ndarray]], rng: np.random.Generator,
                    cells_per_image: int = 1500) -> GrainModel:
    """Fit the per-modality model on untouched real images (float (H, W) in [0, 1], already at analysis size).

    Per modality: shape medians per brightness bin; then the covariance of the seven deviations, recomputed twice
    without the 5 % most distant cells (robust to the odd artifact); then the median smoothed distance of real
    cells (the anomaly's zero). ``any`` pools every modality.
    """
    per: dict[str, list[tuple[CellStats, np.ndarray]]] = {}
    for key, imgs in images.items():
        per[key] = [(st, rng.random(st.mu.shape) < cells_per_image / max(int(st.valid.sum()), 1))
                    for st in (cell_stats(g) for g in imgs)]
    per["any"] = [t for k in list(per) for t in per[k]]
    model = GrainModel(info={"features": list(FEATURES), "stride": STRIDE, "window": WINDOW, "bins": BINS,
                             "images": {k: len(v) for k, v in images.items()}})
    for key, items in per.items():
        if not items:
            continue
        shape_vals: list[list[np.ndarray]] = [[] for _ in range(BINS)]
        for st, pick in items:
            sel = st.valid & pick
            b = _bin_index(st.mu[sel])
            sh = np.stack([st.raw[1][sel] - st.raw[0][sel], st.raw[2][sel]], 1)
            for k in range(BINS):
                shape_vals[k].append(sh[b == k])
        per_bin = [np.concatenate(v) for v in shape_vals]
        overall = np.median(np.concatenate(per_bin), axis=0)
        med = np.stack([np.median(v, 0) if len(v) >= 50 else overall for v in per_bin], 1).astype(np.float32)
        devs = np.concatenate([deviations(st, med)[:, st.valid & pick].T for st, pick in items])
        devs = devs[np.all(np.isfinite(devs), 1)]
        spread = 1.4826 * np.median(np.abs(devs - np.median(devs, 0)), 0) + 1e-4
        model.modalities[key] = {"shape_medians": med.round(5).tolist(), "spread": spread.round(5).tolist(),
                                 "cell_median": 0.0, "cells": int(len(devs))}
        meds = [float(np.median(a[ok])) for a, ok in (model._smoothed(st, key, 0.0) for st, _ in items) if ok.any()]
        model.modalities[key]["cell_median"] = round(float(np.median(meds)), 4)
    return model
