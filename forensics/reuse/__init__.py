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

from forensics.reuse.index import Match, Record, ReuseIndex, load_thresholds, prepare

__all__ = ["Match", "Record", "ReuseIndex", "add_paths", "load_thresholds", "query_path"]


def add_paths(
    db: str | os.PathLike,
    paths: Iterable[str | os.PathLike],
    claim_id: str,
    progress: bool = False,
    batch_size: int = 64,
    modality: str | None = None,
) -> dict[str, Any]:
    """File every image under ``paths`` (folders walked recursively) under ``claim_id``.

    Files that cannot be read are reported, never abort the run. One transaction per ``batch_size`` images.

    Returns:
        ``{"added": int, "skipped_duplicates": int, "errors": [{"path", "code", "message"}, ...]}``;
        a skipped duplicate is a file with the same bytes already filed under the same claim.
    """
    from tqdm import tqdm

    from forensics.errors import InputError
    from forensics.inputs import iter_inputs

    out: dict[str, Any] = {"added": 0, "skipped_duplicates": 0, "errors": []}
    todo: list[str] = []
    for path, error in iter_inputs(paths):
        if error is not None:
            out["errors"].append({"path": path, "code": error.code, "message": error.message})
        else:
            todo.append(path)

    def count(records) -> None:
        for r in records:
            out["skipped_duplicates" if r.duplicate else "added"] += 1

    with (
        ReuseIndex(db) as index,
        tqdm(
            total=len(todo), desc="index", unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True
        ) as bar,
    ):
        pending = []
        for path in todo:
            try:
                pending.append(prepare(path))
            except InputError as exc:
                out["errors"].append({"path": path, "code": exc.code, "message": exc.message})
            except (ValueError, MemoryError) as exc:
                out["errors"].append({"path": path, "code": "corrupt_image", "message": str(exc)})
            bar.update()
            if len(pending) >= batch_size:
                count(index._write(pending, claim_id, modality))
                pending = []
        if pending:
            count(index._write(pending, claim_id, modality))
    return out


def query_path(
    db: str | os.PathLike, path: str | os.PathLike, limit: int = 5, exclude_claim: str | None = None
) -> list[dict[str, Any]]:
    """Matches for one image file as plain dicts (see :class:`Match`), best first. Raises InputError when the
    file cannot be read and FileNotFoundError when the index does not exist."""
    if not os.path.exists(db):
        raise FileNotFoundError(f"no reuse index at {db}")
    with ReuseIndex(db, readonly=True) as index:
        return [m.to_dict() for m in index.query(path, exclude_claim=exclude_claim, limit=limit)]
