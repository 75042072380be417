"""``medaudit bench run``: build the benchmark set, run the protocols for every detector, store, render docs.

Profiles (``PROFILES``): ``quick`` fits in about 20 minutes on 2 shared CPU cores (what ``make bench`` runs);
``full`` is for bigger machines (more fakes, longer CNN training, 1000 bootstrap replicates). The ``third_party``
protocol (with ``--external DIR``) scores at most ``external_max`` images per external set (quick: 60, a seeded sample;
full: all); ``medaudit bench third-party`` always scores all of them.

What is trained where (said again in docs/BENCHMARKS.md): the baselines and ``*.retrained`` detectors are fitted
anew on each task's train split; ``frequency``, ``cnn`` and ``suite`` are the shipped, pre-trained analyzers (not
refitted; their training covered every bundled generator, so they are not ranked on unseen-generator tasks).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.evaluations import cpu_seconds

DEFAULT_DETECTORS = ("suite", "frequency", "cnn", "suite.retrained", "frequency.retrained",
                     "durall", "frank_dct", "dzanic", "npr", "cnndetection")

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "fakes": {"train": 120, "val": 40, "test": 80},
        "max_real": None,
        "size": 256,
        "n_boot": 200,
        "grid_max": 160,
        "external_max": 60,
        "raw": False,
        "detector_kw": {
            "npr": {"time_budget_s": 25.0, "steps": 400},
            "cnndetection": {"time_budget_s": 30.0, "steps": 300, "size": 64},
            "suite.retrained": {"time_budget_s": 75.0, "cnn_max_steps": 300, "real_variants": 2},
            "frequency.retrained": {"real_variants": 2},
        },
        "speed_sizes": (256, 512),
        "speed_n": 6,
    },
    "full": {
        "fakes": {"train": 400, "val": 100, "test": 300},
        "max_real": None,
        "size": 256,
        "n_boot": 1000,
        "grid_max": None,
        "external_max": None,
        "raw": True,
        "detector_kw": {
            "npr": {"time_budget_s": 300.0, "steps": 4000},
            "cnndetection": {"time_budget_s": 600.0, "steps": 4000, "size": 128, "crop": 112},
            "suite.retrained": {"time_budget_s": 900.0, "cnn_max_steps": 3000, "real_variants": 4},
            "frequency.retrained": {"real_variants": 4},
        },
        "speed_sizes": (256, 512),
        "speed_n": 32,
    },
}


def detector_specs(names: Sequence[str], ds, profile: dict[str, Any]) -> list:
    """Factories for the named detectors (registry names, entry points or module:Class)."""
    from benchmarks.detectors import create_detector
    from benchmarks.protocols import DetectorSpec

    natives = sorted({it.native for it in ds.items if it.native}) or [64]
    specs = []
    for name in names:
        kw = dict(profile["detector_kw"].get(name, {}))
        if name.endswith(".retrained"):
            kw.setdefault("native_sizes", tuple(natives))
        probe = create_detector(name, **kw)
        label = getattr(probe, "name", name) if ":" in name else name
        specs.append(DetectorSpec(label, lambda name=name, kw=kw: create_detector(name, **kw)))
    return specs


def run_benchmark(
    *,
    profile: str = "quick",
    data_dir: str | Path | None,
    db: str | Path,
    detectors: Sequence[str] | None = None,
    generators: Sequence[str] | None = None,
    protocols: Sequence[str] | None = None,
    cache: str | Path | None = None,
    command: str = "",
    overrides: dict[str, Any] | None = None,
    dataset=None,
    seed: int = 0,
    progress: bool = True,
    external: str | Path | None = None,
) -> str:
    """Run a profile end to end into the results store at ``db``; returns the run id.

    ``dataset`` (a :class:`~benchmarks.datasets.BenchmarkSet`) skips building one (tests, users' own sets).
    ``external``: the external validation folder of the ``third_party`` protocol (default ``$MEDAUDIT_EXTERNAL``;
    without one that protocol is skipped with a note).
    """
    import torch

    from benchmarks import perturbations as P
    from benchmarks.datasets import DEFAULT_CACHE, build_dataset
    from benchmarks.docs import machine
    from benchmarks.protocols import run as run_protocols
    from benchmarks.store import ResultStore

    torch.set_num_threads(1)
    prof = {**PROFILES[profile], **(overrides or {})}
    t0, c0 = time.perf_counter(), cpu_seconds()
    ds = dataset or build_dataset(data_dir, generators, fakes=prof["fakes"], max_real=prof["max_real"],
                                  size=prof["size"], seed=seed, cache_root=cache or DEFAULT_CACHE, progress=progress)
    build_s = time.perf_counter() - t0
    if progress:
        print(f"dataset {ds.hash}: {json.dumps(ds.summary())} ({build_s:.0f} s)", file=sys.stderr, flush=True)
    names = list(detectors or DEFAULT_DETECTORS)
    specs = detector_specs(names, ds, prof)
    natives = sorted({it.native for it in ds.items if it.native})
    config = {"profile": profile, **{k: v for k, v in prof.items() if k != "detector_kw"},
              "detector_kw": prof["detector_kw"], "detectors": [s.name for s in specs],
              "dataset": {"hash": ds.hash, "recipe": ds.recipe, "summary": ds.summary()},
              "dataset_build_s": round(build_s, 1), "external": None if external is None else str(external)}
    with ResultStore(db) as store:
        run_id = store.start_run(profile=profile, command=command, machine=machine(), dataset_hash=ds.hash,
                                 config=config)

        def record(**row: Any) -> None:
            store.record(run_id, **row)

        notes = run_protocols(ds, specs, protocols=protocols, perturbations=P.GRID, controls=P.controls(natives),
                              record=record, n_boot=prof["n_boot"], grid_max=prof["grid_max"], seed=seed,
                              progress=progress, external=external, external_max=prof.get("external_max"))
        if prof.get("raw"):
            raw = build_dataset(data_dir, generators, fakes=prof["fakes"], max_real=prof["max_real"],
                                variant="raw", seed=seed, cache_root=cache or DEFAULT_CACHE, progress=progress)

            def record_raw(**row: Any) -> None:
                if row.get("kind") == "metric" and row.get("perturbation") == "none":
                    store.record(run_id, **{**row, "protocol": "raw_format", "subset": raw.hash})

            notes += run_protocols(raw, specs, protocols=["in_distribution"], record=record_raw,
                                   n_boot=prof["n_boot"], seed=seed, progress=progress)
        store.finish_run(run_id, wall_s=time.perf_counter() - t0, cpu_s=cpu_seconds() - c0, notes=notes)
    return run_id


def write_docs(path: str | Path, db: str | Path, run_id: str, *, command: str | None = None,
               speed_md: str | None = None) -> None:
    """Rewrite the ``leaderboard``, ``protocols`` (and ``speed``) sections of docs/BENCHMARKS.md from a run."""
    from benchmarks.docs import update_section
    from benchmarks.leaderboard import collect, render_leaderboard_md, render_protocols_md
    from benchmarks.store import ResultStore

    with ResultStore(db) as store:
        data = collect(store, run_id)
    run = data["run"]
    cfg = run["config"]
    summary = cfg.get("dataset", {}).get("summary", {})
    counts = "; ".join(f"{src}: " + ", ".join(f"{k} {v}" for k, v in sorted(sp.items()))
                       for src, sp in summary.items())
    retrained = [d for d in cfg.get("detectors", []) if d not in ("suite", "frequency", "cnn")]
    intro = (
        f"Run `{run['run_id']}`, profile `{run['profile']}`: wall time {run['wall_s']:.0f} s, CPU time "
        f"{run['cpu_s']:.0f} s (dataset build included: {cfg.get('dataset_build_s', 0):.0f} s). Dataset "
        f"`{run['dataset_hash']}` (format-matched: both classes cropped, resized to {cfg.get('size')} px, JPEG 75-95 "
        f"or PNG re-encoded, metadata stripped): {counts}.\n\n"
        f"Fitted anew on every task's train split: {', '.join(f'`{d}`' for d in retrained)}. "
        "`suite`, `frequency`, `cnn` are the shipped weights, not refitted (their training covered every bundled "
        "generator, so they are not ranked on unseen-generator tasks). The CNNDetection-style ResNet-50 trains from "
        "random weights for well under a minute of CPU at 64 px in the quick profile - far from the paper's set-up; "
        "NPR-style and our retrained CNN likewise get CPU budgets of seconds to a minute.")
    if run["notes"]:
        intro += "\n\nNot run: " + "; ".join(run["notes"])
    update_section(path, "leaderboard", "Detector leaderboard", intro + "\n\n" + render_leaderboard_md(data),
                   command=command)
    update_section(path, "protocols", "Protocols: every detector, every task", render_protocols_md(data),
                   command=command)
    if speed_md:
        update_section(path, "speed", "Detector speed and memory", speed_md, command=command)
