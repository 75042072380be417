"""The fused localizer: copied grain, the patch network and the grain model on one cell grid, one calibrated score.

Three maps on the network's grid (one cell per ``STRIDE`` analysis pixels):

* ``copy``: the copy-move area map (``copymove.py``) as the copy-move logit of each cell's copied area;
* ``cnn``: the patch network's logit, averaged over 3 x 3 cells (``model.py``, trained on the training tamper
  methods);
* ``grain``: the grain model's anomaly (``grain.py``, fitted on untouched real images only).

A logistic regression fitted on tampered images of the *training* tamper methods and untouched originals (both
through the same format path) weighs the three image-level peaks into the image score; the same weights applied to
each cell give the heatmap on the same calibrated scale (with non-negative weights a cell never exceeds the image).
Regions are connected cells at or above the operating threshold. The config (``localizer.json``) also carries the
figures measured on held-out files and held-out tamper methods that fusion reads before it lets a local finding reach
``high`` (``support``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.analyzers.localization.copymove import copy_move
from forensics.analyzers.localization.grain import GrainModel
from forensics.analyzers.localization.model import STRIDE, net_input, to_analysis, valid_cells

FEATURES = ("copy", "cnn", "grain")
_CLIP = 10.0  # every feature is clipped to ±_CLIP before it is weighed
_COPY_MAX_PIXELS = 1 << 22


@dataclass
class Maps:
    """The three feature maps (3, h, w) on the cell grid, their image-level peaks, and where cells sit."""

    cells: np.ndarray
    peaks: np.ndarray
    valid: np.ndarray  # (h, w) cells inside the image's content
    cell_px: float  # input pixels per cell side
    copy: Any  # the CopyMove result (for copy-move's own evidence)
    copy_scale: float  # copy-move analysis pixels per input pixel


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    """Logistic of log-odds, clipped so extreme logits cannot overflow."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def copy_logit(area: np.ndarray | float, calibration: dict[str, float]) -> np.ndarray:
    """Copy-move's calibrated logit of a copied area (px)."""
    a = np.maximum(np.asarray(area, dtype=np.float64), 1.0)
    return np.clip((np.log(a) - calibration["center"]) / calibration["scale"], -_CLIP, _CLIP)


def feature_maps(gray: np.ndarray, net: Any, grain: GrainModel, modality: str,
                 copy_calibration: dict[str, float]) -> Maps:
    """The three maps of a float (H, W) image in [0, 1] (``modality``: a grain-model key)."""
    import torch

    g, s = to_analysis(gray)
    with torch.no_grad():
        logit = net(torch.from_numpy(net_input(g))[None])[0, 0].numpy()
    h, w = logit.shape
    if min(h, w) >= 3:
        logit = cv2.blur(logit, (3, 3), borderType=cv2.BORDER_REFLECT)
    valid = valid_cells(g, (h, w))
    an, ok = grain.anomaly(g, modality)
    if an.shape != (h, w):
        an = cv2.resize(an, (w, h), interpolation=cv2.INTER_NEAREST)
        ok = cv2.resize(ok.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0

    sc = min(1.0, float(np.sqrt(_COPY_MAX_PIXELS / gray.size)))
    gc = gray if sc >= 1.0 else cv2.resize(gray, (round(gray.shape[1] * sc), round(gray.shape[0] * sc)),
                                           interpolation=cv2.INTER_AREA)
    found = copy_move(np.ascontiguousarray(gc, dtype=np.float32))
    # each cell takes the largest copied area it touches
    k = max(1, int(round(STRIDE * sc / s)))
    area = cv2.dilate(found.map, np.ones((k, k), np.uint8))
    area = cv2.resize(area, (w, h), interpolation=cv2.INTER_NEAREST)

    cnn = np.clip(np.where(valid, logit, -_CLIP), -_CLIP, _CLIP)
    gr = np.clip(np.where(ok, an, 0.0), -_CLIP, _CLIP)
    cells = np.stack([copy_logit(area, copy_calibration), cnn, gr]).astype(np.float32)
    peaks = np.array([float(copy_logit(found.area, copy_calibration)),
                      float(cnn[valid].max()) if valid.any() else -_CLIP,
                      float(gr[ok].max()) if ok.any() else 0.0], np.float64)
    return Maps(cells, peaks, valid, STRIDE / s, found, sc)


@dataclass
class LocalizerConfig:
    """``localizer.json``: the logistic's weights over FEATURES, its bias per modality (grain-model keys; ``any``
    for the rest: copied grain and network peaks sit at different levels on each modality), the operating threshold
    and the support figures."""

    weights: list[float]
    bias: dict[str, float]
    threshold: float
    support: dict[str, Any]
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> LocalizerConfig:
        d = json.loads(Path(path).read_text())
        b = d["bias"]
        bias = {k: float(v) for k, v in b.items()} if isinstance(b, dict) else {"any": float(b)}
        return cls([float(v) for v in d["weights"]], bias, float(d["threshold"]), d.get("support", {}),
                   d.get("info", {}))

    def _bias(self, modality: str) -> float:
        return self.bias.get(modality, self.bias.get("any", 0.0))

    def image_logit(self, peaks: np.ndarray, modality: str) -> np.ndarray:
        """Calibrated log-odds of (n, 3) or (3,) image-level peaks."""
        return np.asarray(peaks, np.float64) @ np.asarray(self.weights) + self._bias(modality)

    def cell_probability(self, cells: np.ndarray, modality: str) -> np.ndarray:
        z = np.tensordot(np.asarray(self.weights, np.float32), cells, axes=1) + self._bias(modality)
        return sigmoid(z).astype(np.float32)


def regions(heat: np.ndarray, threshold: float, cell_px: float, spacing_mm: tuple[float, float] | None,
            limit: int = 3) -> list[dict[str, Any]]:
    """The connected groups of cells at or above ``threshold``, hottest first: bounding box [x0, y0, x1, y1] and
    centre in input pixels, area in px (and mm² when the spacing is known), the peak."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats((heat >= threshold).astype(np.uint8), connectivity=8)
    out = []
    for k in range(1, n):
        sel = lab == k
        x, y, w, h, cells = (int(v) for v in stats[k])
        area_px = cells * cell_px * cell_px
        r: dict[str, Any] = {
            "box": [round(x * cell_px), round(y * cell_px), round((x + w) * cell_px), round((y + h) * cell_px)],
            "at": [round((x + w / 2) * cell_px), round((y + h / 2) * cell_px)],
            "area_px": round(area_px),
            "peak": round(float(heat[sel].max()), 4),
        }
        if spacing_mm:
            r["area_mm2"] = round(area_px * float(spacing_mm[0]) * float(spacing_mm[1]), 1)
        out.append(r)
    return sorted(out, key=lambda r: -r["peak"])[:limit]


def fit_logistic(x: np.ndarray, y: np.ndarray, groups: np.ndarray, l2: float = 1e-2,
                 steps: int = 2000) -> tuple[np.ndarray, dict[str, float]]:
    """Weights (non-negative: more evidence never lowers the score) and one bias per group (modality) of a logistic
    regression, by projected gradient descent on standardized features; ``x`` (n, k), ``y`` (n,) in {0, 1},
    ``groups`` (n,) names; classes weighted equally. The ``any`` bias is the groups' mean."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    names = sorted(set(groups.tolist()))
    onehot = np.stack([groups == g for g in names], 1).astype(np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd
    cw = np.where(y > 0.5, 0.5 / max(y.mean(), 1e-6), 0.5 / max(1 - y.mean(), 1e-6))
    w, b = np.zeros(x.shape[1]), np.zeros(len(names))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xs @ w + onehot @ b)))
        g = cw * (p - y) / len(y)
        w = np.maximum(w - 1.0 * (xs.T @ g + l2 * w), 0.0)
        b -= 4.0 * (onehot.T @ g)
    bias = {n: float(v - (w / sd) @ mu) for n, v in zip(names, b, strict=True)}
    bias["any"] = float(np.mean(list(bias.values())))
    return w / sd, bias
