"""The dask engine: the same scan, spread over a dask.distributed cluster (a LocalCluster when none is named).

The client reads each file (the guarded reader, under the per-file time limit and --max-bytes) and ships its bytes
with the task, so workers need no shared file system; each worker
builds its Scanner once (analyzers may load weights) and reuses it. Results come back in input order, so the
output is the same as the local engine's.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

from forensics.errors import InputError
from forensics.io.guarded import read_file, time_limit
from forensics.records import ScanError, ScanResult

_CHUNK = 16  # files per task: enough to amortize scheduling, small enough to keep workers busy
_scanners: dict[int, object] = {}  # per worker process: hash of the run's options -> its Scanner


def _scan_chunk(chunk: list[tuple[str, str | None, bytes | None, ScanError | None]], options) -> list[ScanResult]:
    from forensics.scanner import Scanner

    key = hash(repr(options))
    scanner = _scanners.get(key)
    if scanner is None:
        scanner = _scanners[key] = Scanner(options)
    out = []
    for path, claim_id, data, error in chunk:
        if error is not None:
            out.append(ScanResult(path=path, status="error", claim_id=claim_id, error=error))
        else:
            out.append(scanner.scan_file(path, claim_id, data=data))
    return out


def _read(path: str, options) -> tuple[bytes | None, ScanError | None]:
    """The file's bytes as the local engine reads them, or the error record's error."""
    limit = time_limit(options.timeout_s)
    try:
        with limit:
            data = read_file(path, options.max_bytes)
    except InputError as exc:
        return None, ScanError(exc.code, exc.message)
    if limit.expired:
        return None, ScanError("timeout", limit.message)
    return data, None


def scan_on_dask(
    items: list[tuple[str, str | None]], options, *, workers: int = 2, scheduler: str | None = None
) -> Iterator[ScanResult]:
    """Yield the ScanResult of each ``(path, claim_id)`` in order, computed on a dask cluster."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError("the dask engine needs dask.distributed: pip install 'medaudit[dask]'") from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
    client = Client(cluster if cluster is not None else scheduler)
    try:
        options_future = client.scatter(options, broadcast=True)
        chunks = (items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK))
        in_flight: deque = deque()
        # A bounded window of submitted chunks: file bytes of the whole batch are never all in memory at once.
        window = max(2, 4 * len(client.scheduler_info().get("workers", {})) or 8)
        for chunk in chunks:
            payload = [(path, claim_id, *_read(os.fspath(path), options)) for path, claim_id in chunk]
            in_flight.append(client.submit(_scan_chunk, payload, options_future, pure=False))
            while len(in_flight) >= window:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
