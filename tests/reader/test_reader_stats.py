"""The statistics behind the results: known values, and a simulated study with scripted readers of known accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.reader import report
from benchmarks.reader.stats import auc_ci, fleiss_kappa, rating, wilson
from benchmarks.reader.store import Study


def test_wilson_interval_known_values():
    p, lo, hi = wilson(0, 10)
    assert p == 0 and lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    p, lo, hi = wilson(81, 263)  # Wilson (1927) / Newcombe (1998) example: 0.2553-0.3662
    assert (lo, hi) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-3)
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa(np.array([[2, 0], [1, 0]])))  # unequal raters per subject


def test_rating_orders_answers_by_confidence():
    order = [rating("real", 5), rating("real", 1), rating("synthetic", 1), rating("flag", 5)]
    assert order == sorted(order) and rating("real", 1) < 0.5 < rating("tampered", 1)


def test_auc_interval_contains_half_for_chance():
    rng = np.random.default_rng(0)
    a, lo, hi = auc_ci(rng.random(100), rng.random(100))
    assert lo < 0.5 < hi and lo < a < hi


ACCURACIES = {"p55": 0.55, "p70": 0.70, "p85": 0.85, "p95": 0.95}
N_IMAGES = 240


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """240 tiny images (half fake), four scripted readers answering right with a known probability each."""
    path = tmp_path_factory.mktemp("sim") / "sim.sqlite"
    rng = np.random.default_rng(12)
    with Study(path, create=True) as s:
        s.db.execute("PRAGMA synchronous=OFF")  # a simulation: no need to wait for the disk 1000 times
        s.set_meta("name", "simulated")
        s.set_meta("thresholds", {"medium": 0.5, "high": 0.9})
        for i in range(N_IMAGES):
            truth = "real" if i % 2 else ("synthetic" if i % 4 else "tampered")
            risk = float(np.clip(rng.normal(0.7 if truth != "real" else 0.3, 0.2), 0, 1))
            s.add_image(truth=truth, sha256=f"{i:064x}", modality=None, pixels=np.zeros((4, 4), np.uint16),
                        window=(0, 1), invert=False, risk=risk, level=None, detector={"findings": [], "reasons": []},
                        overlay=None)
        for name, p in ACCURACIES.items():
            reader, _ = s.add_reader(name, "blinded", seed=len(name))
            # each reader's luck is drawn per image, in a fixed image order (ids are random, so not by id)
            luck = {row["id"]: rng.random(3) for row in s.db.execute("SELECT id FROM images ORDER BY sha256")}
            while (item := s.current(reader.id)).image_id is not None:
                truth = s.image(item.image_id)["truth"]
                draw = luck[item.image_id]
                right = draw[0] < p
                call = truth if right else ("real" if truth != "real" else "synthetic")
                confidence = 3 + int(draw[1] * 3) if right else 1 + int(draw[1] * 3)
                s.record_answer(reader.id, item.image_id, answer=call, confidence=confidence, x=None, y=None,
                                client_ms=2000 + 7000 * float(draw[2]))
        yield report.results_of(s)


def test_recovered_accuracy_lies_in_its_interval(simulated):
    found = {r["reader"]: r for r in simulated["readers"]}
    assert set(found) == set(ACCURACIES)
    misses = []
    for name, p in ACCURACIES.items():
        r = found[name]
        assert r["answered"] == N_IMAGES
        assert r["accuracy"]["lo"] <= p <= r["accuracy"]["hi"], (name, r["accuracy"])
        assert r["accuracy"]["hi"] - r["accuracy"]["lo"] < 0.14  # 240 answers pin it down
        # right with probability p on either class; 95% intervals on 120 images each may miss now and then
        misses += [(name, f) for f in ("sensitivity", "specificity") if not r[f]["lo"] <= p <= r[f]["hi"]]
        assert 2 <= r["median_s"] <= 9
    assert len(misses) <= 1, misses
    # confidence is higher when right, so better readers discriminate better
    aucs = [found[n]["auc"]["value"] for n in ACCURACIES]
    assert aucs == sorted(aucs) and aucs[0] > 0.5


def test_simulated_agreement_detector_and_exports(simulated):
    ag = simulated["agreement"]
    assert ag["readers"] == 4 and ag["images"] == N_IMAGES
    # independent readers agree only as far as their accuracy makes them: kappa well below 1, above 0
    assert 0 < ag["kappa"] < 0.5
    det = simulated["detector"]
    assert det["images"] == N_IMAGES and det["auc"]["value"] > 0.8 and det["roc"][0] == (0.0, 0.0)
    assert simulated["fooled"][0]["fooled_share"] >= simulated["fooled"][-1]["fooled_share"]
    csv_text = report.readers_csv(simulated)
    assert len(csv_text.strip().splitlines()) == 1 + 4 + 2  # header, readers, detector at medium and high
    assert "<circle" in report.roc_svg(simulated)


def test_accuracy_intervals_cover_at_their_level():
    """Over many simulated readers (right with probability 0.8 on 60 images), the 95% interval holds the truth
    about 95% of the time: the interval is neither too narrow nor needlessly wide."""
    from benchmarks.reader.stats import reader_figures

    rng = np.random.default_rng(7)
    truths = ["real", "synthetic"] * 30
    hits = 0
    for _ in range(400):
        rows = [{"truth": t, "answer": t if rng.random() < 0.8 else ("synthetic" if t == "real" else "real"),
                 "confidence": 3, "mode": "blinded", "client_ms": 1.0, "server_ms": None, "region": None,
                 "x": None, "y": None} for t in truths]
        acc = reader_figures(rows, three_way=False)["accuracy"]
        hits += acc["lo"] <= 0.8 <= acc["hi"]
    assert 0.92 <= hits / 400 <= 0.98


def test_clicks_on_the_changed_region_are_counted():
    from benchmarks.reader.stats import reader_figures

    region = "[0.5, 0.5, 0.7, 0.7]"
    base = {"truth": "tampered", "answer": "tampered", "confidence": 4, "mode": "blinded", "client_ms": 1.0,
            "server_ms": None, "region": region}
    rows = [dict(base, x=0.6, y=0.6), dict(base, x=0.1, y=0.9), dict(base, x=None, y=None),
            dict(base, answer="real", x=0.6, y=0.6)]  # called genuine: not counted as located or not
    located = reader_figures(rows, three_way=True)["located"]
    assert located["value"] == pytest.approx(1 / 3, abs=1e-4)  # figures are rounded to 4 places
