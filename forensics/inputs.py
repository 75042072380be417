"""Walking the inputs of a scan: files and folders (recursive), safely.

Every path the user named, and every file inside a named folder, comes out exactly once, in a stable order.
Directory loops through symbolic links and unreadable folders become error records instead of hangs or crashes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator

from forensics.errors import InputError
from forensics.io import has_image_suffix

# Files that are never images and clutter real folders; skipped silently inside folders (not when named).
# labels.csv is the sidecar `medaudit generate` writes beside its images (generators.labels).
_IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "labels.csv"})


def iter_inputs(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[str, InputError | None]]:
    """Yield ``(path, None)`` for each file to scan and ``(path, InputError)`` for each that cannot be."""
    for given in paths:
        path = os.fsdecode(given)
        if os.path.isdir(path):
            yield from _walk(path, seen=set())
        elif os.path.lexists(path) and not os.path.exists(path):
            yield path, _broken_link(path)
        elif not os.path.exists(path):
            yield path, InputError("not_found", "no such file or directory")
        else:
            yield path, None


def _walk(folder: str, seen: set[tuple[int, int]]) -> Iterator[tuple[str, InputError | None]]:
    try:
        st = os.stat(folder)
    except OSError as exc:
        yield folder, InputError("unreadable", f"cannot open folder: {exc.strerror or exc}")
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        yield folder, InputError("symlink_loop", "folder already visited through a symbolic link; not entered again")
        return
    seen = seen | {key}
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield folder, InputError("unreadable", f"cannot list folder: {exc.strerror or exc}")
        return
    for entry in entries:
        if entry.name in _IGNORED_NAMES:
            continue
        try:
            is_dir = entry.is_dir()  # follows symlinks; loops are caught by the (dev, inode) set
        except OSError:
            is_dir = False
        if is_dir and has_image_suffix(entry.name):  # someone expected a file there: report it, don't enter
            yield entry.path, InputError("not_a_file", "a folder named like an image file; not entered")
        elif is_dir:
            yield from _walk(entry.path, seen)
        elif entry.is_symlink() and not os.path.exists(entry.path):
            yield entry.path, _broken_link(entry.path)
        else:
            yield entry.path, None


def _broken_link(path: str) -> InputError:
    """The error for a symbolic link that does not resolve: a loop (a -> b -> a) or a link into nowhere."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return InputError("symlink_loop", "symbolic link loop: the link never resolves to a file")
    return InputError("not_found", "broken symbolic link")


def nothing_to_scan(paths: Iterable[str | os.PathLike]) -> str | None:
    """Why ``paths`` hold nothing to scan (every named path missing, every folder without files), or None when the
    walk finds anything at all, an unreadable file included. Stops at the first such entry, so a full folder costs
    one directory listing. A batch pointed at a bad mount must not look like a clean batch (exit 2 in the CLI)."""
    for _, error in iter_inputs(paths):
        if error is None or error.code != "not_found":
            return None
    reasons = []
    for given in paths:
        path = os.fsdecode(given)
        reasons.append(f"{path}: {'folder holds no files' if os.path.isdir(path) else 'no such file or folder'}")
    return "nothing to scan: " + "; ".join(reasons)
