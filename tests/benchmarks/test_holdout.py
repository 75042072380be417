"""benchmarks.datasets.is_holdout: the fixed file-name rule the bundled in-painter and localizer never trained on."""

from __future__ import annotations

from benchmarks.datasets import is_holdout


def test_rule_is_the_one_the_bundled_weights_were_trained_without():
    # changing the rule would mix training files into the tamper, screen and localization benchmarks
    assert is_holdout("ChestCT_111.png")
    assert not any(is_holdout(n) for n in ("ChestCT_1059.png", "ChestCT_1063.png", "ChestCT_1121.png"))


def test_only_the_file_name_counts():
    assert is_holdout("/some/where/ChestCT_111.png") and is_holdout("ChestCT_111.png")


def test_about_a_fifth_is_held_out():
    assert 150 < sum(is_holdout(f"x{i}.png") for i in range(1000)) < 250
