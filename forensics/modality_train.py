"""Train the modality gate (``forensics.modality``) on real images of a data folder: ``medaudit train modality``.

Data (``--data DIR``, the layout of ``shared/data``): ``cxr_kermany/`` (DX), ``ct_lung_tcia/`` (CT),
``derm_isic/`` (XC), ``mri_brain/*.nii.gz`` (MR: several axial slices per volume), ``mammo/*.pgm`` (MG). Every
image passes through random format processing (crop, resize with one of several kernels, JPEG or 8-bit PNG
quantisation, gamma) so that the model learns the modality, not the file format. A quarter of the patients /
subjects / files (a hash of the group id) are held out and only measured. The rejection threshold is the 99.5th
percentile of out-of-fold distances on the training split (grouped 5-fold), so the held-out figures are honest.
Folders passed as ``measure`` are only scored, never fitted on: that is how the open-set rejection rate on
modalities the model never saw is measured.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensics.modality import CODES, GRID_PX, N_COLOUR, UNKNOWN, ModalityModel, features

MAX_SIDE = 1024  # sources are shrunk to this once; the format chain works from there
HOLDOUT_SHARE = 0.25
REJECT_QUANTILE = 0.995
MIN_PROBABILITY = 0.5
GRID_COMPONENTS = 24
MRI_SLICES = 12  # axial slices per volume, evenly spaced over its middle 70%
# variants per source image, so that each class contributes a similar number of training rows
VARIANTS = {"DX": 2, "CT": 2, "XC": 6, "MR": 2, "MG": 14}


@dataclass
class Source:
    """One real image: its class, the group it is split by (patient, subject, file) and how to read it."""

    code: str
    group: str
    name: str
    read: Callable[[], np.ndarray]


def _shrink(x: np.ndarray) -> np.ndarray:
    import cv2

    h, w = x.shape[:2]
    s = MAX_SIDE / max(h, w)
    if s >= 1:
        return x
    return cv2.resize(x, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _loader(path: Path) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        from forensics.io import load

        return _shrink(load(path).pixels)

    return read


def _pgm(path: Path) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        import cv2

        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ValueError(f"cannot read {path}")
        return _shrink(arr.astype(np.float32) / (65535.0 if arr.dtype == np.uint16 else 255.0))

    return read


def _mri_slices(path: Path) -> list[Callable[[], np.ndarray]]:
    """Axial slices as the NIfTI loader shows them (canonical orientation, anterior up, robust min-max)."""
    import nibabel as nib

    from forensics.io._common import robust_unit

    img = nib.as_closest_canonical(nib.load(str(path)))
    depth = img.shape[2]
    picks = sorted({int(round(v)) for v in np.linspace(0.2 * depth, 0.9 * depth, MRI_SLICES)})

    def reader(k: int) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            vol = np.asanyarray(img.dataobj)
            while vol.ndim > 3:
                vol = vol[..., 0]
            return robust_unit(np.flipud(np.asarray(vol[:, :, k], dtype=np.float32).T))[0]

        return read

    return [reader(min(k, depth - 1)) for k in picks]


def collect(data: str | Path) -> list[Source]:
    """The real images under ``data`` by class; raises FileNotFoundError naming what is missing."""
    root = Path(data)
    sources: list[Source] = []
    for p in sorted((root / "cxr_kermany").glob("*.jpeg")):
        sources.append(Source("DX", "cxr:" + p.name.split("_")[0], p.name, _loader(p)))
    for p in sorted((root / "ct_lung_tcia").glob("*.png")):
        sources.append(Source("CT", "ct:" + p.name, p.name, _loader(p)))
    for p in sorted((root / "derm_isic").glob("*.jpg")):
        sources.append(Source("XC", "derm:" + p.name, p.name, _loader(p)))
    for p in sorted((root / "mri_brain").glob("*.nii.gz")):
        subject = "TCGA" if p.name.startswith("TCGA") else p.name.split("_")[0]
        for k, read in enumerate(_mri_slices(p)):
            sources.append(Source("MR", "mri:" + subject, f"{p.name}#{k}", read))
    patients = _mammo_patients(root / "mammo")
    for p in sorted((root / "mammo").glob("*.pgm")):
        sources.append(Source("MG", "mammo:" + patients.get(p.name, p.name), p.name, _pgm(p)))
    found = Counter(s.code for s in sources)
    missing = [c for c in CODES if not found[c]]
    if missing:
        raise FileNotFoundError(
            f"no training images for {', '.join(missing)} under {root} (expected cxr_kermany/*.jpeg, "
            "ct_lung_tcia/*.png, derm_isic/*.jpg, mri_brain/*.nii.gz, mammo/*.pgm)")
    return sources


def _mammo_patients(folder: Path) -> dict[str, str]:
    import csv

    labels = folder / "labels.csv"
    if not labels.is_file():
        return {}
    with labels.open(newline="") as fh:
        return {row["file"]: row["patient"] for row in csv.DictReader(fh)}


def is_holdout(group: str) -> bool:
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 2**32 < HOLDOUT_SHARE


def format_chain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a file may go through before it reaches a scan: crop, resize (several kernels, 48-1024 px), gamma,
    JPEG (quality 50-100) or 8-bit quantisation; sometimes a grey image stored as three equal channels."""
    import cv2

    h, w = x.shape[:2]
    if rng.random() < 0.7:
        t, b, left, r = (rng.uniform(0, 0.12, 4) * [h, h, w, w]).astype(int)
        if h - t - b >= 16 and w - left - r >= 16:
            x = x[t: h - b, left: w - r]
    h, w = x.shape[:2]
    side = int(np.exp(rng.uniform(np.log(48), np.log(1024))))
    s = side / max(h, w)
    kernel = rng.choice([cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4])
    if s < 1 and kernel != cv2.INTER_AREA and rng.random() < 0.5:
        kernel = cv2.INTER_AREA
    x = cv2.resize(np.ascontiguousarray(x), (max(8, round(w * s)), max(8, round(h * s))), interpolation=int(kernel))
    x = np.clip(x, 0, 1)
    if x.ndim == 2 and rng.random() < 0.4:  # another window: part of the range saturates (a lung vs a soft-tissue
        lo = rng.uniform(0, 0.3)  # window, a brighter or darker print)
        hi = rng.uniform(lo + 0.25, 1.0)
        x = np.clip((x - lo) / (hi - lo), 0, 1)
    if rng.random() < 0.5:
        x = x ** np.exp(rng.uniform(-0.5, 0.5))
    u8 = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        bgr = u8[..., ::-1] if u8.ndim == 3 else u8
        quality = int(rng.integers(50, 101))
        _, enc = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
        u8 = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
        if u8.ndim == 3:
            u8 = u8[..., ::-1]
    return u8.astype(np.float32) / 255.0


def rows(sources: list[Source], seed: int, progress: bool = False) -> Iterator[tuple[Source, np.ndarray]]:
    """(source, raw features) for each source as read and for its random format variants."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    for src in tqdm(sources, desc="modality features", unit="img", disable=not progress, file=sys.stderr):
        x = src.read()
        yield src, features(x)
        for _ in range(VARIANTS[src.code] - 1):
            yield src, features(format_chain(x, rng))


def fit(raw: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Model parameters (JSON-ready) from raw features and class indices into CODES; no rejection threshold yet."""
    from sklearn.covariance import LedoitWolf
    from sklearn.linear_model import LogisticRegression

    n_grid = GRID_PX * GRID_PX
    grid = raw[:, :n_grid]
    grid_mean = grid.mean(axis=0)
    _, _, vt = np.linalg.svd(grid - grid_mean, full_matrices=False)
    components = vt[:GRID_COMPONENTS]
    z = np.concatenate([(grid - grid_mean) @ components.T, raw[:, n_grid:]], axis=1)
    mean, scale = z.mean(axis=0), z.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (z - mean) / scale
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed).fit(z, y)
    centroids, precisions, low, high = [], [], [], []
    for k in range(len(CODES)):
        cov = LedoitWolf().fit(z[y == k])
        centroids.append(cov.location_)
        precisions.append(cov.precision_)
        summary = raw[y == k, -N_COLOUR:]
        low.append(np.quantile(summary, 0.001, axis=0))
        high.append(np.quantile(summary, 0.999, axis=0))
    return {
        "format_version": 1, "codes": list(CODES), "unknown": UNKNOWN,
        "grid_mean": _r(grid_mean), "grid_components": _r(components),
        "mean": _r(mean), "scale": _r(scale), "coef": _r(clf.coef_), "intercept": _r(clf.intercept_),
        "centroids": _r(np.stack(centroids)), "precisions": _r(np.stack(precisions)),
        "low": _r(np.stack(low)), "high": _r(np.stack(high)),
        "max_distance": float("inf"), "max_excess": float("inf"), "min_probability": MIN_PROBABILITY,
    }


def _r(a: np.ndarray) -> list:
    """Six significant digits: the JSON stays small and the model does not change."""
    return np.vectorize(lambda v: float(f"{v:.6g}"), otypes=[float])(np.asarray(a, dtype=np.float64)).tolist()


def _scores(model: ModalityModel, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance and range excess to the predicted class, before thresholds."""
    z = model.embed(raw)
    top = model.probabilities(z).argmax(axis=1)
    rows_ = np.arange(len(z))
    return model.distances(z)[rows_, top], model.excess(raw)[rows_, top]


def rejection_thresholds(raw: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Distance and range-excess thresholds: each the quantile of out-of-fold scores on training data (grouped
    5-fold) that together keep about REJECT_QUANTILE of in-class images."""
    from sklearn.model_selection import GroupKFold

    dist, exc = np.empty(len(y)), np.empty(len(y))
    for tr, te in GroupKFold(n_splits=5).split(raw, y, groups):
        dist[te], exc[te] = _scores(ModalityModel(fit(raw[tr], y[tr], seed)), raw[te])
    q = 1 - (1 - REJECT_QUANTILE) / 2
    return float(np.quantile(dist, q)), float(np.quantile(exc, q))


def confusion(model: ModalityModel, raw: np.ndarray, y: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per true class: n, accuracy (estimate == class), share estimated OT, and the estimates counted."""
    preds = [e["code"] for e in model.predict(raw)]
    out = {}
    for k, code in enumerate(CODES):
        got = [p for p, t in zip(preds, y, strict=True) if t == k]
        if got:
            out[code] = {"n": len(got), "accuracy": round(sum(p == code for p in got) / len(got), 4),
                         "unknown": round(sum(p == UNKNOWN for p in got) / len(got), 4),
                         "estimates": dict(Counter(got))}
    return out


def measure_folder(model: ModalityModel, folder: str | Path) -> dict[str, Any]:
    """Estimates for every image a scan would load under ``folder`` (subfolders named by their first path part);
    never used for fitting."""
    from forensics.errors import InputError
    from forensics.inputs import iter_inputs
    from forensics.io import load

    counts: dict[str, Counter] = {}
    for path, error in iter_inputs([str(folder)]):
        if error is not None:
            continue
        try:
            pixels = load(path).pixels
        except InputError:
            continue
        group = Path(folder).name + "/" + _kind_of(Path(path).name)
        counts.setdefault(group, Counter())[model.predict(features(pixels))[0]["code"]] += 1
    return {g: {"n": sum(c.values()), "estimates": dict(c)} for g, c in sorted(counts.items())}


def _kind_of(name: str) -> str:
    """MINIM's example files are named ``example__<modality>__<n>.jpg``: keep the modality part; else ``*``."""
    parts = name.split("__")
    return parts[1] if len(parts) == 3 and parts[0] == "example" else "*"


def train_modality(data: str | Path, out: str | Path, *, measure: list[str] | None = None, seed: int = 0,
                   progress: bool = False) -> dict[str, Any]:
    """Fit the gate on ``data``, write ``model.json`` and ``report.json`` to ``out``; return the report."""
    from forensics.atomic import write_text

    sources = collect(data)
    feats, labels, groups, held = [], [], [], []
    for src, f in rows(sources, seed, progress):
        feats.append(f)
        labels.append(CODES.index(src.code))
        groups.append(src.group)
        held.append(is_holdout(src.group))
    raw, y, g, held_arr = np.stack(feats), np.asarray(labels), np.asarray(groups), np.asarray(held)
    train = ~held_arr
    max_distance, max_excess = rejection_thresholds(raw[train], y[train], g[train], seed)
    params = fit(raw[train], y[train], seed)
    params.update(max_distance=max_distance, max_excess=max_excess)
    model = ModalityModel(params)
    report: dict[str, Any] = {
        "seed": seed,
        "sources": dict(Counter(s.code for s in sources)),
        "rows": {"train": int(train.sum()), "holdout": int(held_arr.sum())},
        "max_distance": round(max_distance, 4),
        "max_excess": round(max_excess, 4),
        "min_probability": MIN_PROBABILITY,
        "holdout": confusion(model, raw[held_arr], y[held_arr]),
        "train": confusion(model, raw[train], y[train]),
    }
    if measure:
        report["measured"] = {}
        for folder in measure:
            report["measured"].update(measure_folder(model, folder))
    params["report"] = {k: report[k] for k in ("seed", "sources", "rows", "holdout")}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "model.json", json.dumps(params, separators=(",", ":")))
    write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    return report
