"""Writing scan results as they arrive: JSON Lines, CSV or a human table; resumable and atomic.

A run writing to ``-o FILE`` streams into ``FILE.partial`` (one whole line per result, flushed) and renames it to
``FILE`` when the run completes, so ``FILE`` is never half-written. ``--resume`` continues a ``FILE.partial`` (or a
finished ``FILE``): it drops a line cut by the interruption and skips the inputs already recorded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

from forensics.atomic import atomic_path
from forensics.records import ScanResult

FORMATS = ("jsonl", "csv", "table")
# assessed_by (pixel analyzers that scored the image, ";"-joined) is last: readers of the older columns keep working
CSV_COLUMNS = ("path", "sha256", "status", "risk", "level", "format", "modality", "error_code", "error_message",
               "evidence_codes", "top_evidence", "assessed_by")


def risk_text(risk: float | None) -> str:
    """The risk for a person: two decimals, or "—" when there is none (errors, unscored images)."""
    return "—" if risk is None else f"{risk:.2f}"


def printable(text: str) -> str:
    """``text`` for a terminal: control characters (escape sequences in a file name, newlines, a file name that is
    not UTF-8) shown as Python escapes (``\\x1b``, ``\\n``, ``\\udcff``), never sent as they are.

    Every human-facing line that carries a file name, claim id or message from the input goes through this; JSON
    Lines and CSV keep the exact text (JSON escapes control characters itself).
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def csv_safe(value: object) -> str:
    """A cell spreadsheet programs will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(result: ScanResult) -> list[str]:
    risk = None if result.risk is None else f"{result.risk:.4f}"
    codes = ";".join(dict.fromkeys(e.code for f in result.findings for e in f.evidence if e.weight > 0))
    top = result.top_evidence()
    err = result.error
    assessed = None if result.assessed_by is None else ";".join(result.assessed_by)
    values = (result.path, result.sha256, result.status, risk, result.level, result.format, result.modality,
              err.code if err else None, err.message if err else None, codes, top[1].message if top else None,
              assessed)
    return [csv_safe(v) for v in values]


def _jsonl_line(result: ScanResult) -> str:
    return json.dumps(result.to_dict(), allow_nan=False) + "\n"


def _csv_line(result: ScanResult) -> str:
    buf = io.StringIO()
    row = csv_row(result)
    # QUOTE_MINIMAL quotes only the characters of the line terminator ("\n"): a bare "\r" (in a file name) would
    # end the record for every CSV reader, so such a row is written fully quoted.
    quoting = csv.QUOTE_ALL if any("\r" in cell for cell in row) else csv.QUOTE_MINIMAL
    csv.writer(buf, lineterminator="\n", quoting=quoting).writerow(row)
    return buf.getvalue()


TABLE_HEADER = f"{'LEVEL':<8} {'RISK':>5}  {'TOP REASON':<32} PATH\n"


def _table_line(result: ScanResult) -> str:
    if result.status == "error":
        what = f"{'error':<8} {'—':>5}  {result.error.code if result.error else ''}"
    else:
        top = result.top_evidence()
        what = f"{result.level:<8} {risk_text(result.risk):>5}  {top[1].code if top else ''}"
    return f"{printable(what):<48} {printable(result.path)}\n"


def _table_order(result: ScanResult) -> tuple:
    """Riskiest first; then unscored images, then errors (neither has a risk); ties by path."""
    rank = 0 if result.risk is not None else 1 if result.status == "ok" else 2
    return rank, -(result.risk or 0.0), result.path


class ResultWriter:
    """Streams results to a file (atomically, resumably) or to stdout."""

    def __init__(self, fmt: str = "jsonl", output: str | os.PathLike | None = None, *, resume: bool = False):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        if resume and (output is None or fmt == "table"):
            raise ValueError("--resume needs -o FILE in jsonl or csv format")
        self.fmt = fmt
        self.output = Path(output) if output is not None else None
        self.done: set[tuple[str | None, str]] = set()  # (claim_id, path) of recorded results
        self._line = {"jsonl": _jsonl_line, "csv": _csv_line, "table": _table_line}[fmt]
        self._table: list[ScanResult] = []
        self._stream: TextIO
        if self.output is None:
            self._stream = sys.stdout
            if fmt == "csv":
                self._write(_header())
            return
        self.partial = self.output.with_name(self.output.name + ".partial")
        if resume:
            if not self.partial.exists() and self.output.exists():
                # a copy, not a move: FILE stays whole until the resumed run completes and replaces it
                with atomic_path(self.partial) as tmp:
                    shutil.copyfile(self.output, tmp)
            if self.partial.exists():
                if fmt == "csv" and not _starts_with(self.partial, _header()):
                    raise ValueError(f"cannot resume {self.partial}: its CSV columns are not this version's "
                                     "(written by an earlier medaudit?); rerun without --resume")
                self.done = _recorded_paths(self.partial, fmt)
        fresh = not (resume and self.partial.exists())
        # surrogateescape: a file name that is not UTF-8 (bytes such as b"\xff" decoded by os.fsdecode) is written
        # back as its original bytes instead of ending the run with UnicodeEncodeError; resume reads it the same way
        self._stream = open(self.partial, "w" if fresh else "a", encoding="utf-8", errors="surrogateescape", newline="")
        if fresh and fmt == "csv":
            self._write(_header())

    def write(self, result: ScanResult) -> None:
        if self.fmt == "table":  # a table for people is sorted by risk: written whole when the run ends
            self._table.append(result)
            return
        self._write(self._line(result))

    def _write(self, text: str) -> None:
        # One write and a flush per record: a kill leaves at most one cut line, which resume drops.
        self._stream.write(text)
        self._stream.flush()

    def close(self, complete: bool = True) -> None:
        """Finish; a complete run renames FILE.partial to FILE, an interrupted one leaves .partial to resume. A table
        is written here: a header, then the rows riskiest first (an interrupted run's table holds what was done)."""
        if self.fmt == "table":
            self._write(TABLE_HEADER + "".join(map(_table_line, sorted(self._table, key=_table_order))))
            self._table = []
        if self.output is None:
            return
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        if complete:
            os.replace(self.partial, self.output)


def _header() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(CSV_COLUMNS)
    return buf.getvalue()


def _starts_with(path: Path, header: str) -> bool:
    with open(path, "rb") as f:
        return f.read(len(header.encode())) == header.encode()


def _recorded_paths(path: Path, fmt: str) -> set[tuple[str | None, str]]:
    """(claim_id, path) of each whole record in ``path``; a trailing cut line is truncated away."""
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with open(path, "r+b") as f:
            f.truncate(len(whole))
    text = whole.decode("utf-8", errors="surrogateescape")
    if fmt == "jsonl":
        done = set()
        for line in text.splitlines():
            try:
                record = json.loads(line)
                done.add((record.get("claim_id"), record["path"]))
            except (ValueError, KeyError, TypeError):
                continue
        return done
    rows = csv.reader(io.StringIO(text))
    next(rows, None)
    # csv_safe may have prefixed a quote to the path; undo it so the comparison is with the real path.
    # (every trigger csv_safe quotes, tab and carriage return included, or such a file is scanned again on resume)
    return {(None, r[0][1:] if r[0][:2] in ("'=", "'+", "'-", "'@", "'\t", "'\r") else r[0]) for r in rows if r}
