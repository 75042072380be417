"""Grain consistency against a model of real acquisitions: the unsupervised half of the localizer.

A scanner's noise has a level that depends on the brightness, and a *shape* (how fine it is, how it correlates
from pixel to pixel, how heavy its tails are) that the acquisition and reconstruction chain fix for the whole
image. A region whose grain was synthesized - decoded by a network, smoothed by an in-painter, pasted from another
scan with other noise - departs from both. Per cell (``WINDOW`` px windows every ``STRIDE`` px) five statistics:

* within the image (deviation from the median of the same image's cells at the same brightness): ``log σ`` of the
  fine residual (image − blur σ=1), ``log σ`` of the band residual (blur σ=1 − blur σ=3) and the fine residual's
  lag-1 autocorrelation;
* against real acquisitions of the modality (deviation from the median of real training images at the same
  brightness): the band-to-fine ratio and the autocorrelation, which describe the noise's spectrum, not its dose.

(Kurtosis was tried and dropped: single specks make it heavy-tailed on real images.)

The model (:class:`GrainModel`, JSON) holds, per modality, the per-brightness medians of the two shape statistics
and the robust spread (MAD) of the five deviations on real cells. A cell's anomaly compares its z-scores (3 x 3
cells) with those of the ring of tissue around it (out to 9 x 9 cells): RMS of the differences. It is fitted on
untouched real images only (``fit_grain_model``), in the spirit of Back-in-Time Diffusion (model what real scans
look like, flag what does not), with statistics instead of a diffusion model so it costs milliseconds on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.analyzers.localization.copymove import box_mean
from forensics.analyzers.localization.model import STRIDE  # one cell per 8 x 8 analysis pixels: the cnn grid

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

    raw: np.ndarray  # (3, h, w): log σ fine, log σ band, lag-1 autocorrelation of the fine residual
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
    maps = [w, wr * r1, w * r2 * r2, w * 0.5 * (rx + ry), g]
    off = STRIDE // 2
    sampled = [box_mean(m, WINDOW)[off::STRIDE, off::STRIDE] for m in maps]
    ws, m2, e2, c1, mu = sampled
    d = ws + 1e-8
    m2, e2, c1 = m2 / d, e2 / d, c1 / d
    raw = np.stack([
        0.5 * np.log(np.maximum(m2, 0) + _FLOOR),
        0.5 * np.log(np.maximum(e2, 0) + _FLOOR),
        np.clip(c1 / (m2 + _FLOOR), -1, 1),
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
    """(N_FEATURES, h, w) deviations: the three raw statistics against the image's own cells at the same brightness,
    and the two shape statistics against the real-acquisition medians ``shape_medians``."""
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
        return cls.load_dict(json.loads(Path(path).read_text()))

    @classmethod
    def load_dict(cls, d: dict[str, Any]) -> GrainModel:
        return cls(d["modalities"], d.get("info", {}))

    def to_json(self) -> str:
        return json.dumps({"modalities": self.modalities, "info": self.info}, indent=1)

    def params(self, key: str) -> dict[str, Any]:
        return self.modalities.get(key) or self.modalities["any"]

    def zscores(self, st: CellStats, key: str) -> np.ndarray:
        """(5, h, w) deviations in units of their robust spread on real cells of the modality, clipped to ±8."""
        p = self.params(key)
        dev = deviations(st, np.asarray(p["shape_medians"], np.float32))
        return np.clip(dev / np.asarray(p["spread"], np.float32)[:, None, None], -8, 8)

    def anomaly(self, gray: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(per-cell anomaly, valid cells) of a float (H, W) image in [0, 1], minus its real-image median."""
        a, ok = self._contrast(cell_stats(gray), key)
        return np.where(ok, a - float(self.params(key)["cell_median"]), 0.0).astype(np.float32), ok

    def _contrast(self, st: CellStats, key: str) -> tuple[np.ndarray, np.ndarray]:
        """RMS over the features of (mean z over the 3 x 3 cells around) − (mean z over the ring out to 9 x 9).

        Against the ring rather than the whole image: a lesion-sized patch of foreign grain differs from the
        tissue right around it, while real grain drifts slowly with the anatomy (measured: cell AUC 0.6-0.8 on
        decoder-made and pasted regions, vs ~0.5 for the whole-image comparison)."""
        z = self.zscores(st, key)
        v = st.valid.astype(np.float32)

        def box(x: np.ndarray, k: int) -> np.ndarray:
            return cv2.boxFilter(x, cv2.CV_32F, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)

        n_in, n_all = box(v, 3), box(v, 9)
        diffs = []
        for k in range(N_FEATURES):
            zk = z[k] * v
            s_in, s_all = box(zk, 3), box(zk, 9)
            diffs.append(s_in / np.maximum(n_in, 1) - (s_all - s_in) / np.maximum(n_all - n_in, 1))
        a = np.sqrt(np.mean(np.stack(diffs) ** 2, axis=0))
        ok = st.valid & (n_in >= 3) & (n_all - n_in >= 8)
        return np.where(ok, a, 0.0).astype(np.float32), ok


def fit_grain_model(images: dict[str, list[np.ndarray]], rng: np.random.Generator,
                    cells_per_image: int = 1500) -> GrainModel:
    """Fit the per-modality model on untouched real images (float (H, W) in [0, 1], already at analysis size).

    Per modality: shape medians per brightness bin; the robust spread (MAD) of the five deviations; the median
    anomaly of real cells (the anomaly's zero). ``any`` pools every modality.
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
        meds = [float(np.median(a[ok])) for a, ok in (model._contrast(st, key) for st, _ in items) if ok.any()]
        model.modalities[key]["cell_median"] = round(float(np.median(meds)), 4)
    return model
