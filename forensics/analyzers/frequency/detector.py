"""``FrequencyDetector``: a scikit-learn estimator on spectral features, serialized as plain JSON (never pickle).

Training uses scikit-learn (``StandardScaler`` + ``LogisticRegression``, or ``HistGradientBoostingClassifier``);
the fitted model is exported to a plain dict (coefficients, or the trees' node arrays) and *all* predictions go
through the small numpy evaluator below, so a model loaded from JSON gives bit-identical probabilities.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from forensics.analyzers.frequency.features import FEATURE_NAMES, extract_many

FORMAT_VERSION = 1


def _as_features(X: Any) -> np.ndarray:
    """(n, n_features) from features, or from a stack of standardized images (n, S, S)."""
    X = np.asarray(X)
    if X.ndim == 3:
        return extract_many(X.astype(np.float32))
    if X.ndim != 2:
        raise ValueError(f"X must be (n, n_features) features or (n, S, S) images, got shape {X.shape}")
    return X.astype(np.float64)


def _export_hgb(clf: Any) -> dict[str, Any]:
    trees = []
    for iteration in clf._predictors:
        node = iteration[0].nodes  # binary task: one tree per iteration
        trees.append(
            {
                "feature": node["feature_idx"].astype(int).tolist(),
                "threshold": node["num_threshold"].astype(float).tolist(),
                "missing_left": node["missing_go_to_left"].astype(int).tolist(),
                "left": node["left"].astype(int).tolist(),
                "right": node["right"].astype(int).tolist(),
                "leaf": node["is_leaf"].astype(int).tolist(),
                "value": node["value"].astype(float).tolist(),
            }
        )
    return {"baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees}


def _eval_trees(model: dict[str, Any], X: np.ndarray) -> np.ndarray:
    raw = np.full(X.shape[0], model["baseline"], dtype=np.float64)
    rows = np.arange(X.shape[0])
    for t in model["trees"]:
        feature, threshold = np.asarray(t["feature"]), np.asarray(t["threshold"])
        left, right, leaf = np.asarray(t["left"]), np.asarray(t["right"]), np.asarray(t["leaf"], dtype=bool)
        missing_left, value = np.asarray(t["missing_left"], dtype=bool), np.asarray(t["value"])
        node = np.zeros(X.shape[0], dtype=int)
        for _ in range(64):
            active = ~leaf[node]
            if not active.any():
                break
            x = X[rows, feature[node]]
            go_left = np.where(np.isnan(x), missing_left[node], x <= threshold[node])
            node = np.where(active, np.where(go_left, left[node], right[node]), node)
        raw += value[node]
    return raw


class FrequencyDetector:
    """Real-vs-synthetic classifier on :mod:`.features`; the scikit-learn estimator contract.

    Args:
        classifier: ``"logistic"`` (StandardScaler + L2 logistic regression) or ``"hgb"`` (histogram gradient
            boosting).
        C: inverse L2 strength of the logistic regression.
        max_iter: iterations of either classifier.
        max_depth: tree depth for ``hgb``.
        learning_rate: ``hgb`` learning rate.
        random_state: seed.
        class_weight: ``"balanced"`` weighs both classes equally whatever their counts; None uses raw counts.

    Attributes (after ``fit``):
        model_: the exported model (plain JSON types).
        classes_: ``[0, 1]`` (1 = synthetic).
        n_features_in_: number of features.
    """

    def __init__(
        self,
        classifier: str = "logistic",
        C: float = 0.5,
        max_iter: int = 300,
        max_depth: int = 3,
        learning_rate: float = 0.1,
        random_state: int = 0,
        class_weight: str | None = "balanced",
    ):
        self.classifier = classifier
        self.C = C
        self.max_iter = max_iter
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.class_weight = class_weight

    # scikit-learn's clone() and get_params() need these two
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("classifier", "C", "max_iter", "max_depth", "learning_rate",
                                               "random_state", "class_weight")}

    def set_params(self, **params: Any) -> FrequencyDetector:
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    def __sklearn_tags__(self):  # sklearn >= 1.6 asks estimators for their tags
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    def fit(self, X: Any, y: Any) -> FrequencyDetector:
        """Fit on features (n, n_features) or standardized images (n, S, S); ``y`` 1 = synthetic."""
        F = _as_features(X)
        y = np.asarray(y).astype(int)
        if set(np.unique(y)) != {0, 1}:
            raise ValueError("y must contain both classes 0 (real) and 1 (synthetic)")
        scale_mean = F.mean(axis=0)
        scale_std = F.std(axis=0)
        scale_std[scale_std < 1e-9] = 1.0
        Z = (F - scale_mean) / scale_std
        model: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "classifier": self.classifier,
            "feature_names": list(FEATURE_NAMES) if F.shape[1] == len(FEATURE_NAMES) else None,
            "mean": scale_mean.tolist(),
            "scale": scale_std.tolist(),
        }
        if self.classifier == "logistic":
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state,
                                     class_weight=self.class_weight)
            clf.fit(Z, y)
            model.update(coef=clf.coef_.ravel().tolist(), intercept=float(clf.intercept_[0]))
        elif self.classifier == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            clf = HistGradientBoostingClassifier(max_iter=self.max_iter, max_depth=self.max_depth,
                                                 learning_rate=self.learning_rate, l2_regularization=1.0,
                                                 random_state=self.random_state, early_stopping=False,
                                                 class_weight=self.class_weight)
            clf.fit(Z, y)
            model.update(_export_hgb(clf))
        else:
            raise ValueError(f"classifier must be 'logistic' or 'hgb', got {self.classifier!r}")
        self.model_ = model
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = F.shape[1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("FrequencyDetector is not fitted; call fit() or from_json()")

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw log-odds of 'synthetic', float64 (n,)."""
        self._check_fitted()
        F = _as_features(X)
        m = self.model_
        Z = (F - np.asarray(m["mean"])) / np.asarray(m["scale"])
        if m["classifier"] == "logistic":
            return Z @ np.asarray(m["coef"]) + m["intercept"]
        return _eval_trees(m, Z)

    def predict_proba(self, X: Any) -> np.ndarray:
        """float64 (n, 2): P(real), P(synthetic) - uncalibrated; the analyzer applies calibration."""
        z = np.clip(self.decision_function(X), -50, 50)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)

    def predict(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {"params": self.get_params(), "model": self.model_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrequencyDetector:
        det = cls(**d["params"])
        det.model_ = d["model"]
        if det.model_.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError("frequency model written by a newer medaudit; upgrade to read it")
        det.classes_ = np.array([0, 1])
        det.n_features_in_ = len(det.model_["mean"])
        return det

    def save_json(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        d = self.to_dict()
        if extra:
            d.update(extra)
        from forensics.atomic import write_text

        return write_text(path, json.dumps(d, separators=(",", ":")))

    @classmethod
    def load_json(cls, path: str | Path) -> FrequencyDetector:
        return cls.from_dict(json.loads(Path(path).read_text()))


def sigmoid(z: float) -> float:
    z = max(min(z, 50.0), -50.0)
    return 1.0 / (1.0 + math.exp(-z))
