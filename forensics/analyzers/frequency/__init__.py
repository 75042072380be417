"""The ``frequency`` analyzer: spectral and noise-residual features + a small JSON-serialized classifier.

See README.md in this folder for what it detects, its training data and its limits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import TRAINED_MODALITIES, Analyzer
from forensics.analyzers.frequency.detector import FrequencyDetector
from forensics.analyzers.frequency.features import FEATURE_NAMES, extract_features
from forensics.formatpath import STANDARD_SIZE, is_flat, standardize
from forensics.records import Evidence, Finding, MedicalImage

#: Bundled weights: forensics/weights/frequency/{model,calibration}.json
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"

__all__ = ["FrequencyAnalyzer", "FrequencyDetector", "FEATURE_NAMES", "extract_features", "DEFAULT_WEIGHTS_DIR"]


@register_analyzer("frequency")
class FrequencyAnalyzer(Analyzer):
    """P(synthetic) from the image's spectrum, block DCT and noise residual statistics.

    Args:
        weights_dir: a folder holding ``frequency/model.json`` and ``frequency/calibration.json`` (the layout that
            ``forensics.training.train_detectors`` writes); default: the bundled ``forensics/weights``.
    """

    name = "frequency"
    version = "1.0"
    kind = "pixel"
    settings = ("weights_dir",)
    modalities = TRAINED_MODALITIES

    def __init__(self, weights_dir: str | Path | None = None):
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
        self._detector: FrequencyDetector | None = None
        self._calibration: Any = None
        self._reference: dict[str, dict[str, float]] = {}

    @property
    def _files(self) -> list[Path]:
        d = self.weights_dir / "frequency"
        return [d / "model.json", d / "calibration.json"]

    def model_files(self) -> list[Path]:
        return [p for p in self._files if p.is_file()]

    def availability(self) -> tuple[bool, str]:
        missing = [str(p) for p in self._files if not p.is_file()]
        if missing:
            return False, f"frequency model not found: {', '.join(missing)} (train one: medaudit train detector)"
        return True, ""

    def _load(self) -> None:
        if self._detector is None:
            from forensics.calibration import Calibrator

            model_path, cal_path = self._files
            raw = json.loads(model_path.read_text())
            self._detector = FrequencyDetector.from_dict(raw)
            self._reference = raw.get("reference", {})
            self._calibration = Calibrator.load(cal_path)

    def score_pixels(self, pixels: np.ndarray) -> tuple[float, np.ndarray]:
        """(calibrated P(synthetic), feature vector) for float (H, W[, 3]) pixels in [0, 1]."""
        self._load()
        feats = extract_features(standardize(pixels, STANDARD_SIZE))
        z = float(self._detector.decision_function(feats[None])[0])
        return float(self._calibration(z)), feats

    def analyze(self, image: MedicalImage) -> Finding:
        if is_flat(standardize(image.pixels, STANDARD_SIZE)):
            return self.finding(None, [
                Evidence("frequency.not_applicable", "blank image: no texture to analyse", 0.0)])
        p, feats = self.score_pixels(image.pixels)
        evidence = [Evidence("frequency.score", f"spectral and noise-residual model: P(synthetic) = {p:.2f}", p)]
        evidence += self._feature_evidence(feats)
        return self.finding(p, evidence)

    def _feature_evidence(self, feats: np.ndarray) -> list[Evidence]:
        """Informational messages (weight 0) that say what the score rests on, with the training references."""
        out = []
        ref = self._reference.get("res_lap_kurtosis")
        kurt = math.exp(feats[FEATURE_NAMES.index("res_lap_kurtosis")])
        if ref:
            real_p10, fake_med = math.exp(ref["real_p10"]), math.exp(ref["synthetic_median"])
            out.append(Evidence("frequency.residual_kurtosis",
                                f"noise residual kurtosis {kurt:.1f} (real training images mostly > {real_p10:.1f}, "
                                f"synthetic ones median {fake_med:.1f}; Gaussian noise 3.0)", 0.0))
        else:
            out.append(Evidence("frequency.residual_kurtosis", f"noise residual kurtosis {kurt:.1f}", 0.0))
        tail = feats[FEATURE_NAMES.index("spec_tail_ratio")]
        out.append(Evidence("frequency.spectrum_tail",
                            f"high-frequency power {tail:+.1f} log units relative to mid frequencies", 0.0))
        peak = max(feats[FEATURE_NAMES.index(n)] for n in ("per_2", "per_4", "per_8"))
        if peak > 2.0:
            out.append(Evidence("frequency.upsampling_peak",
                                f"periodic peak in the residual spectrum ({peak:.1f} log units): the image was "
                                "enlarged at some point (common to resized real images too)", 0.0))
        return out
