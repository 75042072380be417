"""The frequency analyzer: features, the scikit-learn contract, JSON round trip, availability, Finding shape."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _detector_data import toy_sets
from sklearn.base import clone

from forensics.analyzers import create_analyzer, list_analyzers
from forensics.analyzers.frequency import DEFAULT_WEIGHTS_DIR, FrequencyAnalyzer
from forensics.analyzers.frequency.detector import FrequencyDetector
from forensics.analyzers.frequency.features import FEATURE_NAMES, extract_features
from forensics.formatpath import standardize
from forensics.records import Finding, MedicalImage


@pytest.fixture(scope="module")
def toy_features():
    real, fake = toy_sets(16)
    X = np.stack([extract_features(standardize(im, 64)) for im in real + fake])
    y = np.array([0] * len(real) + [1] * len(fake))
    return X, y


def test_features_are_finite_and_named():
    f = extract_features(np.random.default_rng(0).random((64, 64)).astype(np.float32))
    assert f.shape == (len(FEATURE_NAMES),) and np.isfinite(f).all()


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_features_of_a_flat_image_are_finite(value):
    f = extract_features(np.full((64, 64), value, np.float32))
    assert np.isfinite(f).all()


def test_sklearn_contract(toy_features):
    X, y = toy_features
    det = FrequencyDetector(C=0.3)
    assert clone(det).get_params() == det.get_params()
    assert not [k for k in vars(det) if k.endswith("_")]
    assert det.fit(X, y) is det
    learned = [k for k in vars(det) if k not in det.get_params()]
    assert learned and all(k.endswith("_") for k in learned)
    proba = det.predict_proba(X)
    assert proba.shape == (len(y), 2) and np.allclose(proba.sum(axis=1), 1)
    assert (det.predict(X) == y).mean() > 0.9


@pytest.mark.parametrize("classifier", ["logistic", "hgb"])
def test_json_round_trip_is_identical(toy_features, tmp_path, classifier):
    X, y = toy_features
    det = FrequencyDetector(classifier=classifier, max_iter=20).fit(X, y)
    path = det.save_json(tmp_path / "model.json")
    json.loads(path.read_text())  # plain JSON
    again = FrequencyDetector.load_json(path)
    assert np.array_equal(det.predict_proba(X), again.predict_proba(X))


def test_hgb_export_matches_sklearn(toy_features):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = toy_features
    det = FrequencyDetector(classifier="hgb", max_iter=15).fit(X, y)
    m = det.model_
    Z = (X - np.asarray(m["mean"])) / np.asarray(m["scale"])
    ref = HistGradientBoostingClassifier(max_iter=15, max_depth=3, learning_rate=0.1, l2_regularization=1.0,
                                         random_state=0, early_stopping=False).fit(Z, y)
    assert np.allclose(det.decision_function(X), ref.decision_function(Z), atol=1e-6)


def test_registered():
    assert "frequency" in list_analyzers()
    assert isinstance(create_analyzer("frequency"), FrequencyAnalyzer)


def test_missing_weights_is_unavailable_with_reason(tmp_path):
    ok, why = FrequencyAnalyzer(weights_dir=tmp_path).availability()
    assert not ok and "model.json" in why


@pytest.mark.skipif(not (DEFAULT_WEIGHTS_DIR / "frequency" / "model.json").is_file(), reason="no bundled weights")
def test_bundled_weights_give_a_finding():
    analyzer = FrequencyAnalyzer()
    assert analyzer.availability() == (True, "")
    assert {p.name for p in analyzer.model_files()} == {"model.json", "calibration.json"}
    img = MedicalImage(pixels=np.random.default_rng(0).random((100, 120)).astype(np.float32), path="x.png",
                       sha256="0", format="png")
    f = analyzer.analyze(img)
    assert isinstance(f, Finding) and f.analyzer == "frequency" and 0.0 <= f.score <= 1.0
    assert f.evidence[0].code == "frequency.score"
    assert any(e.code == "frequency.residual_kurtosis" for e in f.evidence)


@pytest.mark.skipif(not (DEFAULT_WEIGHTS_DIR / "frequency" / "model.json").is_file(), reason="no bundled weights")
def test_blank_image_has_no_score():
    f = FrequencyAnalyzer().analyze(MedicalImage(pixels=np.zeros((96, 128), np.float32), path="b.dcm", sha256="0",
                                                 format="dicom"))
    assert f.score is None and f.evidence[0].code == "frequency.not_applicable"
