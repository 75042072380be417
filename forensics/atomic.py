"""Atomic file output, the one implementation every writer uses: temp file beside the target, fsync, os.replace.

A reader sees the old file or the new one, never half of one; a write that fails or is interrupted leaves no temp
file behind. The temp file is created with mode 0o666, so the umask decides the final permissions, as for open().
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0o022)  # read once at import: setting it briefly later would race with other threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in ``path``'s folder to write to (by any library); on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_UMASK)  # libraries that write through mkstemp leave 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        _write_synced(tmp, data)
    return Path(path)


def write_set(files: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Replace several files as one set (a report's html, json and csv): every file is written and synced to its
    temp file first, and only when all are written are they renamed into place. A failure while writing (a full
    disk) leaves every old file as it was: never a new file beside old ones. Renames need no space."""
    with ExitStack() as stack:
        temps = [(stack.enter_context(atomic_path(path)), data) for path, data in files.items()]
        for tmp, data in temps:
            _write_synced(tmp, data)
    return [Path(p) for p in files]


def _write_synced(tmp: Path, data: bytes) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with UTF-8 ``text`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


