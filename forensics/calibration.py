"""Platt scaling of a raw detector logit, stored as JSON next to the weights it calibrates (no pickle).

The analyzers load a :class:`Calibrator` to turn their raw logits into probabilities; training fits one on
validation (or cross-family) logits. It lives below both, so no analyzer imports the training code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensics.atomic import write_text


@dataclass
class Calibrator:
    """Platt scaling of a raw logit: ``p = sigmoid(a * z + b)``. JSON-serializable, no pickle."""

    a: float = 1.0
    b: float = 0.0
    method: str = "platt"

    def __call__(self, z: np.ndarray | float) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(self.a * z + self.b, -50, 50)))

    @classmethod
    def fit(cls, z: np.ndarray, y: np.ndarray) -> Calibrator:
        """Fit on validation logits ``z`` (n,) and labels ``y`` (n,) in {0, 1}.

        Classes are weighted equally, so the probabilities are calibrated for a 50/50 prior whatever the mix of the
        validation set (a fixed, documented prior: real claims have far fewer fakes).
        """
        from sklearn.linear_model import LogisticRegression

        z = np.asarray(z, dtype=np.float64).reshape(-1, 1)
        y = np.asarray(y).astype(int)
        # a mild L2 prior keeps the slope finite when validation happens to be separable
        lr = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced").fit(z, y)
        return cls(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        if d.get("method", "platt") != "platt":
            raise ValueError(f"unknown calibration method {d.get('method')!r}")
        return cls(a=float(d["a"]), b=float(d["b"]))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``to_dict()`` plus ``extra`` (e.g. what it was fitted on) as JSON, atomically."""
        return write_text(path, json.dumps({**self.to_dict(), **(extra or {})}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Calibrator:
        return cls.from_dict(json.loads(Path(path).read_text()))
