"""``labels.csv``: the class labels that travel with generated images, and the one reader of labels CSVs.

``medaudit generate`` writes ``labels.csv`` beside its images, one row per file: ``file`` (name relative to the
folder), ``class``, ``generator``, ``seed``, ``guidance`` (``class`` / ``guidance`` empty for an unconditional
model). A folder that already holds a ``labels.csv`` (an earlier run, another generator) keeps its rows: rows of
the same ``file`` are replaced, others kept, extra columns preserved. The merge holds an exclusive ``flock`` on the
folder so two runs writing into one folder do not lose each other's rows, and the file is replaced atomically
(``forensics.atomic``). Scans skip ``labels.csv`` inside folders (``forensics.inputs``).

``read_labels`` reads any CSV with ``file`` and ``class`` columns (``medaudit train generator --labels``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

LABELS_FILE = "labels.csv"
COLUMNS = ("file", "class", "generator", "seed", "guidance")
#: Column names accepted for the class in a training labels CSV, in order of preference.
CLASS_COLUMNS = ("class", "label", "benign_malignant")


class LabelsError(ValueError):
    """A labels CSV that cannot be read or merged (no ``file`` column, not CSV)."""


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on the folder itself (no lock file left among the images)."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):  # not POSIX: the atomic replace still keeps the file whole
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelsError(f"{path} is not a UTF-8 CSV file: {e}") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = list(reader.fieldnames or [])
    if "file" not in fields:
        raise LabelsError(f"{path} has no 'file' column (columns: {', '.join(fields) or 'none'}); "
                          f"move it away or add one")
    return fields, [dict(r) for r in reader]


def check_labels_file(folder: str | os.PathLike) -> None:
    """Raise :class:`LabelsError` now (before any sampling) when ``folder/labels.csv`` exists but cannot be merged."""
    path = Path(folder) / LABELS_FILE
    if path.is_file():
        _read_rows(path)


def merge_labels(folder: str | os.PathLike, rows: Iterable[Mapping[str, object]]) -> Path:
    """Add or replace ``rows`` (keyed by ``file``) in ``folder/labels.csv``; other rows and columns are kept.

    Returns:
        The path of ``labels.csv``.
    """
    from forensics.atomic import write_text

    folder = Path(folder)
    path = folder / LABELS_FILE
    new = [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]
    with _locked(folder):
        fields, old = _read_rows(path) if path.is_file() else ([], [])
        columns = list(COLUMNS) + [c for c in fields if c not in COLUMNS]
        for r in new:
            columns += [c for c in r if c not in columns]
        by_file = {r.get("file", ""): r for r in old}
        for r in new:
            by_file[r["file"]] = r
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        w.writeheader()
        for f in sorted(by_file):
            w.writerow({c: by_file[f].get(c, "") for c in columns})
        return write_text(path, buf.getvalue())


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """A labels CSV as {file: class}. ``file`` may be a bare name or a path relative to the data folder.

    The class column is the first of ``class``, ``label``, ``benign_malignant`` present (so the derm_isic labels
    file works as it is). Empty classes are kept as ``""`` (unlabelled).
    """
    path = Path(path)
    fields, rows = _read_rows(path)
    col = next((c for c in CLASS_COLUMNS if c in fields), None)
    if col is None:
        raise LabelsError(f"{path} has no class column (one of {', '.join(CLASS_COLUMNS)}; "
                          f"columns: {', '.join(fields)})")
    return {r["file"].strip(): (r.get(col) or "").strip() for r in rows if (r.get("file") or "").strip()}


def label_for(file: Path, root: Path | None, labels: Mapping[str, str]) -> str | None:
    """The class of ``file`` by its path relative to ``root``, else its name, else its stem; None when absent."""
    keys = []
    if root is not None:
        with contextlib.suppress(ValueError):
            keys.append(file.relative_to(root).as_posix())
    keys += [file.name, file.stem]
    for k in keys:
        if k in labels:
            return labels[k]
    return None
