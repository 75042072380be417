"""Robustness and false-positive rate of the provenance watermark on real images.

Takes real images (``cxr_kermany`` JPEG, ``ct_lung_tcia`` PNG, ``derm_isic`` RGB JPEG), brings them to generator
sizes (64 and 128 px, as our generators output them) and keeps them at native size, marks them, applies each
perturbation, and reports the detection rate on the marked images (TPR) and on the unmarked originals under the
same perturbation (FPR), plus the PSNR of marking.

    medaudit bench watermark --data DIR -n 100 --write-docs docs/BENCHMARKS.md

With generators (``--generators N``) it also measures the keyed mark: found with its key after JPEG 70 and 0.5x
resizing, and never with it on unmarked, publicly marked or wrongly keyed images (``run_keyed``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.evaluations import Recorder, Section, register_evaluation
from forensics.watermark import THRESHOLD, detect, embed

DATASETS = (("cxr_kermany", False), ("ct_lung_tcia", False), ("derm_isic", True))
_EXTS = {".png", ".jpg", ".jpeg"}


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    u = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    if u.ndim == 3:
        u = u[:, :, ::-1]
    # cv2 writes 4:2:0 chroma subsampling by default for colour images.
    ok, buf = cv2.imencode(".jpg", u, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    d = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if d.ndim == 3:
        d = d[:, :, ::-1]
    return d.astype(np.float32) / 255.0


def _resize(x: np.ndarray, f: float) -> np.ndarray:
    h, w = x.shape[:2]
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(x, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)


def _resize_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return cv2.resize(x, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _noise(x: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(x + rng.normal(0.0, sigma, x.shape).astype(np.float32), 0.0, 1.0)


def _to8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 1) * 255.0).astype(np.float32) / 255.0


def _to16(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 1) * 65535.0).astype(np.float32) / 65535.0


# name -> (prepare the unmarked source, perturb); "16->8 bit" marks a 16-bit version and exports 8-bit.
PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "jpeg 90": lambda x: _jpeg(x, 90),
    "jpeg 70": lambda x: _jpeg(x, 70),
    "resize 0.5x": lambda x: _resize(x, 0.5),
    "resize 0.5x+back": lambda x: _resize_to(_resize(x, 0.5), x.shape),
    "resize 0.75x": lambda x: _resize(x, 0.75),
    "resize 1.5x": lambda x: _resize(x, 1.5),
    "0.5x + jpeg 70": lambda x: _jpeg(_resize(x, 0.5), 70),
    "16->8 bit": _to8,
    "blur s=1": lambda x: cv2.GaussianBlur(x, (0, 0), 1.0),
    "noise s=2/255": lambda x: _noise(x, 2.0 / 255.0),
}


def load_images(folder: Path, rgb: bool, n: int) -> list[np.ndarray]:
    if not folder.is_dir():  # a data set that is not there is skipped by the caller
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTS)[:n]
    out = []
    for p in files:
        im = cv2.imread(str(p), cv2.IMREAD_COLOR if rgb else cv2.IMREAD_GRAYSCALE)
        if im is None:
            continue
        if im.ndim == 3:
            im = im[:, :, ::-1]
        out.append(np.ascontiguousarray(im).astype(np.float32) / 255.0)
    return out


def _at_size(x: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return x
    return cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")


def run(data: Path, n: int, sizes: list[int | None]) -> tuple[str, dict]:
    """(Markdown, summary): detection and false-positive rates per data set, size and perturbation.

    The summary holds ``rows`` [(data set, size label, n, TPR per perturbation, FPR per perturbation)], ``psnr``
    {(data set, size label): (mean, min) dB} and the totals (``fp``, ``negatives``, ``max_null_z``).
    """
    rows, fp_total, neg_total, max_null, psnrs, times = [], 0, 0, -np.inf, {}, []
    for name, rgb in DATASETS:
        originals = load_images(data / name, rgb, n)
        if not originals:
            print(f"skipping {name}: no images", file=sys.stderr)
            continue
        for size in sizes:
            label = f"{size}px" if size else "native"
            imgs = [_at_size(x, size) for x in originals]
            tpr_row, fpr_row, ps = [], [], []
            for pert, fn in PERTURBATIONS.items():
                tp = fp = 0
                for x in imgs:
                    if pert == "16->8 bit":
                        src = _to16(x)
                        marked, clean = fn(embed(src)), fn(src)
                    else:
                        marked, clean = fn(embed(x)), fn(x)
                    t0 = time.perf_counter()
                    rm = detect(marked)
                    times.append(time.perf_counter() - t0)
                    ru = detect(clean)
                    tp += rm.present
                    fp += ru.present
                    max_null = max(max_null, ru.z)
                tpr_row.append(tp / len(imgs))
                fpr_row.append(fp / len(imgs))
                fp_total += fp
                neg_total += len(imgs)
            for x in imgs:
                ps.append(_psnr(embed(x), x))
            psnrs[(name, label)] = (float(np.mean(ps)), float(np.min(ps)))
            rows.append((name, label, len(imgs), tpr_row, fpr_row))
            print(f"done {name} {label}", file=sys.stderr)

    perts = list(PERTURBATIONS)
    lines = [
        f"Watermark detection rate (TPR) on marked real images; threshold z >= {THRESHOLD}.",
        "",
        "| data | size | n | PSNR mean/min dB | " + " | ".join(perts) + " |",
        "|---|---|---|---|" + "---|" * len(perts),
    ]
    for name, label, count, tpr, _ in rows:
        pm, pmin = psnrs[(name, label)]
        lines.append(
            f"| {name} | {label} | {count} | {pm:.1f} / {pmin:.1f} | " + " | ".join(f"{v:.2f}" for v in tpr) + " |"
        )
    lines += [
        "",
        "False-positive rate on the unmarked originals under the same perturbations.",
        "",
        "| data | size | n | " + " | ".join(perts) + " |",
        "|---|---|---|" + "---|" * len(perts),
    ]
    for name, label, count, _, fpr in rows:
        lines.append(f"| {name} | {label} | {count} | " + " | ".join(f"{v:.2f}" for v in fpr) + " |")
    lines += [
        "",
        f"Unmarked: {fp_total} detections in {neg_total} (image, perturbation) pairs; largest null z = {max_null:.2f}.",
        f"detect() median {1000 * float(np.median(times)):.2f} ms per image (inputs of all sizes above).",
    ]
    summary = {"fp": fp_total, "negatives": neg_total, "max_null_z": float(max_null), "rows": rows, "psnr": psnrs}
    return "\n".join(lines) + "\n", summary


def run_generators(n: int) -> tuple[str, dict[str, list[float]]]:
    """Detection rate on what the bundled generators actually output (stamped as ``generate`` stamps them).

    Returns:
        (Markdown, {generator: detection rate per perturbation, in ``PERTURBATIONS`` order}).
    """
    from generators import list_bundled, load_generator
    from generators.provenance import stamp

    perts = list(PERTURBATIONS)
    lines = [
        "Watermark detection rate (TPR) on stamped outputs of the bundled generators, after each perturbation.",
        "",
        "| generator | size | n | " + " | ".join(perts) + " |",
        "|---|---|---|" + "---|" * len(perts),
    ]
    by_model = {}
    for model in list_bundled():
        gen = load_generator(model["name"], device="cpu")
        marked = [stamp(x, generator=model["name"], version="bench", seed=0) for x in gen.sample(n, seed=1)]
        rates = []
        for pert, fn in PERTURBATIONS.items():
            src = [_to16(x) for x in marked] if pert == "16->8 bit" else marked
            rates.append(float(np.mean([detect(fn(x)).present for x in src])))
        size = marked[0].shape[0]
        lines.append(f"| {model['name']} | {size}px | {n} | " + " | ".join(f"{v:.2f}" for v in rates) + " |")
        by_model[model["name"]] = rates
    return "\n".join(lines) + "\n", by_model


#: The secret of the keyed-mark figures: fixed, so a rerun reproduces them (any secret behaves the same).
BENCH_KEY = "medaudit-benchmark-watermark-key-v1"
KEYED_PERTURBATIONS = ("none", "jpeg 70", "resize 0.5x", "0.5x + jpeg 70")


def run_keyed(n: int, wrong_keys: int = 2) -> tuple[str, dict]:
    """The keyed mark (``--watermark-key``) on the bundled generators' outputs.

    Detection with the key on outputs stamped with it, after ``KEYED_PERTURBATIONS``; and false detections with the
    key on the same samples unmarked, with the public mark, and with ``wrong_keys`` other secrets, under every
    perturbation in ``PERTURBATIONS`` (5 generators x n x (2 + wrong_keys) x 11 null images).

    Returns:
        (Markdown, {"tpr": {perturbation: rate}, "n_marked", "false_positives", "n_null", "max_null_z"}).
    """
    from forensics.watermark import WatermarkKey
    from generators import list_bundled, load_generator
    from generators.provenance import stamp

    key = WatermarkKey(BENCH_KEY)
    others = [WatermarkKey(f"{BENCH_KEY}-wrong-{i}") for i in range(wrong_keys)]
    hits = {p: 0 for p in KEYED_PERTURBATIONS}
    marked_n = fp = null_n = 0
    max_null = -np.inf
    for model in list_bundled():
        gen = load_generator(model["name"], device="cpu")
        for x in gen.sample(n, seed=2):
            mine = stamp(x, generator=model["name"], version="bench", seed=0, key=key)
            for pert in KEYED_PERTURBATIONS:
                hits[pert] += detect(PERTURBATIONS[pert](mine), key=key).present
            marked_n += 1
            nulls = [x, stamp(x, generator="", version="", seed=0)]
            nulls += [stamp(x, generator="", version="", seed=0, key=k) for k in others]
            for img in nulls:
                for fn in PERTURBATIONS.values():
                    res = detect(fn(img), key=key)
                    fp += res.present
                    max_null = max(max_null, res.z)
                    null_n += 1
        print(f"done keyed {model['name']}", file=sys.stderr)
    tpr = {p: hits[p] / max(marked_n, 1) for p in KEYED_PERTURBATIONS}
    lines = [
        "Keyed watermark (`--watermark-key`): detection with the key on outputs of the bundled generators stamped "
        "with it, and false detections with the key on the same samples unmarked, with the public mark and with "
        f"{wrong_keys} other keys, each under all {len(PERTURBATIONS)} perturbations above.",
        "",
        "| marked n | " + " | ".join(KEYED_PERTURBATIONS) + " | null images | false detections | largest null z |",
        "|---|" + "---|" * len(KEYED_PERTURBATIONS) + "---|---|---|",
        f"| {marked_n} | " + " | ".join(f"{tpr[p]:.3f}" for p in KEYED_PERTURBATIONS)
        + f" | {null_n} | {fp} | {max_null:.2f} |",
    ]
    summary = {"tpr": tpr, "n_marked": marked_n, "false_positives": fp, "n_null": null_n,
               "max_null_z": float(max_null)}
    return "\n".join(lines) + "\n", summary


@register_evaluation("watermark")
def evaluate_watermark(record: Recorder, *, data: Path, n: int = 100,
                       sizes: tuple[int | None, ...] = (64, 128, None), n_generated: int = 60) -> Section:
    """Detection rate (marked) and false positives (unmarked) per data set, size and perturbation.

    Args:
        data: folder with ``cxr_kermany/``, ``ct_lung_tcia/``, ``derm_isic/`` (any of them).
        n: images per data set.
        sizes: pixel sides to bring the images to; None keeps the native size.
        n_generated: also measure this many stamped outputs of each bundled generator (0: skip).
    """
    table, summary = run(Path(data), n, list(sizes))
    perts = list(PERTURBATIONS)
    for name, label, count, tpr, fpr in summary["rows"]:
        subset = f"{name}/{label}"
        for pert, t, f in zip(perts, tpr, fpr, strict=True):
            record(metric="tpr", value=t, subset=subset, perturbation=pert, n_fake=count)
            record(metric="fpr", value=f, subset=subset, perturbation=pert, n_real=count)
        mean, low = summary["psnr"][(name, label)]
        record.figures({"psnr_mean_db": mean, "psnr_min_db": low}, subset=subset, n_fake=count)
    record.figures({"false_positives": summary["fp"], "max_null_z": summary["max_null_z"]},
                   n_real=summary["negatives"])
    if n_generated:
        gen_table, by_model = run_generators(n_generated)
        table += "\n" + gen_table
        for model, rates in by_model.items():
            for pert, t in zip(perts, rates, strict=True):
                record(metric="tpr", value=t, subset=model, perturbation=pert, n_fake=n_generated)
        keyed_table, keyed = run_keyed(n_generated)
        table += "\n" + keyed_table
        for pert, t in keyed["tpr"].items():
            record(metric="tpr", value=t, subset="keyed", perturbation=pert, n_fake=keyed["n_marked"])
        record.figures({"false_positives": keyed["false_positives"], "max_null_z": keyed["max_null_z"]},
                       subset="keyed", n_real=keyed["n_null"])
    return Section("watermark", "Provenance watermark robustness", table)
