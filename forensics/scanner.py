"""The scan pipeline: path -> load -> analyzers -> fusion -> ScanResult, one file or many in parallel.

``Scanner.score`` (an image in memory -> ScanResult) is the one place findings are fused: ``scan_file``, claim
screening and the benchmarks' suite detectors and evaluations all score through it. A file that cannot be read,
decoded or analysed becomes an error record; the batch always goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forensics.analyzers import Analyzer, analyzer_settings, create_analyzer, list_analyzers
from forensics.errors import InputError
from forensics.fusion import FusionConfig, explain, level_of
from forensics.inputs import iter_inputs
from forensics.io import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load
from forensics.io.guarded import time_limit
from forensics.modality import UNKNOWN, estimate_for
from forensics.phi import is_phi, redact
from forensics.records import UNSCORED, Evidence, Finding, MedicalImage, ScanError, ScanResult

THUMBNAIL_PX = 160
# Header facts shown in reports; identifying ones are redacted unless include_phi.
_DETAIL_KEYWORDS = (
    "Modality", "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ImageType", "ConversionType",
    "SeriesDescription", "StudyDate", "PatientName", "PatientID", "PatientBirthDate", "InstitutionName",
)


@dataclass
class ScanOptions:
    """What a scan runs and how. Plain data, so it can be sent to worker processes."""

    analyzers: list[str] | None = None  # None: every available analyzer
    fusion: FusionConfig = field(default_factory=FusionConfig.for_weights)
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES  # files larger than this are refused (too_large) before they are read
    timeout_s: float = 60.0
    thumbnails: bool = False  # report mode: a thumbnail, header facts and the report's views per image
    view_px: int = 1024  # longer side of the report's full-size views (forensics.report.views); 0: no views
    include_phi: bool = False
    index_path: str | None = None  # reuse index (SQLite) for the reuse analyzer; without it, reuse is skipped
    weights_dir: str | None = None  # pixel detectors trained by `medaudit train detector`; None: the bundled ones
    trust_list: str | None = None  # PEM certificates whose signatures count as trusted (metadata analyzer)
    watermark_key: Any = None  # forensics.watermark.WatermarkKey: also look for this secret key's mark
    # images without a DICOM modality get the one their pixels look like (forensics.modality), and analyzers with
    # `modalities` abstain where it is not theirs; off: they analyse every such image, as before the gate
    modality_gate: bool = True
    # DICOM slices compared with their series neighbours (forensics.series): filled by scan_items for the files of
    # the run, path -> Verdict; None: not compared (the series analyzer abstains)
    series: dict | None = None


class Scanner:
    """Runs the analyzers on one file at a time. Build once per process: analyzers may load weights."""

    def __init__(self, options: ScanOptions | None = None):
        self.options = options or ScanOptions()
        chosen = self.options.analyzers
        self.analyzers: list[Analyzer] = []
        self.skipped: dict[str, str] = {}
        for name in chosen if chosen is not None else list_analyzers():
            analyzer = create_analyzer(name, **self._settings(name))
            if chosen is None and not analyzer.default:
                continue  # opt-in analyzers run only when named
            ok, why = analyzer.availability()
            if ok:
                self.analyzers.append(analyzer)
            else:
                self.skipped[name] = why

    def _settings(self, name: str) -> dict:
        """Constructor arguments: the options the analyzer declares in its ``settings``, those that are set."""
        given = {key: getattr(self.options, key) for key in analyzer_settings(name)}
        return {key: value for key, value in given.items() if value is not None}

    def scan_file(self, path: str, claim_id: str | None = None, data: bytes | None = None) -> ScanResult:
        """Scan one file (or its ``data``, already read); ``claim_id`` tells the reuse analyzer whose it is."""
        start = time.perf_counter()
        result = ScanResult(path=path, status="error", claim_id=claim_id)
        limit = time_limit(self.options.timeout_s)
        try:
            with limit:
                image = load(path, max_pixels=self.options.max_pixels, data=data, max_bytes=self.options.max_bytes)
                if claim_id is not None:
                    image.metadata["claim_id"] = claim_id
                result.sha256 = image.sha256
                result = self.score(image)
        except InputError as exc:
            result.error = ScanError(exc.code, exc.message)
        except MemoryError:
            result.error = ScanError("too_many_pixels", "ran out of memory decoding this file")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # bugs and decoder failures (Rust panics too) must not end a batch
            result.error = ScanError("internal_error", f"{type(exc).__name__}: {exc}")
        if limit.expired:  # whatever an analyzer's `except Exception` made of the deadline, the file timed out
            result = ScanResult(path=path, status="error", sha256=result.sha256, claim_id=claim_id,
                                error=ScanError("timeout", limit.message))
        result.elapsed_ms = (time.perf_counter() - start) * 1000
        return result

    def score(self, image: MedicalImage) -> ScanResult:
        """The verdict on an image in memory: each analyzer's finding (an abstention where the image's modality is
        outside what it applies to), fused into ``risk`` and ``level``. Exceptions propagate; ``scan_file`` turns
        them into error records. The claim id, if any, is ``image.metadata["claim_id"]``.

        An image no pixel analyzer scored, with nothing decisive and bounded evidence below medium, is ``unscored``
        with risk None: "nothing found" would claim an assessment that did not happen."""
        gate = self.options.modality_gate or image.modality is not None
        estimate = estimate_for(image) if gate else None  # None for DICOM with a Modality; else computed once, here
        findings = [a.analyze(image) if not gate or a.applies_to(image) else _abstain(a, image)
                    for a in self.analyzers]
        fusion = explain(findings, self.options.fusion)
        for finding, contribution in zip(findings, fusion.contributions, strict=True):
            finding.contribution = contribution
        risk: float | None = fusion.risk
        level = level_of(fusion.risk, self.options.fusion)
        if not fusion.scored and level == "low":
            risk, level = None, UNSCORED
        h, w = image.pixels.shape[:2]
        result = ScanResult(
            path=image.path, status="ok", sha256=image.sha256, risk=risk, level=level,
            format=image.format, modality=image.modality, findings=findings, width=w, height=h,
            claim_id=image.metadata.get("claim_id"), assessed_by=fusion.assessed_by, prior_logit=fusion.prior,
            logit=fusion.logit,
            modality_estimate=None if estimate is None else {k: estimate[k] for k in ("code", "confidence")},
        )
        if self.options.thumbnails:
            result.thumbnail = thumbnail(image.pixels)
            result.details = self._details(image)
            if self.options.view_px > 0:
                from forensics.report.views import build_views

                result.views = build_views(image, findings, self.options.view_px, index_path=self.options.index_path,
                                           max_bytes=self.options.max_bytes, max_pixels=self.options.max_pixels)
        return result

    def _details(self, image: MedicalImage) -> dict[str, str]:
        details = {"size": f"{image.pixels.shape[1]}×{image.pixels.shape[0]}", "bit depth": str(image.bit_depth)}
        if image.frames > 1:
            details["frames"] = str(image.frames)
        if image.dicom is not None:
            for keyword in _DETAIL_KEYWORDS:
                value = image.dicom.get(keyword)
                if value is None or value == "":
                    continue
                text = str(value)
                details[keyword] = redact(text) if is_phi(keyword) and not self.options.include_phi else text
        return details


def _abstain(analyzer: Analyzer, image: MedicalImage) -> Finding:
    trained = ", ".join(sorted(analyzer.modalities or ()))
    estimate = estimate_for(image)
    if estimate is None:
        why = f"not trained on modality {image.modality} (only {trained}): no score"
    elif estimate["code"] == UNKNOWN:
        why = (f"not trained on this kind of image: no DICOM modality, and the pixels look like none of the known "
               f"modalities (estimate {UNKNOWN}, confidence {estimate['confidence']:.2f}; nearest "
               f"{estimate['nearest']}); only {trained}: no score")
    else:
        why = (f"not trained on modality {estimate['code']} (estimated from the pixels, no DICOM modality; "
               f"confidence {estimate['confidence']:.2f}); only {trained}: no score")
    return analyzer.finding(None, [Evidence(f"{analyzer.name}.out_of_domain", why, 0.0)])


def thumbnail(pixels: np.ndarray, size: int = THUMBNAIL_PX) -> np.ndarray:
    """uint8 preview whose longer side is at most ``size`` (nearest-neighbour-free area resampling)."""
    import cv2

    h, w = pixels.shape[:2]
    scale = min(1.0, size / max(h, w))
    small = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)


# --- many files -------------------------------------------------------------------------------------------------

_worker_scanner: Scanner | None = None


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 1.0


def die_with_parent(parent: int) -> None:
    """End this worker process when ``parent`` (the process that started it) dies, whatever killed it.

    A worker left behind holds its memory (hundreds of MB with the models loaded) and keeps running: SIGKILL,
    SIGTERM or the OOM killer on the main process would otherwise orphan it. On Linux the kernel sends SIGKILL to
    the worker when its parent exits (prctl PR_SET_PDEATHSIG); everywhere, and for the moment before prctl took
    hold, a daemon thread polls the parent pid every PARENT_POLL_S seconds and exits when it changed.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol (unusual builds): the watchdog below still holds
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before this worker got here
        os._exit(1)
    threading.Thread(target=watch, name="medaudit-parent-watchdog", daemon=True).start()


def _init_worker(options: ScanOptions, parent: int) -> None:
    global _worker_scanner
    die_with_parent(parent)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker_scanner = Scanner(options)
    if "torch" in sys.modules:  # only when an analyzer uses it: importing torch costs seconds
        sys.modules["torch"].set_num_threads(1)  # one process per core; torch's own threads would fight


def _scan_in_worker(item: tuple[str, str | None]) -> ScanResult:
    assert _worker_scanner is not None
    return _worker_scanner.scan_file(*item)


Key = tuple["str | None", str]  # (claim_id, path): what --resume skips


def scan_paths(
    paths: Iterable[str | os.PathLike],
    options: ScanOptions | None = None,
    *,
    workers: int = 1,
    skip: set[Key] | frozenset[Key] = frozenset(),
    progress: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
) -> Iterator[ScanResult]:
    """Scan files and folders; yield one ScanResult per input in a stable order.

    Args:
        paths: files and folders (walked recursively).
        options: analyzers, thresholds, limits.
        workers: processes (local engine) or workers of a new LocalCluster (dask engine without scheduler).
        skip: ``(None, path)`` keys already done (``--resume``); they are not yielded again.
        progress: show a progress bar on stderr.
        engine: ``local`` (this machine's processes) or ``dask`` (dask.distributed).
        scheduler: address of a running dask scheduler; None starts a LocalCluster.
    """
    items: list[tuple[str, str | None]] = []
    errors: list[ScanResult] = []
    for path, error in iter_inputs(paths):
        if error is not None:
            if (None, path) not in skip:
                errors.append(ScanResult(path=path, status="error", error=ScanError(error.code, error.message)))
        else:
            items.append((path, None))  # skipped ones too: their slices are the neighbours of those left to scan
    yield from errors
    yield from scan_items(items, options, workers=workers, skip=skip, progress=progress, engine=engine,
                          scheduler=scheduler)


def scan_items(
    items: list[tuple[str, str | None]],
    options: ScanOptions | None = None,
    *,
    workers: int = 1,
    skip: set[Key] | frozenset[Key] = frozenset(),
    progress: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
) -> Iterator[ScanResult]:
    """Scan ``(path, claim_id)`` pairs (files, no walking) in order; the claim id goes into each result."""
    from tqdm import tqdm

    todo = [item for item in items if (item[1], item[0]) not in skip]
    options = options or ScanOptions()
    if todo:
        options = _with_series(options, [path for path, _ in items], progress)
    with tqdm(total=len(todo), desc="scan", unit="img", disable=not progress, file=sys.stderr,
              dynamic_ncols=True) as bar:
        for result in _execute(todo, options, workers, engine, scheduler):
            bar.update()
            yield result


def _with_series(options: ScanOptions, paths: list[str], progress: bool) -> ScanOptions:
    """``options`` with the series comparison of the DICOM slices among ``paths`` (all of them, so that a resumed
    run compares its remaining slices with those already done), when the series analyzer is to run."""
    from dataclasses import replace

    from forensics.series import survey

    # opt-in: only a run that names the series analyzer pays for reading every slice twice
    if options.series is not None or "series" not in (options.analyzers or ()):
        return options
    found = survey(list(dict.fromkeys(paths)), max_bytes=options.max_bytes, max_pixels=options.max_pixels,
                   timeout_s=options.timeout_s, progress=progress)
    if progress and found:
        flagged = sum(v.flagged for v in found.values())
        print(f"series: {len(found)} DICOM slices compared with their neighbours, {flagged} inconsistent",
              file=sys.stderr)
    return replace(options, series=found)


def _execute(todo, options: ScanOptions, workers: int, engine: str, scheduler: str | None) -> Iterator[ScanResult]:
    if engine == "dask":
        from forensics.distributed import scan_on_dask

        yield from scan_on_dask(todo, options, workers=workers, scheduler=scheduler)
        return
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}; choose local or dask")
    if workers <= 1 or len(todo) <= IN_PROCESS_MAX:
        scanner = Scanner(options)
        yield from (scanner.scan_file(*item) for item in todo)
        return
    yield from _execute_pool(todo, options, workers)


# Up to this many files are scanned in this process whatever --workers says: each worker imports torch and loads the
# models again (seconds), more than a handful of images take to scan.
IN_PROCESS_MAX = 4
WORKER_DIED = "worker process died while scanning this file (killed, out of memory, or a crash in native code)"


def _scan_chunk_in_worker(chunk: list[tuple[str, str | None]]) -> list[ScanResult]:
    return [_scan_in_worker(item) for item in chunk]


def _execute_pool(todo: list[tuple[str, str | None]], options: ScanOptions, workers: int) -> Iterator[ScanResult]:
    """Scan ``todo`` in ``workers`` processes, yielding in input order; survives workers that die.

    multiprocessing.Pool waits forever for a task whose worker died (os._exit, SIGKILL, OOM killer, a segfault in
    a decoder). concurrent.futures reports it as BrokenProcessPool instead: the chunks in flight are then redone
    one file at a time in a fresh one-worker pool, so the file that kills its worker is found and recorded as
    ``internal_error`` and every other file still gets its real result.
    """
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")

    def new_pool(n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                                   initargs=(options, os.getpid()))

    size = max(1, min(16, len(todo) // (workers * 8)))
    chunks = iter([todo[i : i + size] for i in range(0, len(todo), size)])
    window = deque()  # (chunk, future) in input order; a bounded number in flight
    pool = new_pool(workers)

    def fill() -> None:
        while len(window) < workers * 4:
            chunk = next(chunks, None)
            if chunk is None:
                return
            try:
                window.append((chunk, pool.submit(_scan_chunk_in_worker, chunk)))
            except BrokenProcessPool:
                window.append((chunk, None))

    try:
        fill()
        while window:
            chunk, future = window.popleft()
            try:
                if future is None:
                    raise BrokenProcessPool("pool already broken")
                results = future.result()
            except BrokenProcessPool:
                pool.shutdown(wait=True, cancel_futures=True)
                redo = [item for c in [chunk, *(c for c, _ in window)] for item in c]
                window.clear()
                yield from _isolate(redo, new_pool)
                pool = new_pool(workers)
                fill()
                continue
            yield from results
            fill()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _isolate(items: list[tuple[str, str | None]], new_pool) -> Iterator[ScanResult]:
    """Scan ``items`` one at a time in a one-worker pool; a file whose worker dies gets an internal_error record."""
    from concurrent.futures.process import BrokenProcessPool

    pool = new_pool(1)
    try:
        for path, claim_id in items:
            try:
                yield pool.submit(_scan_in_worker, (path, claim_id)).result()
            except BrokenProcessPool:
                pool.shutdown(wait=True)
                yield ScanResult(path=path, status="error", claim_id=claim_id,
                                 error=ScanError("internal_error", WORKER_DIED))
                pool = new_pool(1)
    finally:
        pool.shutdown(wait=True)
