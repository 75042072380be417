"""The results store: runs, metric rows, curves and skipped detectors in one SQLite file.

Every metric row names what it was measured with and on: detector, version, weights hash, dataset hash, protocol,
subset, perturbation, metric, value with its bootstrap interval, class counts, machine and time. Every run names
the evaluation that made it (``run`` for ``medaudit bench run``, else a name of ``benchmarks.evaluations``). The
leaderboard renders from here; runs accumulate (a later run never deletes an earlier one).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_DB = Path(".cache") / "medaudit-bench" / "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL, finished REAL, profile TEXT, command TEXT, machine TEXT,
    dataset_hash TEXT, config TEXT, wall_s REAL, cpu_s REAL, status TEXT, notes TEXT
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT REFERENCES runs(run_id), detector TEXT, version TEXT,
    weights_hash TEXT, dataset_hash TEXT, protocol TEXT, subset TEXT, perturbation TEXT, metric TEXT,
    value REAL, lo REAL, hi REAL, n_real INTEGER, n_fake INTEGER, unseen INTEGER, machine TEXT, time REAL
);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id, protocol, metric);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT, detector TEXT, protocol TEXT, subset TEXT, perturbation TEXT, kind TEXT, points TEXT
);
CREATE TABLE IF NOT EXISTS skipped (run_id TEXT, detector TEXT, reason TEXT);
"""

#: The evaluation of ``medaudit bench run``; runs stored before runs named their evaluation (NULL) were all of it.
HARNESS = "run"


def _num(v: Any) -> float | None:
    """NaN -> NULL (SQLite has no NaN)."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


class ResultStore:
    """``with ResultStore(path) as store: run = store.start_run(...); store.record(run, ...)``."""

    def __init__(self, path: str | Path = DEFAULT_DB):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Several benchmarks may share one store at once (bench run beside bench detectors): WAL lets readers and one
        # writer proceed together, each row is committed as it comes, and a writer waits for the lock, not fails.
        self.db = sqlite3.connect(str(self.path), timeout=120.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        if "evaluation" not in {r["name"] for r in self.db.execute("PRAGMA table_info(runs)")}:
            self.db.execute("ALTER TABLE runs ADD COLUMN evaluation TEXT")  # databases from before evaluations
        self._runs: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    # --- writing
    def start_run(self, *, profile: str, command: str, machine: str, dataset_hash: str,
                  config: dict[str, Any] | None = None, evaluation: str = HARNESS) -> str:
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.db.execute("INSERT INTO runs (run_id, started, profile, command, machine, dataset_hash, config, status, "
                        "evaluation) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                        (run_id, time.time(), profile, command, machine, dataset_hash,
                         json.dumps(config or {}, default=str), evaluation))
        self.db.commit()
        return run_id

    def finish_run(self, run_id: str, *, wall_s: float, cpu_s: float, notes: list[str] | None = None,
                   status: str = "done") -> None:
        self.db.execute("UPDATE runs SET finished = ?, wall_s = ?, cpu_s = ?, status = ?, notes = ? WHERE run_id = ?",
                        (time.time(), wall_s, cpu_s, status, json.dumps(notes or []), run_id))
        self.db.commit()

    def record(self, run_id: str, *, kind: str = "metric", **row: Any) -> None:
        """One row from :func:`benchmarks.protocols.run` (``kind`` metric | curve | skip)."""
        run = self._runs.get(run_id) or self._runs.setdefault(run_id, self.run(run_id))
        if kind == "metric":
            self.db.execute(
                "INSERT INTO results (run_id, detector, version, weights_hash, dataset_hash, protocol, subset, "
                "perturbation, metric, value, lo, hi, n_real, n_fake, unseen, machine, time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, row["detector"], row.get("version"), row.get("weights_hash"), run["dataset_hash"],
                 row["protocol"], row.get("subset", "all"), row.get("perturbation", "none"), row["metric"],
                 _num(row["value"]), _num(row.get("lo")), _num(row.get("hi")), row.get("n_real"), row.get("n_fake"),
                 row.get("unseen"), run["machine"], time.time()))
        elif kind == "curve":
            self.db.execute("INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (run_id, row["detector"], row["protocol"], row.get("subset", "all"),
                             row.get("perturbation", "none"), row["curve"], json.dumps(row["points"])))
        elif kind == "skip":
            self.db.execute("INSERT INTO skipped VALUES (?, ?, ?)", (run_id, row["detector"], row["reason"]))
        else:
            raise ValueError(f"unknown row kind {kind!r}")
        self.db.commit()

    # --- reading
    def run(self, run_id: str) -> dict[str, Any]:
        r = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if r is None:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        d = dict(r)
        d["config"] = json.loads(d["config"] or "{}")
        d["notes"] = json.loads(d["notes"] or "[]")
        d["evaluation"] = d["evaluation"] or HARNESS
        return d

    def latest_run(self, profile: str | None = None, evaluation: str = HARNESS) -> str | None:
        """The newest finished run of ``evaluation`` (and ``profile``, when given)."""
        q = "SELECT run_id FROM runs WHERE status = 'done' AND COALESCE(evaluation, ?) = ?"
        args: list[Any] = [HARNESS, evaluation]
        if profile:
            q += " AND profile = ?"
            args.append(profile)
        r = self.db.execute(q + " ORDER BY started DESC LIMIT 1", args).fetchone()
        return None if r is None else r[0]

    def results(self, run_id: str, **where: Any) -> list[dict[str, Any]]:
        """Metric rows of a run; NULL values come back as NaN."""
        q, args = _select("results", run_id, where)
        out = []
        for r in self.db.execute(q + " ORDER BY id", args):
            d = dict(r)
            for k in ("value", "lo", "hi"):
                d[k] = float("nan") if d[k] is None else d[k]
            out.append(d)
        return out

    def curves(self, run_id: str, **where: Any) -> Iterator[dict[str, Any]]:
        q, args = _select("curves", run_id, where)
        for r in self.db.execute(q, args):
            d = dict(r)
            d["points"] = json.loads(d["points"])
            yield d

    def skipped(self, run_id: str) -> list[dict[str, str]]:
        return [dict(r) for r in self.db.execute("SELECT detector, reason FROM skipped WHERE run_id = ?", (run_id,))]


@contextmanager
def open_store(path: str | Path = DEFAULT_DB) -> Iterator[ResultStore]:
    s = ResultStore(path)
    try:
        yield s
    finally:
        s.close()


def _select(table: str, run_id: str, where: dict[str, Any]) -> tuple[str, list[Any]]:
    """``SELECT *`` of one run's rows of ``table``, narrowed by column = value pairs (names are ours, values bound)."""
    q = f"SELECT * FROM {table} WHERE run_id = ?"
    args: list[Any] = [run_id]
    for k, v in where.items():
        q += f" AND {k} = ?"
        args.append(v)
    return q, args
