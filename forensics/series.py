"""Series consistency: in a DICOM series, a slice whose local content, noise or grain breaks from its neighbours.

Anatomy changes slowly from one slice to the next, and the acquisition's noise (its level and grain at a place)
changes with it; a 2-D edit of one slice (CT-GAN's injected or removed lesion, a slice swapped in from elsewhere)
does not follow. For each slice, on a grid of cells (about 1/32 of the short side, at least 8 px), on the stored
values (HU for CT), four statistics:

* ``content``: the slice minus the mean of its two neighbours (smoothed, so noise counts little), relative to how
  much the two neighbours differ there: large where the slice holds something neighbours that agree do not;
* ``noise``: log of the median absolute fine residual (the slice minus its 1 px blur), the noise level, against the
  neighbours' mean, either sign;
* ``texture``: the same for a band-pass (1-3 px blur difference), the grain just above noise;
* ``grain``: a drop of the fine residual's correlation with the neighbours' (edges continue across slices, and
  overlapping or resampled slices share part of their noise; grain painted in from elsewhere does neither).

Each is turned into a z-score against the same cell in the other inner slices of the series (median and MAD, never
below a floor, so a cell of air does not alarm on a rounding step). The two end slices have one neighbour: their
change to it is set against the series' slice-to-slice changes. A slice's statistic is its largest z over cells and
statistics, kept only where it exceeds the same cell's z in the adjacent slices (an edit of slice k also shows,
halved, in the ``content`` of k - 1 and k + 1). Its score is a logistic of that z, set on real series
(``series.json`` beside this file: the IXI T1 volumes outside the benchmarks' held-out split); the finding names the
slice, its neighbours, the region and its area, with a heatmap of the z map when flagged.

Only series of at least ``MIN_SLICES`` single-frame slices with a common orientation and size are compared; a slice
that cannot be read is left out (its own scan reports the error) and the rest of the series is still compared.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np

MIN_SLICES = 3
STATISTICS = ("content", "noise", "texture", "grain")
CALIBRATION = Path(__file__).resolve().parent / "series.json"
_SPREAD_FLOOR = 0.5  # a cell's spread is at least this share of the median spread over all cells


@dataclass
class SliceRef:
    """Where one file sits in its series, from its header."""

    path: str
    series: str  # SeriesInstanceUID (with the orientation and frame size, so mixed stacks are kept apart)
    position: float  # along the slice normal, mm
    instance: int


@dataclass
class Verdict:
    """What the series comparison says about one slice (plain data: it travels to the scan's workers)."""

    z: float  # the slice's largest neighbour-relative z over its cells and statistics
    score: float
    index: int  # position in the ordered series (0-based)
    n_slices: int
    neighbours: list[str]  # paths of the adjacent slices compared with
    statistic: str  # which statistic gave z
    box: list[int]  # [x0, y0, x1, y1] of the flagged region, image pixels
    area_px: int
    cell: int  # cell size, px
    flagged: bool = False
    grid: list[list[float]] = field(default_factory=list)  # z per cell (rounded), kept for flagged slices only


# --- headers -----------------------------------------------------------------------------------------------------


def read_ref(path: str, max_bytes: int, timeout_s: float = 60.0) -> SliceRef | None:
    """The series and position of a DICOM file from its header (pixel data not parsed); None for anything else
    (not DICOM, no series UID, no position, multi-frame, unreadable)."""
    from forensics.io.guarded import time_limit

    try:
        with time_limit(timeout_s):
            return _read_ref(path, max_bytes)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - an unreadable header only keeps this file out of the comparison
        return None


def _read_ref(path: str, max_bytes: int) -> SliceRef | None:
    import pydicom

    from forensics.io.guarded import read_file
    from forensics.io.sniff import sniff_format

    data = read_file(path, max_bytes)
    if sniff_format(data, os.path.splitext(path)[1].lower()) != "dicom":
        return None
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True, force=True)
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    ipp = ds.get("ImagePositionPatient")
    iop = ds.get("ImageOrientationPatient")
    if not uid or ipp is None or len(ipp) != 3 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    row, col = (np.array([float(v) for v in iop[:3]]), np.array([float(v) for v in iop[3:6]])) \
        if iop is not None and len(iop) == 6 else (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    normal = np.cross(row, col)
    if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-3:
        return None
    normal /= np.linalg.norm(normal)
    position = float(np.dot(normal, [float(v) for v in ipp]))
    if not math.isfinite(position):
        return None
    key = f"{uid}|{np.round(normal, 2).tolist()}|{ds.get('Rows')}x{ds.get('Columns')}"
    return SliceRef(path, key, position, int(ds.get("InstanceNumber", 0) or 0))


def group_series(refs: list[SliceRef]) -> list[list[SliceRef]]:
    """Series of at least MIN_SLICES slices, each ordered along its normal; duplicate positions keep the first."""
    by: dict[str, list[SliceRef]] = {}
    for r in refs:
        by.setdefault(r.series, []).append(r)
    out = []
    for members in by.values():
        members.sort(key=lambda r: (r.position, r.instance, r.path))
        kept = [m for i, m in enumerate(members) if i == 0 or abs(m.position - members[i - 1].position) > 1e-3]
        if len(kept) >= MIN_SLICES:
            out.append(kept)
    return out


# --- statistics --------------------------------------------------------------------------------------------------


def cell_size(shape: tuple[int, int]) -> int:
    return max(8, int(round(min(shape) / 32)))


def _grid(values: np.ndarray, cell: int) -> np.ndarray:
    """Mean over cell x cell blocks (the image cropped to whole cells)."""
    h, w = values.shape
    gh, gw = h // cell, w // cell
    return values[: gh * cell, : gw * cell].reshape(gh, cell, gw, cell).mean(axis=(1, 3))


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _grid_median(values: np.ndarray, cell: int) -> np.ndarray:
    """Median over cell x cell blocks: an edge crossing the cell (a few of its pixels) does not move it."""
    h, w = values.shape
    gh, gw = h // cell, w // cell
    blocks = values[: gh * cell, : gw * cell].reshape(gh, cell, gw, cell).transpose(0, 2, 1, 3)
    return np.median(blocks.reshape(gh, gw, cell * cell), axis=2)


def own_statistics(values: np.ndarray, cell: int) -> dict[str, np.ndarray]:
    """Per-cell noise and texture energy of one slice (its own pixels only): squared medians of the absolute fine
    residual and band-pass, robust to the few edge pixels a cell may hold."""
    v = values.astype(np.float32)
    b1 = _blur(v, 1.0)
    fine = np.abs(v - b1)
    band = np.abs(b1 - _blur(v, 3.0))
    return {"noise": _grid_median(fine, cell) ** 2, "texture": _grid_median(band, cell) ** 2}


def _fine(x: np.ndarray) -> np.ndarray:
    return x - _blur(x, 1.0)


def neighbour_statistics(prev: np.ndarray | None, here: np.ndarray, nxt: np.ndarray | None,
                         beyond: np.ndarray | None, cell: int) -> dict[str, np.ndarray]:
    """Per-cell statistics of a slice against its neighbours (at an end of the series the one neighbour is the
    prediction, and the drift is that neighbour's change to the next slice, ``beyond``):

    * ``departure`` / ``drift``: mean squares of the smoothed slice minus its neighbours' mean, and of half the
      difference between the two neighbours (how fast anatomy moves there);
    * ``grain``: correlation of the slice's fine residual with its neighbours' (overlapping or resampled slices
      share part of their noise, and edges continue across slices; grain painted in from elsewhere does not).
    """
    if prev is not None and nxt is not None:
        pred, drift, around = 0.5 * (prev + nxt), 0.5 * (nxt - prev), _fine(prev) + _fine(nxt)
    else:
        one = prev if prev is not None else nxt
        pred, drift, around = one, (one - beyond) if beyond is not None else np.zeros_like(one), _fine(one)
    d = _blur(here - pred, 1.5)
    e = _blur(drift, 1.5)
    step = _blur(here - (nxt if nxt is not None else prev), 1.5)
    f = _fine(here)
    cov, var_f, var_a = _grid(f * around, cell), _grid(f * f, cell), _grid(around * around, cell)
    grain = cov / np.sqrt(var_f * var_a + 1e-12)
    return {"departure": _grid(d * d, cell), "drift": _grid(e * e, cell), "step": _grid(step * step, cell),
            "grain": grain}


def compare(stats: dict[str, np.ndarray], cell: int) -> tuple[np.ndarray, np.ndarray]:
    """z maps (slices, gh, gw): each cell's departure from its neighbours, in units of its spread over the series.

    Inner slices: ``content`` is the log ratio of departure to drift (a slice that differs from neighbours that
    agree with each other); ``noise`` / ``texture``: log RMS minus the neighbours' mean, either sign; ``grain``: a
    drop of the residual's correlation with the neighbours; each against the inner slices' spread. The two end
    slices have one neighbour: their change to it (content energy, noise and texture level) is set against the
    slice-to-slice changes of the whole series; grain is not judged there. Returns (z, which): the largest z over
    the statistics, and the index into STATISTICS that gave it.
    """
    departure, drift, step = stats["departure"], stats["drift"], stats["step"]
    floor = _floor(departure)
    inner = slice(1, -1)
    content = _robust_z(0.5 * (np.log(departure + floor) - np.log(drift + floor)), cell, inner)
    content[[0, -1]] = _robust_z(0.5 * np.log(step + _floor(step)), cell)[[0, -1]]
    zs = [content]
    for x in (stats["noise"], stats["texture"]):
        lx = 0.5 * np.log(x + _floor(x))  # log RMS
        d = np.empty_like(lx)
        d[1:-1] = lx[1:-1] - 0.5 * (lx[:-2] + lx[2:])
        z = _robust_z(d, cell, inner)
        first = np.concatenate([lx[:-1] - lx[1:], lx[-1:] - lx[-2:-1]])  # each slice minus the next (last: previous)
        z[[0, -1]] = _robust_z(first, cell)[[0, -1]]
        zs.append(np.abs(z))
    grain = -_robust_z(np.arctanh(np.clip(stats["grain"], -0.99, 0.99)), cell, inner)
    grain[[0, -1]] = 0.0
    zs.append(grain)
    stack = np.stack(zs)
    return stack.max(axis=0), stack.argmax(axis=0)


def _floor(x: np.ndarray) -> float:
    """Half the typical energy of the cells that have any: below it a cell counts as flat (air, padding), so the
    log does not magnify rounding steps there."""
    positive = x[x > 0]
    return 0.5 * float(np.median(positive)) if positive.size else 1.0


def _robust_z(d: np.ndarray, cell: int, among: slice = slice(None)) -> np.ndarray:
    """(d - median) / spread over the slices ``among`` at each cell. The spread is never below half its median over
    the cells that vary, nor below the sampling error of a log RMS from cell x cell pixels (about 1.5 / cell): a
    cell that is flat in most slices (air, padding) must not turn a few stray values into an alarm."""
    ref = d[among]
    centre = np.median(ref, axis=0, keepdims=True)
    spread = 1.4826 * np.median(np.abs(ref - centre), axis=0, keepdims=True)
    varying = spread[spread > 0]
    floor = max(_SPREAD_FLOOR * float(np.median(varying)) if varying.size else 0.0, 1.5 / cell)
    return (d - centre) / np.maximum(spread, floor)


def slice_peaks(z: np.ndarray) -> np.ndarray:
    """z with each cell kept only where it is at least the same cell's z in both adjacent slices (else 0)."""
    keep = np.ones_like(z, dtype=bool)
    keep[1:] &= z[1:] >= z[:-1]
    keep[:-1] &= z[:-1] >= z[1:]
    return np.where(keep, z, 0.0)


# --- calibration -------------------------------------------------------------------------------------------------


def load_calibration(path: Path = CALIBRATION) -> dict[str, float]:
    """{"z0", "scale", "flag_z"}: score = logistic((z - z0) / scale); flag_z the z at which a slice is reported."""
    defaults = {"z0": 8.0, "scale": 1.0, "flag_z": 8.0}
    if path.is_file():
        defaults.update({k: float(v) for k, v in json.loads(path.read_text()).items() if k in defaults})
    return defaults


def score_of(z: float, cal: dict[str, float]) -> float:
    return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, (z - cal["z0"]) / cal["scale"])))))


# --- a whole run -------------------------------------------------------------------------------------------------


def survey(
    paths: list[str],
    *,
    max_bytes: int,
    max_pixels: int,
    timeout_s: float = 60.0,
    progress: bool = False,
) -> dict[str, Verdict]:
    """Compare every slice of every DICOM series among ``paths`` with its neighbours: {path: Verdict}.

    Files that are not DICOM, belong to no series of MIN_SLICES slices, or cannot be read get no verdict (their own
    scan says what they are). Each series is read once, three slices in memory at a time.
    """
    refs = [r for r in (read_ref(p, max_bytes, timeout_s) for p in paths) if r is not None]
    cal = load_calibration()
    out: dict[str, Verdict] = {}
    for members in group_series(refs):
        try:
            out.update(_survey_series(members, max_bytes, max_pixels, timeout_s, cal))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a series that cannot be compared leaves its slices unjudged
            if progress:
                print(f"series comparison skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    return out


def _values(path: str, max_bytes: int, max_pixels: int, timeout_s: float) -> np.ndarray | None:
    """The slice's stored values (modality units, e.g. HU), or None when it cannot be read as one 2-D frame."""
    from forensics.io import load
    from forensics.io.guarded import time_limit

    try:
        with time_limit(timeout_s):
            img = load(path, max_pixels=max_pixels, max_bytes=max_bytes)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - the scan of this file reports why
        return None
    v = img.stored if img.stored is not None else img.pixels
    v = np.asarray(v, dtype=np.float32)
    return v if v.ndim == 2 and np.isfinite(v).all() else None


def _survey_series(members: list[SliceRef], max_bytes: int, max_pixels: int, timeout_s: float,
                   cal: dict[str, float]) -> dict[str, Verdict]:
    return verdicts(((r.path, _values(r.path, max_bytes, max_pixels, timeout_s)) for r in members), cal)


def volume_z(slices) -> tuple[np.ndarray, np.ndarray, int]:
    """Peak z maps (n, gh, gw), the statistic index of each, and the cell size, for same-shape 2-D slices in series
    order (an iterable: at most three are held at a time)."""
    window: list[np.ndarray] = []
    stats: dict[str, list[np.ndarray]] = {}
    cell = 0

    def add(parts: dict[str, np.ndarray]) -> None:
        for key, value in parts.items():
            stats.setdefault(key, []).append(value)

    for j, v in enumerate(slices):
        v = np.asarray(v, dtype=np.float32)
        if j == 0:
            cell = cell_size(v.shape)
        add(own_statistics(v, cell))
        window = (window + [v])[-3:]
        if j == 2:
            add(neighbour_statistics(None, window[0], window[1], window[2], cell))
        if j >= 2:
            add(neighbour_statistics(window[0], window[1], window[2], None, cell))
    if len(window) < 3:
        raise ValueError(f"a series needs at least {MIN_SLICES} slices")
    add(neighbour_statistics(window[1], window[2], None, window[0], cell))
    z, which = compare({key: np.stack(values) for key, values in stats.items()}, cell)
    return slice_peaks(z), which, cell


def verdicts(items, cal: dict[str, float] | None = None) -> dict[str, Verdict]:
    """{path: Verdict} for the ``(path, values)`` slices of one series in series order (an iterable, read as it
    goes). Slices whose values are None (unreadable) or of another shape than the first are left out; fewer than
    MIN_SLICES left: no verdicts."""
    cal = cal or load_calibration()
    paths: list[str] = []

    def readable():
        for path, values in items:
            if values is not None and (not paths or values.shape == shape[0]):
                if not paths:
                    shape[0] = values.shape
                paths.append(path)
                yield values

    shape: list = [None]
    try:
        peaks, which, cell = volume_z(readable())
    except ValueError:
        if len(paths) >= MIN_SLICES:
            raise
        return {}
    out = {}
    for k, path in enumerate(paths):
        gy, gx = np.unravel_index(int(np.argmax(peaks[k])), peaks[k].shape)
        zk = float(peaks[k][gy, gx])
        box, area = _region(peaks[k], gy, gx, cell, cal["flag_z"] / 2)
        out[path] = Verdict(
            z=round(zk, 2), score=score_of(zk, cal), index=k, n_slices=len(paths),
            neighbours=[os.path.basename(paths[j]) for j in (k - 1, k + 1) if 0 <= j < len(paths)],
            statistic=STATISTICS[int(which[k][gy, gx])], box=box, area_px=area, cell=cell,
            flagged=zk >= cal["flag_z"], grid=np.round(peaks[k], 2).tolist() if zk >= cal["flag_z"] else [],
        )
    return out


def _region(peaks: np.ndarray, gy: int, gx: int, cell: int, level: float) -> tuple[list[int], int]:
    """Bounding box (image px) and area of the connected cells around (gy, gx) above ``level``."""
    import cv2

    mask = (peaks >= max(level, 1e-6)).astype(np.uint8)
    mask[gy, gx] = 1
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    ys, xs = np.nonzero(labels == labels[gy, gx])
    box = [int(xs.min() * cell), int(ys.min() * cell), int((xs.max() + 1) * cell), int((ys.max() + 1) * cell)]
    return box, int(ys.size * cell * cell)
