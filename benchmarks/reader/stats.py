"""Scoring readers, and the detector on the same images.

The question every figure answers is binary: *is this image genuine?* A reader's call is positive when the answer
is anything but ``real`` (synthetic, tampered, or in the unprompted arm "flag"); the truth is positive for
synthetic and tampered images. With tampered images in a study, the exact three-way accuracy is reported too.

- accuracy, sensitivity (fakes called fake), specificity (real called real): Wilson 95% intervals;
- AUC from confidence: the answer and its confidence 1-5 make a 10-step rating (real, sure ... fake, sure), whose
  ROC area is the reader's discrimination at every threshold; Hanley-McNeil 95% interval;
- Fleiss' kappa on the binary call, over the readers who finished and the images all of them read;
- the detector: its risk's AUC on the images readers saw, its operating points at the fusion thresholds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import mean, median
from typing import Any

import numpy as np

from benchmarks.metrics import roc_points
from forensics.metrics import rank_auc

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float, float]:
    """(k/n, lo, hi): the Wilson score interval; NaNs when n is 0."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def rating(answer: str, confidence: int) -> float:
    """The answer and its confidence as one score in (0, 1): high means "fake, sure"."""
    sign = -1 if answer == "real" else 1
    return 0.5 + sign * confidence / 10


def auc_ci(pos: np.ndarray, neg: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """ROC area with the Hanley-McNeil (1982) 95% interval; NaNs without both classes."""
    if len(pos) == 0 or len(neg) == 0:
        return math.nan, math.nan, math.nan
    a = rank_auc(pos, neg)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (len(pos) - 1) * (q1 - a * a) + (len(neg) - 1) * (q2 - a * a)) / (len(pos) * len(neg))
    se = math.sqrt(max(var, 0.0))
    return a, max(0.0, a - z * se), min(1.0, a + z * se)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a (subjects, categories) table of how many raters put each subject in each category.

    Every subject needs the same number of raters (at least two); NaN when agreement by chance is total.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_sub = counts.shape[0]
    raters = counts.sum(axis=1)
    if n_sub == 0 or raters.min() < 2 or not np.all(raters == raters[0]):
        return math.nan
    m = raters[0]
    p_j = counts.sum(axis=0) / (n_sub * m)
    p_i = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    p_bar, p_e = p_i.mean(), float((p_j * p_j).sum())
    return math.nan if p_e >= 1 else float((p_bar - p_e) / (1 - p_e))


def _is_fake(truth: str) -> bool:
    return truth != "real"


def _called_fake(answer: str) -> bool:
    return answer != "real"


def _triple(values: tuple[float, float, float]) -> dict[str, float | None]:
    return {k: (None if math.isnan(v) else round(v, 4)) for k, v in zip(("value", "lo", "hi"), values, strict=True)}


def reader_figures(rows: list[dict[str, Any]], three_way: bool) -> dict[str, Any]:
    """Figures for one reader's answers (rows of ``Study.answers``)."""
    fakes = [r for r in rows if _is_fake(r["truth"])]
    reals = [r for r in rows if not _is_fake(r["truth"])]
    correct = sum(_called_fake(r["answer"]) == _is_fake(r["truth"]) for r in rows)
    tp = sum(_called_fake(r["answer"]) for r in fakes)
    tn = sum(not _called_fake(r["answer"]) for r in reals)
    scores = {id(r): rating(r["answer"], r["confidence"]) for r in rows}
    times = [t for t in (_seconds(r) for r in rows) if t is not None]
    out = {
        "answered": len(rows), "fakes": len(fakes), "reals": len(reals),
        "accuracy": _triple(wilson(correct, len(rows))),
        "sensitivity": _triple(wilson(tp, len(fakes))),
        "specificity": _triple(wilson(tn, len(reals))),
        "auc": _triple(auc_ci(np.array([scores[id(r)] for r in fakes]), np.array([scores[id(r)] for r in reals]))),
        "median_s": None if not times else round(median(times), 2),
        "mean_s": None if not times else round(mean(times), 2),
    }
    if three_way and rows and rows[0]["mode"] != "unprompted":
        out["three_way_accuracy"] = _triple(wilson(sum(r["answer"] == r["truth"] for r in rows), len(rows)))
    with_region = [r for r in rows if r["truth"] == "tampered" and r["region"] and _called_fake(r["answer"])]
    if with_region:
        out["located"] = _triple(wilson(sum(_inside(r) for r in with_region), len(with_region)))
    return out


def _seconds(row: dict[str, Any]) -> float | None:
    """The reader's time on the image: the page's own clock, else the server's (first shown to answered)."""
    ms = row["client_ms"] if row["client_ms"] is not None else row["server_ms"]
    return None if ms is None else ms / 1000


def _inside(row: dict[str, Any], margin: float = 0.05) -> bool:
    """Did the reader's click fall on the changed region (with a margin of 5% of the image)?"""
    import json

    if row["x"] is None or row["y"] is None:
        return False
    x0, y0, x1, y1 = json.loads(row["region"])
    return x0 - margin <= row["x"] <= x1 + margin and y0 - margin <= row["y"] <= y1 + margin


def detector_figures(images: list[dict[str, Any]], thresholds: dict[str, float]) -> dict[str, Any]:
    """The detector suite's risk on the study's images: AUC, ROC, and its calls at the fusion thresholds. An image the
    suite could not score counts as not flagged, as in every benchmark, so detector and readers are compared on the
    same images; ``unscored`` says how many."""
    y = np.array([_is_fake(i["truth"]) for i in images], dtype=int)
    s = np.array([0.0 if i["risk"] is None else i["risk"] for i in images], dtype=np.float64)
    out: dict[str, Any] = {"images": len(images), "unscored": sum(i["risk"] is None for i in images),
                           "auc": _triple(auc_ci(s[y == 1], s[y == 0])), "points": {}}
    if y.min(initial=1) == 0 and y.max(initial=0) == 1:
        out["roc"] = roc_points(y, s)
    for name, thr in sorted(thresholds.items()):
        called = s >= thr
        tpr = wilson(int((called & (y == 1)).sum()), int((y == 1).sum()))
        tnr = wilson(int((~called & (y == 0)).sum()), int((y == 0).sum()))
        acc = wilson(int((called == (y == 1)).sum()), len(y))
        out["points"][name] = {"threshold": thr, "sensitivity": _triple(tpr), "specificity": _triple(tnr),
                               "accuracy": _triple(acc)}
    return out


def agreement(rows: list[dict[str, Any]], n_images: int) -> dict[str, Any]:
    """Fleiss' kappa on the binary call: readers who answered every image (else all readers, on the images every
    one of them answered)."""
    by_reader: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        by_reader[r["reader"]][r["image_id"]] = r["answer"]
    finished = [name for name, a in by_reader.items() if len(a) == n_images]
    chosen = finished if len(finished) >= 2 else list(by_reader)
    if len(chosen) < 2:
        return {"kappa": None, "readers": len(chosen), "images": 0}
    common = set.intersection(*(set(by_reader[name]) for name in chosen))
    table = np.array([[sum(_called_fake(by_reader[name][i]) for name in chosen),
                       sum(not _called_fake(by_reader[name][i]) for name in chosen)] for i in sorted(common)])
    kappa = fleiss_kappa(table) if len(common) else math.nan
    return {"kappa": None if math.isnan(kappa) else round(kappa, 4), "readers": len(chosen), "images": len(common)}


def fooled(rows: list[dict[str, Any]], images: list[dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """The images most readers got wrong, worst first (with the detector's call on each)."""
    by_image: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_image[r["image_id"]].append(_called_fake(r["answer"]) != _is_fake(r["truth"]))
    info = {i["id"]: i for i in images}
    ranked = sorted(by_image.items(), key=lambda kv: (-sum(kv[1]) / len(kv[1]), -len(kv[1]), kv[0]))
    out = []
    for image_id, wrong in ranked[:limit]:
        if not any(wrong):
            break
        i = info[image_id]
        out.append({"image_id": image_id, "truth": i["truth"], "readers": len(wrong), "fooled": sum(wrong),
                    "fooled_share": round(sum(wrong) / len(wrong), 4), "detector_risk": i["risk"],
                    "detector_level": i["level"]})
    return out


def study_results(rows: list[dict[str, Any]], images: list[dict[str, Any]], thresholds: dict[str, float],
                  name: str = "") -> dict[str, Any]:
    """Everything the results page and `medaudit reader results` show, as plain JSON types."""
    three_way = any(i["truth"] == "tampered" for i in images)
    by_reader: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_reader[r["reader"]].append(r)
    readers = [{"reader": name_, "mode": rs[0]["mode"], **reader_figures(rs, three_way)}
               for name_, rs in by_reader.items()]
    return {"study": name, "images": len(images),
            "truth": {t: sum(i["truth"] == t for i in images) for t in ("real", "synthetic", "tampered")},
            "readers": readers, "agreement": agreement(rows, len(images)),
            "detector": detector_figures(images, thresholds), "fooled": fooled(rows, images)}
