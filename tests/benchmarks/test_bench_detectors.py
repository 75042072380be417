"""The detector contract: every registered detector and baseline passes check_detector; broken ones fail it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks.detectors import (
    AnalyzerDetector,
    BaseDetector,
    ConformanceError,
    availability,
    check_detector,
    create_detector,
    list_detectors,
    load_detector,
)

# Small budgets so the whole parametrized check takes seconds; the structure is what is checked.
FAST_KW = {
    "npr": {"steps": 3, "size": 32, "crop": 32},
    "cnndetection": {"steps": 2, "size": 32, "crop": 32},
    "frank_dct": {"size": 32},
    "durall": {"size": 64},
    "dzanic": {"size": 64},
    "suite.retrained": {"cnn_max_steps": 3, "real_variants": 1, "time_budget_s": 30},
    "frequency.retrained": {"real_variants": 1},
}


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.mark.parametrize("name", list_detectors())
def test_registered_detector_conforms(name):
    det = create_detector(name, **FAST_KW.get(name, {}))
    ok, why = availability(det)
    if not ok:
        pytest.skip(f"{name} unavailable: {why}")
    check_detector(det)


@pytest.mark.parametrize("analyzer", ["metadata", "watermark"])
def test_analyzer_adapter_conforms_and_abstains_to_zero(analyzer):
    det = AnalyzerDetector(analyzer)
    check_detector(det)
    scores = det.predict_proba([np.full((32, 32), 0.5, np.float32)])
    assert scores.tolist() == [0.0]  # "does not apply" -> 0.0, counted as an abstention
    assert det.abstained_ == 1


def test_baselines_are_registered():
    assert {"durall", "frank_dct", "dzanic", "npr", "cnndetection"} <= set(list_detectors())


class _Good(BaseDetector):
    name = "good"
    version = "1"

    def predict_proba(self, images):
        return np.asarray([float(np.clip(np.mean(x), 0, 1)) for x in images], dtype=np.float64)


class _NoSelf(_Good):
    def fit(self, images, labels):
        return None


class _WrongShape(_Good):
    def predict_proba(self, images):
        return np.zeros((len(images), 2))


class _OutOfRange(_Good):
    def predict_proba(self, images):
        return super().predict_proba(images) * 5 - 1


class _Random(_Good):
    def predict_proba(self, images):
        return np.random.default_rng().random(len(images))


class _BatchDependent(_Good):
    def predict_proba(self, images):
        s = super().predict_proba(images)
        return (s - s.min()) / max(np.ptp(s), 1e-9) if len(s) else s


class _Mutates(_Good):
    def predict_proba(self, images):
        for x in images:
            x *= 0.5
        return super().predict_proba(images)


class _BadName(_Good):
    name = "Bad Name!"


class _NoRgb(_Good):
    def predict_proba(self, images):
        if any(x.ndim == 3 for x in images):
            raise ValueError("grayscale only")
        return super().predict_proba(images)


def test_a_good_detector_passes():
    check_detector(_Good())


@pytest.mark.parametrize("cls, message", [
    (_NoSelf, "fit() must return self"),
    (_WrongShape, "shape"),
    (_OutOfRange, "in [0, 1]"),
    (_Random, "deterministic"),
    (_BatchDependent, "depends on the other images"),
    (_Mutates, "modified its input"),
    (_BadName, "name must be"),
])
def test_broken_detectors_fail(cls, message):
    with pytest.raises(ConformanceError, match=re.escape(message)):
        check_detector(cls())


def test_rgb_refusal_is_not_swallowed():
    with pytest.raises(ValueError, match="grayscale only"):
        check_detector(_NoRgb())


def test_module_class_spec_loads():
    det = load_detector("benchmarks.baselines.dzanic:DzanicDetector", size=64)
    assert det.name == "dzanic"
    assert create_detector("benchmarks.baselines.durall:DurallDetector").name == "durall"
    with pytest.raises(KeyError, match="unknown detector"):
        create_detector("no_such_detector")


def test_retrained_suite_calibrates_across_the_families_the_protocol_passes():
    from benchmarks.detectors import _toy_data

    x, y = _toy_data(60)
    fake_index = np.cumsum(y)  # alternate the two generators over the fakes
    groups = [None if lab == 0 else ("cxr_gan", "cxr_vae")[k % 2] for lab, k in zip(y, fake_index, strict=True)]
    det = create_detector("frequency.retrained", real_variants=1).fit(x, y, groups=groups)
    assert det.report_["calibration"]["held_out_families"] == ["gan", "vae"]
    plain = create_detector("frequency.retrained", real_variants=1).fit(x, y)
    assert plain.report_["calibration"]["held_out_families"] == []


def test_retrained_suite_splits_by_source_and_scores_its_parts():
    from benchmarks.detectors import _toy_data

    x, y = _toy_data(40)
    sources = [f"{'fake' if lab else 'real'}{i // 8}" for i, lab in enumerate(y)]  # five units of 4 per label
    det = create_detector("frequency.retrained", real_variants=1).fit(x, y, sources=sources)
    data = det.report_["data"]
    # the seeded hash sends units fake1, fake3 and real4 to validation, whole (one unit per image: 4 and 4)
    assert (data["val_synthetic"], data["val_real"]) == (8, 4)
    risk, parts = det.predict_with_parts(x[:6])
    assert np.array_equal(risk, det.predict_proba(x[:6]))
    assert list(parts) == ["frequency"] and parts["frequency"].shape == (6,)
    assert ((parts["frequency"] >= 0) & (parts["frequency"] <= 1)).all()
    assert det.fit_figures() == {}  # no CNN, no steps
