"""The ``residual`` analyzer: is this image's fine detail typical of real acquisitions? Fitted on real images only.

See README.md in this folder for what it detects, how it is calibrated without fakes, and its limits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import RESIDUAL_MODALITIES, Analyzer
from forensics.analyzers.residual.features import FEATURE_NAMES, extract_features
from forensics.analyzers.residual.model import RealModel
from forensics.formatpath import STANDARD_SIZE, is_flat, standardize
from forensics.records import Evidence, Finding, MedicalImage

#: Bundled weights: forensics/weights/residual/model.json
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
#: Plain words for the features an explanation may name.
_WORDS = {"log_kurt": "residual kurtosis", "log_std": "residual strength", "log_tail": "residual tail mass",
          "skew": "residual skewness", "lvar_spread": "spread of local noise", "lvar_dose_corr":
          "noise-brightness dependence", "std_ratio": "noise across scales", "energy_corr": "detail across scales",
          "lc_": "coding surprisal"}
_SCALE_WORDS = {"s0": "at 256 px", "s1": "at 128 px", "s2": "at 64 px"}

__all__ = ["ResidualAnalyzer", "RealModel", "FEATURE_NAMES", "extract_features", "DEFAULT_WEIGHTS_DIR"]


def _describe(feature: str, z: float) -> str:
    words = next((w for k, w in _WORDS.items() if k in feature), feature)
    scale = _SCALE_WORDS.get(feature[:2], "")
    return f"{words}{' ' + scale if scale else ''} {'higher' if z > 0 else 'lower'} than real images ({z:+.1f} sd)"


_UNCALIBRATED_FORMATS = frozenset({"dicom", "nifti"})


@register_analyzer("residual")
class ResidualAnalyzer(Analyzer):
    """Raises the risk of images whose noise residuals and coding surprisal real acquisitions rarely show.

    It abstains (score None) on images that look typical: this model knows only what real images look like, so
    looking typical is no evidence either way, and it never lowers the risk others find: fusion uses its kind,
    ``realness``, to raise the learned detectors' pixel risk to its score when that is higher. Opt-in
    (``--analyzers ...,residual``): it catches most third-party latent-diffusion chest X-rays, but it also takes real
    images shrunk 2x with a box, area or nearest kernel and enlarged again for synthetic (docs/BENCHMARKS.md,
    "Third-party generators"), and a fraud screen must not flag a real image for being resized.

    Args:
        weights_dir: a folder holding ``residual/model.json`` (what ``medaudit train residual --out`` writes);
            default, and when the folder holds none: the bundled ``forensics/weights``.
    """

    name = "residual"
    version = "1.0"
    kind = "realness"
    settings = ("weights_dir",)
    modalities = RESIDUAL_MODALITIES
    default = False

    def __init__(self, weights_dir: str | Path | None = None):
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
        self._model: RealModel | None = None

    @property
    def _file(self) -> Path:
        # a detector folder from `train detector` has no model of real images: the bundled one still applies
        own = self.weights_dir / "residual" / "model.json"
        return own if own.is_file() else DEFAULT_WEIGHTS_DIR / "residual" / "model.json"

    def model_files(self) -> list[Path]:
        return [self._file] if self._file.is_file() else []

    def availability(self) -> tuple[bool, str]:
        if not self._file.is_file():
            return False, f"residual model not found: {self._file} (train one: medaudit train residual)"
        return True, ""

    def _load(self) -> RealModel:
        if self._model is None:
            self._model = RealModel.load_json(self._file)
        return self._model

    def assess_pixels(self, pixels: np.ndarray, modality: str | None = None) -> dict:
        """The model's verdict on float pixels in [0, 1] (see :meth:`RealModel.assess`); (H, W) pixels count as
        grey, (H, W, 3) as colour unless the channels are equal."""
        px = np.asarray(pixels)
        colour = px.ndim == 3 and px.shape[2] >= 3 and not (np.array_equal(px[..., 0], px[..., 1])
                                                             and np.array_equal(px[..., 1], px[..., 2]))
        return self._load().assess(extract_features(standardize(px, STANDARD_SIZE)), modality, colour)

    def analyze(self, image: MedicalImage) -> Finding:
        if image.format in _UNCALIBRATED_FORMATS or image.bit_depth > 8:
            # a scanner's DICOM (windowed from 12-16 bits) has other fine-detail statistics than the 8-bit exports
            # this model was fitted and calibrated on: a real CT DICOM would look atypical
            return self.finding(None, [Evidence(
                "residual.not_applicable",
                f"fitted on 8-bit exports (PNG/JPEG) of real images, not on {image.format} at {image.bit_depth} bits:"
                " no score", 0.0)])
        if is_flat(standardize(image.pixels, STANDARD_SIZE)):
            return self.finding(None, [
                Evidence("residual.not_applicable", "blank image: no texture to analyse", 0.0)])
        v = self.assess_pixels(image.pixels, image.modality)
        data = {"group": v["group"], "nll": round(v["nll"], 4), "real_tail": float(f"{v['tail']:.3g}"),
                "score_if_confident": round(v["score"], 4)}
        share = f"{100 * v['tail']:.2g}%" if v["tail"] >= 1e-4 else "< 0.01%"
        if v["score"] < 0.5:
            return self.finding(None, [Evidence(
                "residual.typical",
                f"fine detail typical of real images (closest: {v['group']}; {share} of them lie further out): "
                "no evidence either way; this analyzer only raises risk", 0.0)], data=data)
        order = np.argsort(-np.abs(v["z"]))[:3]
        why = "; ".join(_describe(FEATURE_NAMES[i], float(v["z"][i])) for i in order)
        return self.finding(v["score"], [Evidence(
            "residual.atypical",
            f"fine detail unlike real {v['group']} images: about {share} of real ones lie this far out "
            f"({why})", v["score"])], data=data)
