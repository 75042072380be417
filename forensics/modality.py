"""Which modality is an image with no DICOM header? A small pixel model that names it, or says it cannot.

The pixel detectors learned chest X-rays, chest CT and dermoscopy. A PNG or JPEG carries no Modality, so without
this gate an OCT, a fundus photo, a brain MRI slice or a mammogram saved as PNG would get a chest detector's score.
:func:`estimate_modality` names the modality from the pixels: ``DX`` (chest X-ray), ``CT``, ``XC`` (dermoscopy /
photograph), ``MR`` (brain MRI), ``MG`` (mammography), or ``OT`` when the image is far from all of them (open-set
rejection) or the model is unsure. Analyzers that declare ``modalities`` abstain on ``MR``, ``MG`` and ``OT``
estimates (``Analyzer.applies_to``).

The model is plain numbers in a JSON file (``forensics/weights/modality/model.json``, trained by
``medaudit train modality``; see ``forensics/modality_train.py`` and the README beside the weights): features of a
64 px grayscale thumbnail, an intensity histogram, a few texture and colour statistics, PCA, a multinomial logistic
regression, and per-class distances for rejection. About a millisecond per image on one core; numpy and OpenCV only.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL = Path(__file__).resolve().parent / "weights" / "modality" / "model.json"
CODES = ("DX", "CT", "XC", "MR", "MG")  # the classes the model knows, in the order of its outputs
UNKNOWN = "OT"  # none of these, or not sure
NAMES = {"DX": "chest X-ray", "CT": "CT", "XC": "dermoscopy / photograph", "MR": "MRI", "MG": "mammography",
         "OT": "none of the known modalities"}
THUMB_PX = 64  # every feature is computed on a THUMB_PX square thumbnail
GRID_PX = 16  # the coarse layout: a GRID_PX square of the thumbnail, reduced by PCA
N_COLOUR = 10  # the colour features close the feature vector
_SUBSAMPLE_PX = 256  # larger images are strided down to about this before the area resize (speed, not accuracy)


def features(pixels: np.ndarray) -> np.ndarray:
    """The raw feature vector (float64) of an image: float pixels in [0, 1], (H, W) or (H, W, 3).

    Layout first (a 16 px grid of the grayscale thumbnail, flipped so that its brighter half is on the left: a
    left and a right mammogram look alike), then intensity histogram and quantiles, symmetry and border, gradient
    direction (OCT layers are horizontal), colour (none for grayscale) and aspect ratio. Nothing here looks at
    fine texture, which resizing and JPEG change: the model must name the modality, not the file format.
    """
    import cv2

    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    h, w = x.shape[:2]
    step = max(1, min(h, w) // _SUBSAMPLE_PX)
    if step > 1:
        x = x[::step, ::step]
    x = np.nan_to_num(np.clip(x, 0.0, 1.0))
    small = cv2.resize(np.ascontiguousarray(x), (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        rgb = small[..., :3]
        gray = rgb.mean(axis=2)
    else:
        rgb = None
        gray = small
    half = THUMB_PX // 2
    if gray[:, :half].mean() < gray[:, half:].mean():
        gray = gray[:, ::-1]
    grid = cv2.resize(np.ascontiguousarray(gray), (GRID_PX, GRID_PX), interpolation=cv2.INTER_AREA).ravel()

    hist = np.histogram(gray, bins=16, range=(0.0, 1.0))[0] / gray.size
    q = np.quantile(gray, (0.05, 0.25, 0.5, 0.75, 0.95))
    ring = np.concatenate([gray[:4].ravel(), gray[-4:].ravel(), gray[4:-4, :4].ravel(), gray[4:-4, -4:].ravel()])
    centre = gray[half // 2: -half // 2, half // 2: -half // 2]
    gx = np.abs(np.diff(gray, axis=1)).mean()
    gy = np.abs(np.diff(gray, axis=0)).mean()
    stats = [
        gray.mean(), gray.std(), *q, (gray < 0.05).mean(), (gray > 0.9).mean(), (gray < 0.5 / 255).mean(),
        np.abs(gray - gray[:, ::-1]).mean(),  # left-right symmetry (chest, brain: symmetric; mammogram: not)
        gray[:, :half].mean() - gray[:, half:].mean(),
        gray[:half].mean() - gray[half:].mean(),
        ring.mean(), centre.mean() - ring.mean(),
        gx, gy, np.log((gy + 1e-3) / (gx + 1e-3)),
        np.log(w / h),
    ]
    if rgb is None:
        colour = [0.0] * 8 + [1 / 3, 1 / 3]
    else:
        chroma = rgb.max(axis=2) - rgb.min(axis=2)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        total = rgb.sum(axis=2)
        lit = total > 0.3  # chromaticity of what is not background: fundus orange vs skin
        share = rgb[lit] / total[lit, None] if lit.any() else np.full((1, 3), 1 / 3)
        colour = [chroma.mean(), np.quantile(chroma, 0.9), (chroma > 0.1).mean(), (r - g).mean(), (g - b).mean(),
                  (r - b).mean(), (r - g).std(), (chroma / (rgb.max(axis=2) + 1e-3)).mean(),
                  share[:, 0].mean(), share[:, 2].mean()]
    return np.concatenate([grid, hist, stats, colour]).astype(np.float64)


class ModalityModel:
    """The fitted model: PCA of the layout grid, standardisation, logistic regression, and for rejection each
    class's centroid, shrunk inverse covariance and feature ranges.

    Args:
        params: the JSON object written by ``forensics.modality_train`` (see ``to_json`` there).
    """

    def __init__(self, params: dict[str, Any]):
        if params.get("format_version") != 1:
            raise ValueError(f"unknown modality model format {params.get('format_version')!r}")
        self.codes = tuple(params["codes"])
        self.grid_mean = np.asarray(params["grid_mean"])
        self.grid_components = np.asarray(params["grid_components"])
        self.mean = np.asarray(params["mean"])
        self.scale = np.asarray(params["scale"])
        self.coef = np.asarray(params["coef"])
        self.intercept = np.asarray(params["intercept"])
        self.centroids = np.asarray(params["centroids"])
        self.precisions = np.asarray(params["precisions"])
        self.low = np.asarray(params["low"])
        self.high = np.asarray(params["high"])
        self.max_distance = float(params["max_distance"])
        self.max_excess = float(params["max_excess"])
        self.min_probability = float(params["min_probability"])
        self.params = params

    @classmethod
    def load(cls, path: str | Path) -> ModalityModel:
        return cls(json.loads(Path(path).read_text()))

    def embed(self, raw: np.ndarray) -> np.ndarray:
        """Raw features (n, d) -> standardised model space (n, k)."""
        raw = np.atleast_2d(raw)
        n_grid = self.grid_mean.size
        grid = (raw[:, :n_grid] - self.grid_mean) @ self.grid_components.T
        z = np.concatenate([grid, raw[:, n_grid:]], axis=1)
        return (z - self.mean) / self.scale

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def distances(self, z: np.ndarray) -> np.ndarray:
        """(n, classes): Mahalanobis distance to each class (its shrunk covariance), per dimension (RMS)."""
        diff = z[:, None, :] - self.centroids[None]
        return np.sqrt(np.einsum("nkd,kde,nke->nk", diff, self.precisions, diff) / z.shape[1])

    def excess(self, raw: np.ndarray) -> np.ndarray:
        """(n, classes): how far the colour features fall outside each class's range, in widths of that range; the
        largest over features. Catches one decisive feature that a distance over sixty dimensions would dilute (a
        fundus photo has almost no blue, dermoscopy always some; a colour image is no grey modality)."""
        summary = np.atleast_2d(raw)[:, -N_COLOUR:]
        width = self.high - self.low + 0.02
        out = np.maximum(self.low[None] - summary[:, None], summary[:, None] - self.high[None]) / width[None]
        return np.maximum(out, 0.0).max(axis=2)

    def predict(self, raw: np.ndarray) -> list[dict[str, Any]]:
        """One estimate per row of raw features: code, confidence, the nearest known class, probability and the
        distance to that class relative to the rejection threshold (> 1: rejected as unlike every class)."""
        z = self.embed(raw)
        prob = self.probabilities(z)
        ratios = np.maximum(self.distances(z) / self.max_distance, self.excess(raw) / self.max_excess)
        out = []
        for p, d in zip(prob, ratios, strict=True):
            top = int(p.argmax())
            ratio = float(d[top])
            accepted = ratio <= 1.0 and p[top] >= self.min_probability
            if accepted:
                code, confidence = self.codes[top], float(p[top])
            else:  # how sure the rejection is: the stronger of the two reasons
                code, confidence = UNKNOWN, max(1.0 - float(p[top]), 1.0 - 1.0 / max(ratio, 1.0))
            out.append({"code": code, "confidence": round(confidence, 4), "nearest": self.codes[top],
                        "probability": round(float(p[top]), 4), "distance": round(ratio, 4)})
        return out


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> ModalityModel:
    """The model at ``path`` (default: the bundled one), loaded once per process."""
    return ModalityModel.load(path or DEFAULT_MODEL)


def estimate_modality(pixels: np.ndarray, model: ModalityModel | None = None) -> tuple[str, float]:
    """``(code, confidence)`` for float pixels in [0, 1]: ``DX``, ``CT``, ``XC``, ``MR``, ``MG`` or ``OT``."""
    est = (model or load_model()).predict(features(pixels))[0]
    return est["code"], est["confidence"]


def estimate_for(image: Any) -> dict[str, Any] | None:
    """The estimate of a :class:`~forensics.records.MedicalImage` without a header modality, computed once and kept
    in ``image.metadata["modality_estimate"]``; None when the image has its own modality (DICOM)."""
    if image.modality is not None:
        return None
    cached = image.metadata.get("modality_estimate")
    if cached is None:
        cached = load_model().predict(features(image.pixels))[0]
        image.metadata["modality_estimate"] = cached
    return cached
