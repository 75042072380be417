from __future__ import annotations

import json

import pytest

from forensics.fusion import BUNDLED_WEIGHTS, FusionConfig, fuse, level_of
from forensics.records import Evidence, Finding

KINDS = {"metadata": "rules", "watermark": "mark", "cnn": "pixel", "frequency": "pixel", "localization": "local"}


def F(analyzer: str, score: float | None, *evidence: Evidence, **kw) -> Finding:
    """A finding stamped with its analyzer's kind, as the analyzer would stamp it."""
    return Finding(analyzer, score, list(evidence), kind=KINDS[analyzer], **kw)


def test_decisive_evidence_sets_risk():
    finding = F("metadata", 0.99, Evidence("png.a1111_parameters", "A1111", 1.0), decisive=True)
    assert fuse([finding, F("cnn", 0.1)], FusionConfig()) == pytest.approx(0.99)


def test_rules_alone_never_reach_high():
    anomalies = [F("metadata", 0.35), F("metadata", 0.35), F("metadata", 0.35)]
    risk = fuse(anomalies, FusionConfig())
    assert risk == pytest.approx(0.6)
    assert level_of(risk, FusionConfig()) == "medium"


def test_a_local_tampering_trace_asks_for_review_but_never_reaches_high():
    risk = fuse([F("localization", 0.99), F("cnn", 0.01)], FusionConfig())
    assert level_of(risk, FusionConfig()) == "medium"


def test_nothing_found_is_low_and_none_scores_ignored():
    assert fuse([F("metadata", None), F("watermark", None)], FusionConfig()) == 0.0


def test_pixel_scores_combine_in_logit_space_and_rules_add_bounded_mass():
    both = fuse([F("cnn", 0.8), F("frequency", 0.8)], FusionConfig())
    assert both == pytest.approx(0.8)
    with_rule = fuse([F("cnn", 0.8), F("metadata", 0.5)], FusionConfig())
    assert with_rule == pytest.approx(0.8 + 0.2 * 0.5)


def test_the_findings_kind_decides_how_it_counts_not_its_name():
    # the same score counts as pixel evidence, bounded evidence, or (kind unknown: a record read back) not at all
    assert fuse([Finding("x", 0.95, kind="pixel")], FusionConfig()) == pytest.approx(0.95)
    assert fuse([Finding("x", 0.95, kind="rules")], FusionConfig()) == pytest.approx(0.6)
    assert fuse([Finding("x", 0.95)], FusionConfig()) == 0.0
    assert fuse([Finding("x", 0.95, decisive=True)], FusionConfig()) == pytest.approx(0.95)


def test_levels_follow_configurable_thresholds():
    config = FusionConfig(medium=0.3, high=0.7)
    assert [level_of(r, config) for r in (0.29, 0.3, 0.69, 0.7)] == ["low", "medium", "medium", "high"]
    with pytest.raises(ValueError):
        FusionConfig(medium=0.9, high=0.5)


def test_pixel_gain_scales_the_combined_logit_and_the_bias_shifts_it():
    import math

    config = FusionConfig(pixel_weights={"cnn": 1.0, "frequency": 1.0}, pixel_gain=2.0, pixel_bias=-1.0)
    risk = fuse([F("cnn", 0.8), F("frequency", 0.8)], config)
    assert risk == pytest.approx(1 / (1 + math.exp(-(-1.0 + 2.0 * math.log(4)))))


def test_for_weights_reads_the_fusion_json_beside_the_weights_else_the_bundled_one(tmp_path):
    bundled = FusionConfig.from_json(BUNDLED_WEIGHTS / "fusion.json")
    assert FusionConfig.for_weights() == bundled
    assert FusionConfig.for_weights(tmp_path) == bundled  # trained weights without a fusion fit
    (tmp_path / "fusion.json").write_text(json.dumps({"pixel_gain": 3.0, "pixel_bias": -0.5, "val_auc": 0.9}))
    own = FusionConfig.for_weights(tmp_path)
    assert (own.pixel_gain, own.pixel_bias, own.pixel_weights) == (3.0, -0.5, {})
    assert FusionConfig.for_weights(str(tmp_path)) == own


EXPLAINED = [
    [F("cnn", 0.8), F("frequency", 0.3), F("metadata", 0.3), Finding("reuse", 0.5, kind="reuse")],
    [F("metadata", 0.35), F("metadata", 0.35), F("metadata", 0.35)],  # capped at rules_cap
    [F("metadata", None), F("watermark", None)],
    [F("cnn", 0.99999), F("frequency", 0.99999), F("metadata", 0.5)],  # pixel logit beyond the clipping
    [F("cnn", 0.1), F("watermark", 0.99, decisive=True)],
    [F("cnn", 0.0), F("localization", 0.09)],
]


@pytest.mark.parametrize("findings", EXPLAINED)
@pytest.mark.parametrize("config", [FusionConfig(), FusionConfig.for_weights()], ids=["equal", "bundled"])
def test_contributions_add_up_from_the_prior_to_the_fused_logit(findings, config):
    import math

    from forensics.fusion import explain

    e = explain(findings, config)
    assert len(e.contributions) == len(findings)
    assert e.prior + sum(e.contributions) == pytest.approx(e.logit, abs=1e-9)
    assert e.risk == pytest.approx(fuse(findings, config))
    assert 1 / (1 + math.exp(-e.logit)) == pytest.approx(e.risk, abs=1.01e-4)  # logits clip at 1e-4
    for f, c in zip(findings, e.contributions, strict=True):
        if f.score is None:
            assert c == 0.0


def test_who_moved_the_risk_and_which_way():
    from forensics.fusion import explain

    e = explain([F("cnn", 0.01), F("frequency", 0.9), F("metadata", 0.2)], FusionConfig())
    assert e.contributions[0] < 0 < e.contributions[1] and e.contributions[2] > 0
    assert e.assessed_by == ["cnn", "frequency"] and e.scored and e.prior == 0.0
    decisive = explain([F("cnn", 0.01), F("watermark", 0.99, decisive=True)], FusionConfig())
    assert decisive.contributions[0] == 0.0 and decisive.scored and decisive.assessed_by == ["cnn"]
    unassessed = explain([F("cnn", None), F("metadata", 0.2)], FusionConfig())
    assert not unassessed.scored and unassessed.assessed_by == []


def test_realness_only_raises_the_pixel_risk_and_its_contribution_adds_up():
    from forensics.fusion import FusionConfig, explain
    from forensics.records import Finding

    config = FusionConfig(pixel_weights={"cnn": 0.5, "frequency": 0.5})
    pixel = [Finding("cnn", 0.2, kind="pixel"), Finding("frequency", 0.3, kind="pixel")]
    base = explain(pixel, config)
    raised = explain([*pixel, Finding("residual", 0.8, kind="realness")], config)
    assert abs(raised.risk - 0.8) < 1e-9 and raised.assessed_by == ["cnn", "frequency", "residual"]
    assert abs(raised.prior + sum(raised.contributions) - raised.logit) < 1e-9
    lower = explain([*pixel, Finding("residual", 0.1, kind="realness")], config)
    assert abs(lower.risk - base.risk) < 1e-12 and lower.contributions[2] == 0.0  # never lowers
    alone = explain([Finding("residual", 0.7, kind="realness"), Finding("metadata", 0.2, kind="rules")], config)
    assert alone.risk > 0.7 and alone.scored and abs(alone.prior + sum(alone.contributions) - alone.logit) < 1e-6
