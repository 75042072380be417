"""Image-reuse detection: has this scan been filed before, under another claim (flipped, cropped, re-encoded...)?

    from forensics.reuse import ReuseIndex, add_paths, query_path
    add_paths("claims.db", ["claims/17/"], claim_id="17")
    query_path("claims.db", "claims/23/cxr.jpg")   # -> [{"path": ..., "claim_id": "17", "transform": "hflip", ...}]

The ``reuse`` analyzer (``forensics.reuse.analyzer``) runs the same query during a scan (``scan --index FILE``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from forensics.errors import InputError
from forensics.io import DEFAULT_MAX_BYTES
from forensics.io.guarded import time_limit
from forensics.reuse.index import Match, Record, ReuseIndex, load_thresholds, prepare

__all__ = ["Match", "Record", "ReuseIndex", "add_files", "add_paths", "load_thresholds", "query_path"]


def add_paths(
    db: str | os.PathLike,
    paths: Iterable[str | os.PathLike],
    claim_id: str,
    progress: bool = False,
    batch_size: int = 64,
    modality: str | None = None,
    timeout_s: float = 60.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """File every image under ``paths`` (folders walked recursively, as ``scan`` walks them) under ``claim_id``.

    Returns :func:`add_files`'s counts, with the inputs the walk could not use (not found, link loops) as errors.
    """
    from forensics.inputs import iter_inputs

    files, errors = [], []
    for path, error in iter_inputs(paths):
        if error is not None:
            errors.append({"path": path, "code": error.code, "message": error.message})
        else:
            files.append(path)
    out = add_files(db, files, claim_id, progress=progress, batch_size=batch_size, modality=modality,
                    timeout_s=timeout_s, max_bytes=max_bytes)
    out["errors"] = errors + out["errors"]
    return out


def add_files(
    db: str | os.PathLike,
    files: Iterable[str | os.PathLike],
    claim_id: str,
    progress: bool = False,
    batch_size: int = 64,
    modality: str | None = None,
    timeout_s: float = 60.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    resume: bool = False,
) -> dict[str, Any]:
    """File each of ``files`` (files only: a folder is ``not_a_file``, never walked) under ``claim_id``.

    Each file is read and hashed as a scan reads it: through the guarded reader (regular files up to ``max_bytes``)
    and within the per-file ``timeout_s`` (0: none). A file that cannot be filed is reported, never aborts the run.
    One transaction per ``batch_size`` images. ``resume``: a file already filed under this claim at the same path
    (by an interrupted run) is counted as a skipped duplicate without being read again.

    Returns:
        ``{"added": int, "skipped_duplicates": int, "errors": [{"path", "code", "message"}, ...]}``;
        a skipped duplicate is a file with the same bytes already filed under the same claim.
    """
    from tqdm import tqdm

    files = [os.fspath(f) for f in files]
    out: dict[str, Any] = {"added": 0, "skipped_duplicates": 0, "errors": []}

    def count(records) -> None:
        for r in records:
            out["skipped_duplicates" if r.duplicate else "added"] += 1

    with (
        ReuseIndex(db) as index,
        tqdm(
            total=len(files), desc="index", unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True
        ) as bar,
    ):
        pending = []
        for path in files:
            if resume and index.filed(path, claim_id):
                out["skipped_duplicates"] += 1
                bar.update()
                continue
            prepared = _prepare_file(path, timeout_s, max_bytes)
            if isinstance(prepared, dict):
                out["errors"].append(prepared)
            else:
                pending.append(prepared)
            bar.update()
            if len(pending) >= batch_size:
                count(index._write(pending, claim_id, modality))
                pending = []
        if pending:
            count(index._write(pending, claim_id, modality))
    return out


def _prepare_file(path: str, timeout_s: float, max_bytes: int):
    """:func:`prepare` one file under the time limit; an error record ``{"path", "code", "message"}`` instead of
    any exception (decoder and OpenCV failures included), as ``Scanner.scan_file`` records them."""
    prepared, error = None, None
    limit = time_limit(timeout_s)
    try:  # outside the limit: the alarm repeats until the limit is left, and each repeat must land here
        with limit:
            prepared = prepare(path, max_bytes=max_bytes)
    except InputError as exc:
        error = (exc.code, exc.message)
    except MemoryError:
        error = ("too_many_pixels", "ran out of memory decoding this file")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - one bad file must not end a batch
        error = ("internal_error", f"{type(exc).__name__}: {exc}"[:500])
    if limit.expired:  # whatever code under the limit made of the deadline, the file timed out
        error = ("timeout", limit.message)
    if error is None:
        return prepared
    return {"path": path, "code": error[0], "message": error[1]}


def query_path(
    db: str | os.PathLike, path: str | os.PathLike, limit: int = 5, exclude_claim: str | None = None
) -> list[dict[str, Any]]:
    """Matches for one image file as plain dicts (see :class:`Match`), best first. Raises InputError when the
    file cannot be read and FileNotFoundError when the index does not exist."""
    if not os.path.exists(db):
        raise FileNotFoundError(f"no reuse index at {db}")
    with ReuseIndex(db, readonly=True) as index:
        return [m.to_dict() for m in index.query(path, exclude_claim=exclude_claim, limit=limit)]
