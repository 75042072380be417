"""The ``cnn`` analyzer: a tiny timm ResNet, trained from scratch on 64 px patches; image score + patch heatmap.

See README.md in this folder for what it detects, its training data and its limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from forensics.analyzers import register_analyzer
from forensics.analyzers.base import TRAINED_MODALITIES, Analyzer
from forensics.formatpath import is_flat, standardize
from forensics.records import Evidence, Finding, MedicalImage

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"

__all__ = ["CNNAnalyzer", "DEFAULT_WEIGHTS_DIR"]


@register_analyzer("cnn")
class CNNAnalyzer(Analyzer):
    """P(synthetic) from a patch CNN, with a (grid, grid) heatmap on the same calibrated scale (``score_pixels``).

    Args:
        weights_dir: a folder holding ``cnn/weights.safetensors``, ``cnn/config.json``, ``cnn/calibration.json``;
            default: the bundled ``forensics/weights``.
        threads: when given, ``torch.set_num_threads(threads)`` at load (1 per worker process scales best).
    """

    name = "cnn"
    version = "1.0"
    kind = "pixel"
    settings = ("weights_dir",)
    modalities = TRAINED_MODALITIES

    def __init__(self, weights_dir: str | Path | None = None, threads: int | None = None):
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
        self.threads = threads
        self._model: Any = None
        self._config: dict[str, Any] = {}
        self._calibration: Any = None

    @property
    def _files(self) -> list[Path]:
        d = self.weights_dir / "cnn"
        return [d / "weights.safetensors", d / "config.json", d / "calibration.json"]

    def model_files(self) -> list[Path]:
        return [p for p in self._files if p.is_file()]

    def availability(self) -> tuple[bool, str]:
        missing = [str(p) for p in self._files if not p.is_file()]
        if missing:
            return False, f"cnn weights not found: {', '.join(missing)} (train them: medaudit train detector)"
        from importlib.util import find_spec

        from forensics.analyzers.cnn.model import builtin

        needed = ("torch", "safetensors") if builtin(json.loads(self._files[1].read_text())) else (
            "torch", "timm", "safetensors")
        for module in needed:  # timm only for architectures the built-in resnet does not cover
            if find_spec(module) is None:  # looked up, not imported: importing timm alone costs seconds
                return False, f"cnn needs the {module!r} package, which is not installed"
        return True, ""

    def _load(self) -> None:
        if self._model is None:
            from forensics.analyzers.cnn.model import load_checkpoint
            from forensics.calibration import Calibrator

            if self.threads:
                import torch

                torch.set_num_threads(int(self.threads))
            self._model, self._config = load_checkpoint(self.weights_dir / "cnn")
            self._calibration = Calibrator.load(self.weights_dir / "cnn" / "calibration.json")

    def score_pixels(self, pixels: np.ndarray) -> tuple[float, np.ndarray]:
        """(calibrated P(synthetic), heatmap float32 (grid, grid) in [0, 1]) for float pixels in [0, 1].

        The heatmap is on the image score's scale: each cell is the image's calibrated log-odds moved by that patch's
        share of them, ``sigmoid(L + (L_i - mean(L_j)) / n)`` with ``L_i`` the patch's calibrated log-odds. Its
        log-odds average is the image score's, so a cell is red only where the score itself is high (a single
        patch's own probability is not calibrated: the calibration was fitted on whole images).
        """
        p, heat, _ = self._scores(pixels)
        return p, heat

    def _scores(self, pixels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(P(synthetic), heatmap, each patch's calibrated log-odds (grid, grid))."""
        from forensics.analyzers.cnn.model import aggregate, patch_logits

        self._load()
        std = standardize(pixels, self._config["size"])
        logits = patch_logits(self._model, self._config, std[None])
        image_logit = self._calibrated_logit(aggregate(logits, self._config["aggregate"])[0])
        patch = self._calibrated_logit(logits[0])
        heat = 1.0 / (1.0 + np.exp(-np.clip(image_logit + (patch - patch.mean()) / patch.size, -50, 50)))
        return float(self._calibration(aggregate(logits, self._config["aggregate"])[0])), heat.astype(np.float32), patch

    def _calibrated_logit(self, z: np.ndarray | float) -> np.ndarray:
        return self._calibration.a * np.asarray(z, dtype=np.float64) + self._calibration.b

    def analyze(self, image: MedicalImage) -> Finding:
        self._load()
        if is_flat(standardize(image.pixels, self._config["size"])):
            return self.finding(None, [
                Evidence("cnn.not_applicable", "blank image: no texture to analyse", 0.0)])
        p, heat, patch = self._scores(image.pixels)
        n, k = patch.size, int((patch > 0).sum())
        r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
        evidence = [
            Evidence("cnn.score", f"patch CNN: P(synthetic) = {p:.2f}, the average log-odds of {n} patches", p),
            Evidence("cnn.patches", f"{k} of {n} patches lean synthetic on their own, {n - k} lean real; the heatmap "
                                    f"shows the image score shifted by each patch's share (highest {heat.max():.2f} "
                                    f"at row {r + 1}, column {c + 1} of {heat.shape[0]}x{heat.shape[1]})", 0.0),
        ]
        return self.finding(p, evidence, heatmap=heat)
