"""Throughput of `medaudit scan`: images/s on 512×512 PNG and DICOM files, as the CLI runs it.

    medaudit bench scan-speed -n 400 --workers 2 --analyzers metadata --write-docs docs/BENCHMARKS.md

The files are made here (noise-textured 8-bit PNG; 16-bit CT DICOM built from pydicom's CT example header), so
the figure measures the pipeline, not the disk cache of someone's data set.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.evaluations import Recorder, Section, register_evaluation


def make_inputs(folder: Path, n: int, kind: str, size: int = 512, seed: int = 0) -> list[Path]:
    """``n`` files of ``kind`` (png|dicom) at ``size``² in ``folder``."""
    import pydicom
    import pydicom.examples
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 8)
    base = (base - base.min()) / np.ptp(base)
    paths = []
    template = pydicom.dcmread(pydicom.examples.get_path("ct")) if kind == "dicom" else None
    for i in range(n):
        img = np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1)
        path = folder / f"{kind}_{i:05d}.{'dcm' if kind == 'dicom' else 'png'}"
        if kind == "png":
            cv2.imwrite(str(path), (img * 255).astype(np.uint8))
        else:
            ds = template.copy()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.Rows = ds.Columns = size
            ds.PixelData = (img * 2000 - 1000 + 1024).astype(np.int16).tobytes()
            ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def measure(paths: list[Path], workers: int, analyzers: list[str] | None, engine: str = "local") -> float:
    """Images per second for a full scan of ``paths`` (pool or cluster start-up included, as a user sees it)."""
    from forensics.scanner import ScanOptions, scan_paths

    options = ScanOptions(analyzers=analyzers)
    start = time.perf_counter()
    results = list(scan_paths([str(p) for p in paths], options, workers=workers, engine=engine))
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} benchmark inputs failed, e.g. {bad[0].error}")
    return len(paths) / elapsed


def run(n: int = 400, workers: int = 2, analyzers: list[str] | None = None, size: int = 512,
        engines: tuple[str, ...] = ("local",)) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("png", "dicom"):
            folder = Path(tmp) / kind
            folder.mkdir()
            paths = make_inputs(folder, n, kind, size)
            measure(paths[: min(20, n)], 1, analyzers)  # warm imports and page cache
            for engine in engines:
                rows.append({"format": kind, "size": size, "n": n, "engine": engine, "workers": workers,
                             "analyzers": ",".join(analyzers) if analyzers else "all available",
                             "images_per_s": round(measure(paths, workers, analyzers, engine), 1)})
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| format | size | images | engine | workers | analyzers | images/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['format']} | {r['size']}² | {r['n']} | {r['engine']} | {r['workers']} | {r['analyzers']} "
              f"| {r['images_per_s']} |" for r in rows]
    return "\n".join(lines)


@register_evaluation("scan_speed")
def evaluate_scan_speed(record: Recorder, *, n: int = 400, workers: int = 2, analyzers: tuple[str, ...] | None = None,
                        size: int = 512, engines: tuple[str, ...] = ("local",)) -> Section:
    """Images/s per format and engine; the section is named after the analyzers and size (one per set-up).

    Args:
        n: files per format.
        analyzers: analyzer names (None: every available one).
    """
    rows = run(n, workers, list(analyzers) if analyzers else None, size, tuple(engines))
    for r in rows:
        record(metric="images_per_s", value=r["images_per_s"], subset=f"{r['format']}/{size}", perturbation=r["engine"],
               n_real=n)
    label = ",".join(analyzers) if analyzers else "all"
    return Section(f"scan-speed-{label.replace(',', '-')}-{size}", f"Scan throughput: {label} analyzers, {size}²",
                   to_markdown(rows))
