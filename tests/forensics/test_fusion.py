from __future__ import annotations

import pytest

from forensics.fusion import FusionConfig, fuse, level_of
from forensics.records import Evidence, Finding

KINDS = {"metadata": "rules", "watermark": "mark", "cnn": "pixel", "frequency": "pixel", "localization": "local"}


def test_decisive_evidence_sets_risk():
    finding = Finding("metadata", 0.99, [Evidence("png.a1111_parameters", "A1111", 1.0)], decisive=True)
    assert fuse([finding, Finding("cnn", 0.1)], KINDS, FusionConfig()) == pytest.approx(0.99)


def test_rules_alone_never_reach_high():
    anomalies = [Finding("metadata", 0.35), Finding("metadata", 0.35), Finding("metadata", 0.35)]
    risk = fuse(anomalies, KINDS, FusionConfig())
    assert risk == pytest.approx(0.6)
    assert level_of(risk, FusionConfig()) == "medium"


def test_a_local_tampering_trace_asks_for_review_but_never_reaches_high():
    risk = fuse([Finding("localization", 0.99), Finding("cnn", 0.01)], KINDS, FusionConfig())
    assert level_of(risk, FusionConfig()) == "medium"


def test_nothing_found_is_low_and_none_scores_ignored():
    assert fuse([Finding("metadata", None), Finding("watermark", None)], KINDS, FusionConfig()) == 0.0


def test_pixel_scores_combine_in_logit_space_and_rules_add_bounded_mass():
    both = fuse([Finding("cnn", 0.8), Finding("frequency", 0.8)], KINDS, FusionConfig())
    assert both == pytest.approx(0.8)
    with_rule = fuse([Finding("cnn", 0.8), Finding("metadata", 0.5)], KINDS, FusionConfig())
    assert with_rule == pytest.approx(0.8 + 0.2 * 0.5)


def test_levels_follow_configurable_thresholds():
    config = FusionConfig(medium=0.3, high=0.7)
    assert [level_of(r, config) for r in (0.29, 0.3, 0.69, 0.7)] == ["low", "medium", "medium", "high"]
    with pytest.raises(ValueError):
        FusionConfig(medium=0.9, high=0.5)


def test_pixel_gain_scales_the_combined_logit_and_the_bias_shifts_it():
    import math

    config = FusionConfig(pixel_weights={"cnn": 1.0, "frequency": 1.0}, pixel_gain=2.0, pixel_bias=-1.0)
    risk = fuse([Finding("cnn", 0.8), Finding("frequency", 0.8)], KINDS, config)
    assert risk == pytest.approx(1 / (1 + math.exp(-(-1.0 + 2.0 * math.log(4)))))
