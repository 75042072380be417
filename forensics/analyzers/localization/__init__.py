"""The ``localization`` analyzer: finds a local manipulation (an injected or removed lesion) in an otherwise real image.

Four methods, one output (a calibrated image score and a heatmap of cells, both in [0, 1]):

* ``fused`` (opt-in until its held-out figures beat copy-move's; docs/BENCHMARKS.md): the three below that learned
  something - copy-move, the patch network and the grain model (``grain.py``, fitted on untouched real scans
  only) - on one cell grid, weighed by a logistic regression fitted on
  the training tamper methods (``fused.py``, ``localizer.json``). Its finding also names the regions at or above
  the operating threshold (box, centre, area in px and mm²) and carries the held-out figures fusion reads before a
  local finding may reach ``high`` (``data["support"]``).
* ``copymove`` (default): grain copied from elsewhere in the same image (``copymove.py``). Tools hide an edit by
  pasting a neighbour's noise onto it; the noise *level* then matches, but two regions with pixel-identical residuals
  do not occur in a real scan. Score: a logistic of the log area of the largest copied region.
* ``cnn``: a fully convolutional patch network (``model.py``; intensity and residuals as input channels, one logit
  per 8 x 8 pixels) trained by ``benchmarks.train_localization`` on crops tampered by the ``generators.tamper``
  methods marked for training vs untouched crops (CT, chest X-ray, mammography, brain MRI), both through the same
  format path.
* ``noise`` (training-free; catches crude edits such as a smoothed patch): noise-level inconsistency, as in
  splicing forensics (Mahdian & Saic 2009; Lyu et al. 2014). Per window: ``log σ`` of the fine residual (image −
  blur σ=1) and of a band-pass residual (blur σ=1 − blur σ=3), and the kurtosis of the fine residual, each compared
  with what the same image shows at the same brightness (per-image, per-intensity-bin median) as a robust z-score
  (MAD); edges left out.

The cnn and noise scores are a logistic of the map's peak, centred on real images (``calibration.json``). See
README.md in this folder for measured numbers and limits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import TAMPER_MODALITIES, Analyzer
from forensics.analyzers.localization.copymove import box_mean, copy_move
from forensics.analyzers.localization.fused import FEATURES as FUSED_FEATURES
from forensics.analyzers.localization.fused import LocalizerConfig, sigmoid
from forensics.analyzers.localization.grain import GrainModel, modality_key
from forensics.formatpath import to_gray
from forensics.records import Evidence, Finding, MedicalImage

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights" / "localization"
# the training-free ``noise`` method's logistic; centre at about the 95th percentile of real chest CT / CXR peaks
_NOISE_CALIBRATION = {"center": 7.6, "scale": 0.5}
# ``copymove``: logistic of log(area px) of the largest copied region. Set on 40 training-split chest CT / CXR files
# and tampered copies (never the benchmark's held-out files): real images' largest chance match was 47-102 px
# (p90 42-84), tampered copies' median 148-1072 px; 120 px scores 0.5, 250 px 0.95.
_COPY_CALIBRATION = {"center": math.log(120.0), "scale": 0.25}
# copies are only exact at native resolution; beyond this many pixels the image is reduced (copies then blur)
_COPY_MAX_PIXELS = 1 << 22
_MIN_SIDE = 48

__all__ = ["LocalizationAnalyzer", "anomaly_map"]


def _robust_z(v: np.ndarray, mu: np.ndarray, valid: np.ndarray, bins: int = 12) -> np.ndarray:
    """(v − f(mu)) / MAD, where f = the median of v over the valid pixels in each brightness bin."""
    z = np.zeros_like(v)
    if valid.sum() < 64:
        return z
    edges = np.unique(np.quantile(mu[valid], np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        edges = np.array([mu[valid].min(), mu[valid].max() + 1e-6])
    idx = np.clip(np.searchsorted(edges, mu, side="right") - 1, 0, edges.size - 2)
    med = np.zeros(edges.size - 1, np.float32)
    overall = float(np.median(v[valid]))
    for b in range(edges.size - 1):
        sel = valid & (idx == b)
        med[b] = float(np.median(v[sel])) if sel.sum() >= 16 else overall
    dev = v - med[idx]
    mad = 1.4826 * float(np.median(np.abs(dev[valid]))) + 1e-6
    z = dev / mad
    z[~valid] = 0.0
    return z


def anomaly_map(gray: np.ndarray, window: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel anomaly (RMS of robust z-scores) and the valid-pixel mask, at the input's resolution.

    Args:
        gray: float32 (H, W) in [0, 1].
        window: side of the square window the local statistics are taken over, in pixels.
    """
    g = gray.astype(np.float32)
    b1 = cv2.GaussianBlur(g, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    b3 = cv2.GaussianBlur(g, (0, 0), 3.0, borderType=cv2.BORDER_REFLECT)
    r1, r2 = g - b1, b1 - b3
    gx, gy = cv2.Sobel(b3, cv2.CV_32F, 1, 0), cv2.Sobel(b3, cv2.CV_32F, 0, 1)
    grad = np.hypot(gx, gy)
    inside = (b3 > 0.02) & (b3 < 0.98)
    # anatomy edges (several times the typical gradient) carry structure, not noise; smooth slopes stay in
    thr = 5.0 * float(np.median(grad[inside])) + 1e-6 if inside.sum() > 64 else np.inf
    w = (inside & (grad <= thr)).astype(np.float32)
    wsum = box_mean(w, window)
    eps = 1e-10
    m2 = np.maximum(box_mean(w * r1 * r1, window), 0) / (wsum + eps)
    m4 = np.maximum(box_mean(w * r1**4, window), 0) / (wsum + eps)
    e2 = np.maximum(box_mean(w * r2 * r2, window), 0) / (wsum + eps)
    mu = box_mean(g, window)
    # saturated background is left out by ``inside``; a flat region inside the body is itself suspicious, so the
    # floor (a tenth of an 8-bit grey level) only keeps the logarithm finite
    valid = wsum > 0.35
    floor = (0.1 / 255) ** 2
    ls = 0.5 * np.log(m2 + floor)
    lt = 0.5 * np.log(e2 + floor)
    kurt = np.log(m4 / (m2 * m2 + eps) + eps)
    zs = np.stack([_robust_z(v, mu, valid) for v in (ls, lt, kurt)])
    a = np.sqrt(np.mean(np.clip(zs, -8, 8) ** 2, axis=0))
    a[~valid] = 0.0
    return a.astype(np.float32), valid


@register_analyzer("localization")
class LocalizationAnalyzer(Analyzer):
    """Where in an otherwise real image a region was altered: a heatmap and a calibrated image score.

    Args:
        weights_dir: the folder of the ``cnn`` files (``weights.safetensors``, ``config.json``,
            ``calibration.json``) and the ``fused`` ones (those, ``grain.json``, ``localizer.json``); default
            ``forensics/weights/localization``.
        method: ``copymove`` (default), ``fused``, ``cnn`` or ``noise`` (see the module docstring).
        threads: when given, ``torch.set_num_threads(threads)`` at load (``cnn``).
        max_cells: the heatmap has at most this many cells per side (max-pooled; it travels in every JSON line).
    """

    name = "localization"
    version = "2.0"
    kind = "local"
    # Opt-in for `scan` (--analyzers ...,localization): the copy search runs at native resolution and takes seconds
    # per chest X-ray on one CPU core, too slow for the default triage; `screen` turns it on.
    default = False
    modalities = TAMPER_MODALITIES
    METHODS = ("fused", "copymove", "cnn", "noise")

    def __init__(
        self, weights_dir: str | Path | None = None, method: str = "copymove", threads: int | None = None,
        max_cells: int = 32,
    ):
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.weights_dir = weights_dir
        self.method = method
        self.threads = threads
        self.max_cells = max_cells
        self._net: Any = None
        self._calibration: dict[str, float] | None = None
        self._grain: GrainModel | None = None
        self._fused: LocalizerConfig | None = None

    def _dir(self) -> Path:
        return Path(self.weights_dir) if self.weights_dir is not None else DEFAULT_WEIGHTS_DIR

    @property
    def _files(self) -> list[Path]:
        d = self._dir()
        cnn = [d / "weights.safetensors", d / "config.json", d / "calibration.json"]
        return cnn + [d / "grain.json", d / "localizer.json"] if self.method == "fused" else cnn

    def model_files(self) -> list[Path]:
        return [p for p in self._files if p.is_file()] if self.method in ("cnn", "fused") else []

    @property
    def grain_model(self) -> GrainModel:
        if self._grain is None:
            self._grain = GrainModel.load(self._dir() / "grain.json")
        return self._grain

    @property
    def fused_config(self) -> LocalizerConfig:
        if self._fused is None:
            self._fused = LocalizerConfig.load(self._dir() / "localizer.json")
        return self._fused

    @property
    def copy_calibration(self) -> dict[str, float]:
        return dict(_COPY_CALIBRATION)

    def availability(self) -> tuple[bool, str]:
        if self.method in ("cnn", "fused"):
            missing = [str(p) for p in self._files if not p.is_file()]
            if missing:
                return False, f"localization weights not found: {', '.join(missing)}"
            for module in ("torch", "safetensors"):
                try:
                    __import__(module)
                except ImportError:
                    return False, f"localization (cnn) needs the {module!r} package, which is not installed"
        return True, ""

    @property
    def calibration(self) -> dict[str, float]:
        if self._calibration is None:
            if self.method == "cnn":
                cal = json.loads((self._dir() / "calibration.json").read_text())
                self._calibration = {"center": float(cal["center"]), "scale": float(cal["scale"])}
            else:
                self._calibration = dict(_COPY_CALIBRATION if self.method == "copymove" else _NOISE_CALIBRATION)
        return self._calibration

    def _prob(self, x: np.ndarray | float) -> np.ndarray:
        c = self.calibration
        return sigmoid((np.asarray(x, dtype=np.float64) - c["center"]) / c["scale"])

    def _load(self):
        if self._net is None:
            import torch
            from safetensors.torch import load_file

            from forensics.analyzers.localization.model import build

            if self.threads:
                torch.set_num_threads(self.threads)
            cfg = json.loads((self._dir() / "config.json").read_text())
            net = build(**cfg.get("model", {}))
            net.load_state_dict({k: v.float() for k, v in load_file(str(self._dir() / "weights.safetensors")).items()})
            net.eval()
            self._net = net
        return self._net

    def score_map(self, pixels: np.ndarray) -> tuple[np.ndarray, float]:
        """(uncalibrated map, analysis pixels per input pixel) of the ``cnn`` (one cell per ``STRIDE`` analysis
        pixels) or ``noise`` (one per pixel) method."""
        from forensics.analyzers.localization.model import net_input, to_analysis, valid_cells

        g, s = to_analysis(to_gray(pixels))
        if self.method == "cnn":
            import torch

            net = self._load()
            with torch.no_grad():
                logit = net(torch.from_numpy(net_input(g))[None])[0, 0].numpy()
            if min(logit.shape) >= 3:
                logit = cv2.blur(logit, (3, 3), borderType=cv2.BORDER_REFLECT)
            # saturated background (the air around a CT slice) holds no evidence either way
            logit = np.where(valid_cells(g, logit.shape), logit, min(float(logit.min()), -10.0))
            return logit.astype(np.float32), s
        a, valid = anomaly_map(g, 16)
        k = 24
        num, den = box_mean(a, k), box_mean(valid.astype(np.float32), k)
        return np.where(den > 0.5, num / np.maximum(den, 1e-6), 0.0).astype(np.float32), s

    def analyze(self, image: MedicalImage) -> Finding:
        pixels = np.asarray(image.pixels)
        h, w = pixels.shape[:2]
        if min(h, w) < _MIN_SIDE:
            return self.finding(None, [Evidence("localization.too_small", f"{w}x{h} px is too small", 0.0)])
        if self.method == "copymove":
            return self._copymove(pixels)
        if self.method == "fused":
            return self._fused_finding(image, pixels)
        return self._peak_finding(pixels)

    def _fused_finding(self, image: MedicalImage, pixels: np.ndarray) -> Finding:
        """Copy-move, the patch network and the grain model on one grid (``fused.py``): a calibrated score, the
        heatmap on that scale, the regions at or above the operating threshold; copy-move's evidence kept."""
        from forensics.analyzers.localization.fused import feature_maps, regions

        g = to_gray(pixels)
        key = modality_key(_modality_code(image))
        maps = feature_maps(g, self._load(), self.grain_model, key, self.copy_calibration)
        cfg = self.fused_config
        score = float(sigmoid(cfg.image_logit(maps.peaks, key)))
        heat = cfg.cell_probability(maps.cells, key)
        found_regions = regions(heat, cfg.threshold, maps.cell_px, image.spacing_mm)
        pool = max(1, math.ceil(max(heat.shape) / self.max_cells))
        heat_out = _max_pool(heat, pool) if pool > 1 else heat
        s = maps.copy_scale
        copy = self._copy_evidence(maps.copy, float(sigmoid(maps.peaks[0])), s)
        contrib = dict(zip(FUSED_FEATURES, (np.asarray(cfg.weights) * maps.peaks).round(3).tolist(), strict=True))
        data: dict[str, Any] = {
            "method": "fused", "modality_model": key, "cell_px": round(maps.cell_px * pool, 2),
            "threshold": cfg.threshold, "regions": found_regions, "peaks": dict(zip(FUSED_FEATURES,
                                                                                  maps.peaks.round(3).tolist(),
                                                                                  strict=True)),
            "logit_parts": contrib, "support": dict(cfg.support), **copy[1],
        }
        evidence = list(copy[0])
        if score >= cfg.threshold and found_regions:
            r = found_regions[0]
            where = f"{r['area_px']} px" + (f" ({r['area_mm2']} mm²)" if "area_mm2" in r else "")
            evidence.insert(0, Evidence(
                "localization.edited_region",
                f"a {where} region at ({r['at'][0]}, {r['at'][1]}) looks locally edited: its grain and texture "
                f"differ from the tissue around it and from real acquisitions (score {score:.2f}, operating "
                f"threshold {cfg.threshold:.2f})", round(score, 4)))
        elif not any(e.weight > 0 for e in evidence):
            evidence = [Evidence(
                "localization.weak_region",
                f"no region above the operating threshold {cfg.threshold:.2f}; score {score:.2f}, not evidence of "
                f"an edit on its own", 0.0)]
        return self.finding(score, evidence, heatmap=heat_out.astype(np.float32), data=data)

    def _copy_evidence(self, found: Any, score: float, s: float) -> tuple[list[Evidence], dict[str, Any]]:
        """Copy-move's evidence and data (copied area, both centres and boxes) at input coordinates."""
        data: dict[str, Any] = {"area_px": round(found.area / (s * s))}
        evidence = []
        if found.at is not None:
            at = [int(v / s) for v in found.at]
            src = [int(v / s) for v in found.source_at]
            data.update(at=at, source_at=src)
            if found.box is not None:  # for the report's copy-move overlay
                data.update(box=[round(v / s) for v in found.box], source_box=[round(v / s) for v in found.source_box])
            if score >= 0.5:
                evidence.append(Evidence(
                    "localization.copied_texture",
                    f"the fine grain of a {data['area_px']} px region at ({at[0]}, {at[1]}) is a pixel-for-pixel copy "
                    f"of the region at ({src[0]}, {src[1]}); editing tools paste texture like this to hide a change",
                    round(score, 4)))
            else:  # the score still counts (a little) in fusion: say what it rests on
                evidence.append(Evidence(
                    "localization.weak_match",
                    f"largest pixel-identical grain match: {data['area_px']} px at ({at[0]}, {at[1]}) from "
                    f"({src[0]}, {src[1]}), within what untouched scans show by chance (up to about 100 px); "
                    f"score {score:.2f}, not evidence of an edit on its own", 0.0))
        else:
            evidence.append(Evidence("localization.no_copy", f"no copied grain found (score {score:.2f})", 0.0))
        return evidence, data

    def _copymove(self, pixels: np.ndarray) -> Finding:
        g = to_gray(pixels)
        s = min(1.0, math.sqrt(_COPY_MAX_PIXELS / g.size))
        if s < 1.0:
            g = cv2.resize(g, (round(g.shape[1] * s), round(g.shape[0] * s)), interpolation=cv2.INTER_AREA)
        found = copy_move(g)
        score = float(self._prob(math.log(max(found.area, 1))))
        pool = max(1, math.ceil(max(g.shape) / self.max_cells))
        heat = self._prob(np.log(np.maximum(_max_pool(found.map, pool), 1.0))).astype(np.float32)
        evidence, copy_data = self._copy_evidence(found, score, s)
        data: dict[str, Any] = {"method": "copymove", **copy_data, "cell_px": round(pool / s, 2)}
        return self.finding(score, evidence, heatmap=heat, data=data)

    def _peak_finding(self, pixels: np.ndarray) -> Finding:
        from forensics.analyzers.localization.model import STRIDE

        sm, s = self.score_map(pixels)
        cell = STRIDE if self.method == "cnn" else 1
        pool = max(1, math.ceil(max(sm.shape) / self.max_cells), (8 if cell == 1 else 1))
        if pool > 1:  # keep the heatmap small; max-pooled so the hottest cell keeps the peak
            sm = _max_pool(sm, pool)
            cell *= pool
        peak = float(sm.max())
        py, px = np.unravel_index(int(np.argmax(sm)), sm.shape)
        score = float(self._prob(peak))
        heat = self._prob(sm).astype(np.float32)
        x_in, y_in = (px + 0.5) * cell / s, (py + 0.5) * cell / s
        n_hot = int((heat >= 0.5).sum())
        r_px = math.sqrt(max(n_hot, 1) / math.pi) * cell / s
        data: dict[str, Any] = {
            "method": self.method,
            "peak": round(peak, 3),
            "at": [int(x_in), int(y_in)],
            "cell_px": round(cell / s, 2),
        }
        evidence = []
        if score >= 0.5:
            evidence.append(
                Evidence(
                    "localization.inconsistent_region",
                    f"region at ({int(x_in)}, {int(y_in)}) r≈{r_px:.0f} px has noise/texture inconsistent with the "
                    f"rest of the image (z={(peak - self.calibration['center']) / self.calibration['scale']:.1f})",
                    round(score, 4),
                )
            )
        else:  # the score still counts (a little) in fusion: say what it rests on
            evidence.append(Evidence(
                "localization.weak_region",
                f"strongest noise/texture inconsistency at ({int(x_in)}, {int(y_in)}) "
                f"(z={(peak - self.calibration['center']) / self.calibration['scale']:.1f}), within what untouched "
                f"images show; score {score:.2f}, not evidence of an edit on its own", 0.0))
        return self.finding(score, evidence, heatmap=heat, data=data)


def _modality_code(image: MedicalImage) -> str | None:
    """The DICOM modality, else the estimate from the pixels (``forensics.modality``)."""
    if image.modality is not None:
        return image.modality
    from forensics.modality import estimate_for

    est = estimate_for(image)
    return est["code"] if est else None


def _max_pool(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    if h == 0 or w == 0:
        return a
    return a[:h, :w].reshape(h // k, k, w // k, k).max(axis=(1, 3))
