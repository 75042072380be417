"""The one way a file is read, for scans and for the reuse index alike: regular files only, a size cap, a time limit.

``read_file`` opens without blocking (a FIFO or a device cannot hang the open), checks what the opened descriptor
is (so a file swapped between a check and the open is still caught), refuses anything but a regular file and
anything larger than ``max_bytes`` before reading a byte, and never reads more than ``max_bytes``. Files that block
on read although they look regular (``/proc/kmsg``) are ended by ``time_limit``, which the callers wrap around a
whole file's work. Failures are :class:`~forensics.errors.InputError` with the codes docs/FORMATS.md lists.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import threading

from forensics.errors import InputError

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: far above any single medical image file, far below a machine's memory

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def read_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of ``path`` (symbolic links followed), at most ``max_bytes`` of them.

    Raises:
        InputError: ``not_found``, ``symlink_loop``, ``not_a_file`` (folder, FIFO, device, socket), ``too_large``
            (more than ``max_bytes``, checked with fstat before reading and again while reading) or ``unreadable``.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError("not_a_file", f"a directory, not a file: {path}")
        if not stat.S_ISREG(st.st_mode):
            raise InputError("not_a_file", f"not a regular file (device, FIFO or socket): {path}")
        if st.st_size > max_bytes:
            raise InputError("too_large", _too_large(st.st_size, max_bytes))
        if _NONBLOCK:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
        chunks, total = [], 0
        while total <= max_bytes:  # st_size can lie (files in /proc say 0) or the file can grow while read
            chunk = os.read(fd, min(1 << 24, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise InputError("too_large", _too_large(total, max_bytes, "more than "))
        return b"".join(chunks)
    except OSError as exc:
        raise InputError("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _too_large(size: int, cap: int, more: str = "") -> str:
    return f"the file has {more}{size:,} bytes; the limit is {cap:,} (--max-bytes)"


def _open_error(path: str, exc: OSError) -> InputError:
    if exc.errno == errno.ENOENT:
        return InputError("not_found", f"no such file: {path}")
    if exc.errno == errno.ENOTDIR:
        return InputError("not_found", f"no such file (a parent is not a folder): {path}")
    if exc.errno == errno.ELOOP:
        return InputError("symlink_loop", f"symbolic link loop: {path}")
    if exc.errno == errno.EISDIR:
        return InputError("not_a_file", f"a directory, not a file: {path}")
    return InputError("unreadable", f"cannot open {path}: {exc.strerror or exc}")


class time_limit:
    """Raise InputError('timeout') when a file takes longer than ``seconds`` (main thread of a process only).

    Used as ``with time_limit(s) as limit:`` around everything done with one file: reading it (a file that blocks
    on read), decoding, analysing or hashing it.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.active = seconds > 0 and threading.current_thread() is threading.main_thread()

    expired = False

    @property
    def message(self) -> str:
        return f"gave up after {self.seconds:g} s (per-file time limit)"

    def _expire(self, signum, frame):
        # Sticky: the scan records a timeout even when code under the limit catches this exception (an analyzer's
        # `except Exception` did, and went on to return an "ok" finding after the deadline), and the alarm fires
        # again every 50 ms until the limit is left, so nothing keeps running on borrowed time.
        self.expired = True
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        raise InputError("timeout", self.message)

    def __enter__(self):
        if self.active:
            self.previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False
