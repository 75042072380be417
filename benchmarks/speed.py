"""Inference speed and peak memory of every detector and of the whole suite, at 256 x 256 and 512 x 512.

One process, one run, same machine, side by side. Per (detector, size): images/s over ``n`` images after one
warm-up image; peak memory as (a) the ``tracemalloc`` peak of Python and numpy allocations during scoring and
(b) the growth of the process's maximum resident set (``resource.getrusage`` ru_maxrss) during scoring, which also
catches torch's allocator. (b) is a high-water mark for the whole process: memory a detector needs below an
earlier detector's peak shows as 0, so read it as "extra memory this detector needed".

Trainable baselines are fitted first on a small synthetic set (their inference cost does not depend on what they
learned, except the KNN of ``dzanic``, whose cost grows with its training set).
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.evaluations import Recorder, Section, register_evaluation

#: Cheap fits for the speed run (the structure, not the quality, sets the speed).
SPEED_FIT_KW: dict[str, dict[str, Any]] = {
    "npr": {"steps": 5, "time_budget_s": 10},
    "cnndetection": {"steps": 3, "time_budget_s": 10},
    "suite.retrained": {"cnn_max_steps": 5, "time_budget_s": 60, "real_variants": 1},
    "frequency.retrained": {"real_variants": 1},
}


def _maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def _images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = cv2.resize(rng.random((32, 32)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        out.append(np.clip(base + rng.normal(0, 0.03, (size, size)).astype(np.float32), 0, 1))
    return out


def measure(det: Any, images: Sequence[np.ndarray]) -> dict[str, float]:
    """images/s, tracemalloc peak (MB) and maxrss growth (MB) of ``det.predict_proba`` one image at a time."""
    det.predict_proba([images[0]])  # warm-up: lazy loading of weights, first-call allocations
    rss0 = _maxrss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    for x in images:
        det.predict_proba([x])
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"images_per_s": len(images) / dt, "tracemalloc_peak_mb": peak / 2**20,
            "maxrss_delta_mb": max(0.0, _maxrss_mb() - rss0)}


def run(names: Sequence[str], sizes: Sequence[int] = (256, 512), n: int = 8,
        progress: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows {detector, size, images_per_s, tracemalloc_peak_mb, maxrss_delta_mb} and notes on skipped detectors."""
    from benchmarks.detectors import _toy_data, availability, create_detector

    rows, notes = [], []
    fit_x, fit_y = _toy_data(24)
    for name in names:
        det = create_detector(name, **SPEED_FIT_KW.get(name, {}))
        ok, why = availability(det)
        if not ok:
            notes.append(f"{name}: {why}")
            continue
        if not getattr(det, "pretrained", False):
            det.fit(fit_x, fit_y)
        for size in sizes:
            r = measure(det, _images(n, size))
            rows.append({"detector": name, "size": size, **r})
            if progress:
                print(f"speed {name} {size}: {r['images_per_s']:.1f} img/s", file=sys.stderr, flush=True)
    return rows, notes


def to_markdown(rows: list[dict[str, Any]], notes: Sequence[str] = (), n: int = 8) -> str:
    sizes = sorted({r["size"] for r in rows})
    header = ["detector"] + [f"{s}² images/s" for s in sizes] + [f"{s}² peak MB (tracemalloc / RSS growth)"
                                                                  for s in sizes]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys(r["detector"] for r in rows):
        by = {r["size"]: r for r in rows if r["detector"] == name}
        cells = [f"{by[s]['images_per_s']:.1f}" if s in by else "–" for s in sizes]
        cells += [f"{by[s]['tracemalloc_peak_mb']:.1f} / {by[s]['maxrss_delta_mb']:.0f}" if s in by else "–"
                  for s in sizes]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    text = "\n".join(lines)
    text += (f"\n\nOne image per call, {n} images per cell after a warm-up, one process, torch with 1 thread. "
             "RSS growth is a process-wide high-water mark (0 = needed no more than an earlier detector).")
    if notes:
        text += "\n\nNot measured: " + "; ".join(notes)
    return text


@register_evaluation("speed")
def evaluate_speed(record: Recorder, *, detectors: tuple[str, ...] | None = None, sizes: tuple[int, ...] = (256, 512),
                   n: int = 8, progress: bool = True) -> Section:
    """Images/s and peak memory per detector and size, one torch thread (see :func:`run`).

    Args:
        detectors: registry names (default: those ``medaudit bench run`` measures).
        n: images per (detector, size) cell.
    """
    import torch

    from benchmarks.run import DEFAULT_DETECTORS

    torch.set_num_threads(1)
    rows, notes = run(detectors or DEFAULT_DETECTORS, sizes, n, progress=progress)
    for r in rows:
        record.figures({k: r[k] for k in ("images_per_s", "tracemalloc_peak_mb", "maxrss_delta_mb")},
                       detector=r["detector"], subset=f"{r['size']}px", n_real=n)
    for note in notes:
        name, _, why = note.partition(": ")
        record(kind="skip", detector=name, reason=why)
    return Section("speed", "Detector speed and memory", to_markdown(rows, notes, n))
