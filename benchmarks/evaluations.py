"""Registered evaluations: what each ``medaudit bench X`` measures, as one typed function that stores its figures.

An evaluation is a function whose first argument is a :class:`Recorder` and whose other parameters are keyword-only
and typed. It measures, hands every figure to the recorder (rows of the results store, :mod:`benchmarks.store`)
and returns the :class:`Section` of docs/BENCHMARKS.md it owns (or a list of them, e.g. one per task)::

    @register_evaluation("reuse")
    def evaluate_reuse(record: Recorder, *, data: Path, n_pos: int = 40, seed: int = 0) -> Section: ...

:func:`run_evaluation` makes one store run per invocation around it. The evaluations live beside their measuring
code (``benchmarks.reuse_eval`` ...); those modules are imported on first use, so the CLI stays fast to start.
``medaudit bench run`` (protocols x detectors, :mod:`benchmarks.run`) stores its runs under the name ``run``.
"""

from __future__ import annotations

import importlib
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.store import DEFAULT_DB, ResultStore
from forensics.registry import Registry

EVALUATIONS = Registry("evaluation")
register_evaluation = EVALUATIONS.register

#: Modules whose import registers the evaluations.
_MODULES = ("benchmarks.detector_eval", "benchmarks.reuse_eval", "benchmarks.screen_eval", "benchmarks.tamper_eval",
            "benchmarks.series_eval",
            "benchmarks.watermark_robustness", "benchmarks.generator_quality", "benchmarks.scan_speed",
            "benchmarks.speed", "benchmarks.cold_start", "benchmarks.third_party", "benchmarks.reader.bench",
            "benchmarks.privacy_eval", "benchmarks.utility_eval")


@dataclass(frozen=True)
class Section:
    """One section of docs/BENCHMARKS.md: ``<!-- section:name -->``, heading ``## title``, then the Markdown."""

    name: str
    title: str
    markdown: str


class Recorder:
    """``record(metric=..., value=..., subset=..., perturbation=...)`` stores one row of an evaluation's run.

    ``detector`` and ``protocol`` default to the evaluation's name; rows of ``kind`` ``curve`` or ``skip`` (as
    :func:`benchmarks.protocols.run` makes them) pass through unchanged.
    """

    def __init__(self, store: ResultStore, run_id: str, evaluation: str):
        self.store = store
        self.run_id = run_id
        self.evaluation = evaluation

    def __call__(self, *, kind: str = "metric", **row: Any) -> None:
        if kind == "metric":
            row.setdefault("detector", self.evaluation)
            row.setdefault("protocol", self.evaluation)
        self.store.record(self.run_id, kind=kind, **row)

    def figures(self, values: dict[str, Any], **common: Any) -> None:
        """One row per ``metric: value`` (None -> NaN), all sharing ``common`` (subset, perturbation, counts ...)."""
        for metric, value in values.items():
            self(metric=metric, value=math.nan if value is None else float(value), **common)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (worker pools included)."""
    ru, rc = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime


def _load() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def list_evaluations(pattern: str = "*") -> list[str]:
    _load()
    return EVALUATIONS.names(pattern)


def run_evaluation(name: str, *, db: str | Path = DEFAULT_DB, command: str = "",
                   **params: Any) -> tuple[str, Section | list[Section]]:
    """Run evaluation ``name`` with ``params`` as one new run of the results store at ``db``.

    Returns:
        (run id, the docs section or sections). A failing evaluation leaves its run marked ``failed`` with what it
        had stored.
    """
    from benchmarks.docs import machine

    _load()
    if name not in EVALUATIONS:
        raise KeyError(f"unknown evaluation {name!r}; known: {', '.join(EVALUATIONS.names())}")
    t0, c0 = time.perf_counter(), cpu_seconds()
    with ResultStore(db) as store:
        run_id = store.start_run(profile="", command=command, machine=machine(), dataset_hash="", config=params,
                                 evaluation=name)
        try:
            section = EVALUATIONS.create(name, record=Recorder(store, run_id, name), **params)
        except BaseException:
            store.finish_run(run_id, wall_s=time.perf_counter() - t0, cpu_s=cpu_seconds() - c0, status="failed")
            raise
        store.finish_run(run_id, wall_s=time.perf_counter() - t0, cpu_s=cpu_seconds() - c0)
    return run_id, section
