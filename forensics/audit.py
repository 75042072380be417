"""An audit: scan inputs and write the report (HTML, JSON, CSV) with what an examiner needs to rely on it."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

from forensics.records import ScanResult
from forensics.scanner import Scanner, ScanOptions, scan_paths


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medaudit")
    except PackageNotFoundError:
        return "0+unknown"


def audit(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: ScanOptions | None = None,
    *,
    workers: int = 1,
    progress: bool = False,
    command: str | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> tuple[list[ScanResult], dict[str, Path]]:
    """Scan ``paths`` and write report.html, report.json and report.csv into ``out_dir``.

    Returns:
        The results (with thumbnails) and the written files by kind (``html``, ``json``, ``csv``).
    """
    from forensics.report import write_report

    options = options or ScanOptions(thumbnails=True)
    started = now_utc()
    results = list(scan_paths(paths, options, workers=workers, progress=progress, engine=engine, scheduler=scheduler))
    context = dict(run_context(options, command), started=started)
    return results, write_report(results, out_dir, context)


def run_context(options: ScanOptions, command: str | None = None) -> dict:
    """What an examiner needs to rely on a report: versions, model hashes, thresholds, command, time, machine."""
    scanner = Scanner(options)
    analyzers = [
        {"name": a.name, "version": a.version, "available": True, "reason": "", "model_hashes": a.model_hashes()}
        for a in scanner.analyzers
    ] + [{"name": n, "version": "", "available": False, "reason": why, "model_hashes": {}}
         for n, why in scanner.skipped.items()]
    return {
        "tool_version": tool_version(),
        "command": command if command is not None else shlex.join(sys.argv),
        "started": now_utc(),
        "finished": now_utc(),
        "thresholds": options.fusion.thresholds(),
        "analyzers": analyzers,
        "include_phi": options.include_phi,
        "machine": f"{platform.node()} ({platform.platform()}, Python {platform.python_version()})",
    }
