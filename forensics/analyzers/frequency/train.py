"""Fit the frequency analyzer's classifier on feature vectors (what ``forensics.training`` calls for the suite).

Works on arrays only: features come from ``features.extract_features`` of format-path variants prepared by the
caller, so this module knows nothing of data sets, splits or calibration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Features whose class quantiles are stored with the model, for the evidence messages of the analyzer.
REFERENCE_FEATURES = ("res_lap_kurtosis", "res_dog_kurtosis", "res_lap_kurtosis_local_med", "spec_tail_ratio",
                      "per_4")


def fit_frequency(features: np.ndarray, label: np.ndarray, *, classifier: str = "logistic",
                  seed: int = 0) -> tuple[Any, dict[str, dict[str, float]]]:
    """A fitted :class:`FrequencyDetector` on ``features`` float64 (n, d) with ``label`` (n,) in {0 real, 1 synthetic},
    plus reference quantiles of :data:`REFERENCE_FEATURES` per class."""
    from forensics.analyzers.frequency.detector import FrequencyDetector
    from forensics.analyzers.frequency.features import FEATURE_NAMES

    det = FrequencyDetector(classifier=classifier, random_state=seed).fit(features, label)
    reference = {}
    for name in REFERENCE_FEATURES:
        j = FEATURE_NAMES.index(name)
        r, f = features[label == 0, j], features[label == 1, j]
        reference[name] = {"real_p10": float(np.quantile(r, 0.1)), "real_median": float(np.median(r)),
                           "synthetic_median": float(np.median(f)), "synthetic_p90": float(np.quantile(f, 0.9))}
    return det, reference
