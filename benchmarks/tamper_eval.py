"""How well the ``localization`` analyzer finds a lesion injected or removed by each ``generators.tamper`` method.

Per modality (chest CT ``ct_lung_tcia``, chest X-ray ``cxr_kermany``, brain MRI slices of ``mri_brain`` volumes,
mammography ``mammo``), ``-n`` held-out real scans (``benchmarks.datasets.is_holdout``: never used to train the
in-painter or the localizer; for MRI the volume's file name decides, slices with brain tissue drawn from them). Every
scan is cut to a native-resolution window of at most 512 x 512 px around the body (the working size; CT and MRI are
that size already; never resampled, which leaves traces copy-move takes for copied grain), then passes through one
format path, an unstamped PNG written by ``generators.provenance`` and read by
``forensics.io.load``, whichever class it ends in:

* positives: one tampered copy per registered tamper method that applies to the modality
  (``generators.tamper.tamper_methods(modality=...)``), at a random point inside the body (removals on mammograms
  at a labelled abnormality when the film has one), lesion radius ``default_radius`` x U(0.8, 1.6); paste methods
  take their lesion from another patient (mammography: a labelled abnormality of ``mammo/labels.csv``, origin
  bottom-left; other modalities: a point inside the body of a training-split scan);
* negatives: the untouched scan, and its shortcut controls, made from the real scan before the same PNG path (or,
  for ``jpeg``, instead of it): ``resized`` (Pillow Lanczos to 0.8x, not a kernel of the format path), ``jpeg``
  (re-encoded at quality 85), ``denoised`` (OpenCV non-local means).

Per localization method, modality and tamper method, and for seen (training) vs unseen (held-out) methods: image
ROC-AUC and TPR at 1 % FPR of tampered vs untouched scans; over tampered scans, pixel AUC of the heatmap against the
mask, IoU of heatmap >= 0.5 with the mask (0 when nothing is flagged) and "hit" (the hottest cell within one cell of
the lesion); per negative kind, the share whose finding alone reaches ``medium`` (fusion of local evidence).

    medaudit bench tamper --data DIR -n 8 --write-docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import csv
import functools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.datafiles import source_group
from benchmarks.datasets import is_holdout
from benchmarks.evaluations import Recorder, Section, register_evaluation
from benchmarks.metrics import tpr_at_fpr
from forensics.metrics import roc_auc

MODALITIES = ("ct", "xray", "mri", "mammo")
CONTROLS = ("resized", "jpeg", "denoised")
WORK_PX = 512  # longer side at most: the working size of every scan, both classes
_FOLDERS = {"ct": "ct_lung_tcia", "xray": "cxr_kermany", "mri": "mri_brain", "mammo": "mammo"}


@dataclass
class Scan:
    """One real scan at working size: display pixels in [0, 1], its bit depth and labelled lesions (x, y, r)."""

    modality: str
    name: str
    pixels: np.ndarray
    bits: int = 8
    lesions: list[tuple[float, float, float]] = field(default_factory=list)
    patient: str = ""  # patient or scan (benchmarks.datafiles.source_group): a paste never takes from the same one


# --- real scans --------------------------------------------------------------------------------------------------


def _work_size(pixels: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """A native-resolution window of at most WORK_PX x WORK_PX around the image's bright content (the body), and its
    top-left corner. Cropped, never resampled: resampling leaves traces that copy-move takes for copied grain."""
    h, w = pixels.shape
    ch, cw = min(h, WORK_PX), min(w, WORK_PX)
    ys, xs = np.nonzero(pixels > np.percentile(pixels, 50))
    cy, cx = (float(np.mean(ys)), float(np.mean(xs))) if ys.size else (h / 2, w / 2)
    y0 = int(np.clip(round(cy - ch / 2), 0, h - ch))
    x0 = int(np.clip(round(cx - cw / 2), 0, w - cw))
    return np.clip(pixels[y0 : y0 + ch, x0 : x0 + cw], 0, 1).astype(np.float32), (x0, y0)


def _mammo_labels(data: Path) -> dict[str, tuple[str, list[tuple[float, float, float]]]]:
    """Per film: the patient and the labelled abnormalities (x, y, r) with the origin at the top-left (labels.csv
    counts from the bottom-left of the 1024 px film)."""
    path = data / "mammo" / "labels.csv"
    out: dict[str, tuple[str, list[tuple[float, float, float]]]] = {}
    if not path.is_file():
        return out
    for row in csv.DictReader(path.open()):
        lesions = out.setdefault(row["file"], (row.get("patient") or row["file"], []))[1]
        xs, ys, rs = (row.get(k) or "" for k in ("x", "y", "radius"))
        for x, y, r in zip(xs.split(";"), ys.split(";"), rs.split(";"), strict=False):
            if x and y and r:
                lesions.append((float(x), 1024.0 - float(y), float(r)))
    return out


def _files(data: Path, modality: str, held_out: bool) -> list[Path]:
    folder = data / _FOLDERS[modality]
    suffixes = {"ct": (".png",), "xray": (".jpeg", ".jpg", ".png"), "mri": (".gz", ".nii"), "mammo": (".pgm",)}
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in suffixes[modality]) if folder.is_dir() else []
    return [p for p in files if is_holdout(p.name) == held_out]


def load_scans(data: Path, modality: str, n: int, rng: np.random.Generator, held_out: bool = True) -> list[Scan]:
    """``n`` real scans of ``modality`` from one side of the held-out split (MRI: slices spread over the volumes)."""
    files = _files(data, modality, held_out)
    rng.shuffle(files)
    if modality == "mri":
        return _mri_slices(files, n, rng)
    labels = _mammo_labels(data) if modality == "mammo" else {}
    out = []
    for p in files[:n]:
        raw = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
        if raw is None:
            continue
        pixels, (x0, y0) = _work_size(raw.astype(np.float32) / (255.0 if raw.dtype == np.uint8 else 65535.0))
        patient, lesions = labels.get(p.name, (source_group(p), []))
        h, w = pixels.shape
        inside = [(x - x0, y - y0, r) for x, y, r in lesions if 0 <= x - x0 < w and 0 <= y - y0 < h]
        out.append(Scan(modality, p.name, pixels, 8, inside, patient))
    return out


def _mri_slices(files: list[Path], n: int, rng: np.random.Generator) -> list[Scan]:
    """Axial slices as the detectors and generators see them (``forensics.io.training_sources``), a few per volume."""
    import nibabel as nib

    from forensics.io.training_sources import volume_slices

    out: list[Scan] = []
    per = max(1, -(-n // max(1, len(files))))
    for p in files:
        bits = 8 * nib.load(str(p)).get_data_dtype().itemsize
        slices = volume_slices(p)
        for k in rng.choice(len(slices), size=min(per, len(slices)), replace=False) if slices else []:
            out.append(Scan("mri", f"{p.name.split('.')[0]}_s{int(k):03d}", slices[k], bits, patient=source_group(p)))
    rng.shuffle(out)
    return out[:n]


# --- the format path and the controls ----------------------------------------------------------------------------


def _png(pixels: np.ndarray, bits: int, name: str):
    from forensics.io import load
    from generators import provenance

    q = np.round(np.clip(pixels, 0, 1) * (255 if bits == 8 else 65535)).astype(np.uint8 if bits == 8 else np.uint16)
    return load(f"{name}.png", data=provenance.png_bytes(q, None, bits=bits))


def negatives(scan: Scan) -> dict[str, Any]:
    """The untouched scan and its shortcut controls, each as ``forensics.io.load`` reads the file."""
    from PIL import Image

    from forensics.io import load

    p = scan.pixels
    u8 = np.round(p * 255).astype(np.uint8)
    h, w = p.shape
    small = Image.fromarray(p, mode="F").resize((max(8, round(w * 0.8)), max(8, round(h * 0.8))),
                                               Image.Resampling.LANCZOS)
    ok, jpeg = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    denoised = cv2.fastNlMeansDenoising(u8, None, h=4, templateWindowSize=7, searchWindowSize=15)
    return {
        "untouched": _png(p, scan.bits, scan.name),
        "resized": _png(np.asarray(small, dtype=np.float32), scan.bits, scan.name + ".resized"),
        "jpeg": load(f"{scan.name}.jpg", data=jpeg.tobytes()),
        "denoised": _png(denoised.astype(np.float32) / 255, 8, scan.name + ".denoised"),
    }


def tampered(scan: Scan, method: str, donor: tuple[np.ndarray, tuple[float, float], float] | None,
             rng: np.random.Generator, seed: int) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """One tampered copy of ``scan`` through the same PNG path: (loaded image, mask, tamper info)."""
    from forensics.io import load
    from forensics.records import MedicalImage
    from generators.tamper import default_radius, random_body_point, tamper_bytes, tamper_method

    m = tamper_method(method)
    img = MedicalImage(pixels=scan.pixels, path=f"{scan.name}.png", sha256="", format="png", bit_depth=scan.bits)
    r = default_radius(scan.pixels.shape) * float(rng.uniform(0.8, 1.6))
    if m.kind == "remove" and scan.lesions:
        x, y, lr = scan.lesions[int(rng.integers(len(scan.lesions)))]
        at, r = (int(np.clip(x, 0, scan.pixels.shape[1] - 1)), int(np.clip(y, 0, scan.pixels.shape[0] - 1))), \
            float(np.clip(lr, 3, min(scan.pixels.shape) / 8))
    else:
        at = random_body_point(scan.pixels, r, rng)
    paste = {}
    if m.needs_donor and donor is not None:
        paste = {"donor": donor[0], "donor_at": donor[1], "donor_radius": donor[2]}
    data, info, mask = tamper_bytes(img, "png", method, at, r, stamp=False, seed=seed, modality=scan.modality,
                                    **paste)
    return load(f"{scan.name}.{method}.png", data=data), mask, info


def _donor(donors: list[Scan], scan: Scan, rng: np.random.Generator
           ) -> tuple[np.ndarray, tuple[float, float], float]:
    """A lesion of another patient: a labelled one (mammography) or a point inside the body of a training scan."""
    from generators.tamper import default_radius, random_body_point

    others = [d for d in donors if d.patient != scan.patient] or donors
    d = others[int(rng.integers(len(others)))]
    if d.lesions:
        x, y, r = d.lesions[int(rng.integers(len(d.lesions)))]
        return d.pixels, (float(np.clip(x, 0, d.pixels.shape[1] - 1)), float(np.clip(y, 0, d.pixels.shape[0] - 1))), \
            float(np.clip(r, 3, min(d.pixels.shape) / 8))
    r = float(default_radius(d.pixels.shape))
    return d.pixels, random_body_point(d.pixels, r, rng), r


# --- scoring -----------------------------------------------------------------------------------------------------


def _pixel_stats(heat: np.ndarray | None, mask: np.ndarray) -> dict[str, Any]:
    h, w = mask.shape
    if heat is None or heat.size == 0:
        return {"iou": 0.0, "hit": 0.0, "up": np.zeros(mask.shape, np.float32)}
    up = cv2.resize(heat.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    pred = up >= 0.5
    inter, union = np.logical_and(pred, mask).sum(), np.logical_or(pred, mask).sum()
    cell = int(np.ceil(max(h / heat.shape[0], w / heat.shape[1])))
    near = cv2.dilate(mask.astype(np.uint8), np.ones((2 * cell + 1, 2 * cell + 1), np.uint8)) > 0
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    cy, cx = int((py + 0.5) * h / heat.shape[0]), int((px + 0.5) * w / heat.shape[1])
    return {"iou": float(inter / union) if union else 0.0, "hit": float(near[min(cy, h - 1), min(cx, w - 1)]),
            "up": up}


@functools.cache
def _fusion_config():
    from forensics.fusion import FusionConfig

    return FusionConfig.for_weights()


def _level(finding) -> str:
    """The level the finding alone gives (local evidence is bounded: at most ``medium``)."""
    from forensics.fusion import explain, level_of

    config = _fusion_config()
    return level_of(explain([finding], config).risk, config)


def evaluate(
    data: Path, n: int, seed: int = 0, methods: tuple[str, ...] | None = None, weights_dir: Path | None = None,
    modalities: tuple[str, ...] = MODALITIES, tamper: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Score every positive and negative with each localization method; the rows and pooled pixel samples."""
    from forensics.analyzers.localization import LocalizationAnalyzer
    from generators.tamper import tamper_method, tamper_methods

    rng = np.random.default_rng(seed)
    methods = methods or tuple(LocalizationAnalyzer.METHODS)
    analyzers = {m: LocalizationAnalyzer(weights_dir, method=m, max_cells=96) for m in methods}
    root = str(Path(__file__).resolve().parents[1]) + "/"  # the messages name weights by path: keep it relative
    skipped = {m: a.availability()[1].replace(root, "") for m, a in analyzers.items() if not a.availability()[0]}
    analyzers = {m: a for m, a in analyzers.items() if m not in skipped}
    rows: list[dict[str, Any]] = []
    pix: dict[tuple[str, str, str], dict[str, list]] = {}
    t0 = time.time()
    for modality in modalities:
        scans = load_scans(data, modality, n, rng)
        donors = load_scans(data, modality, max(4, n), rng, held_out=False) or scans
        if modality == "mammo":
            donors = [d for d in donors if d.lesions] or donors
        kinds = [t for t in (tamper or tamper_methods(modality=modality)) if modality in tamper_method(t).modalities]
        # tqdm: -q silences it (TQDM_DISABLE), like every bench
        for k, scan in enumerate(tqdm(scans, desc=f"tamper {modality}", file=sys.stderr, leave=False)):
            for neg, img in negatives(scan).items():
                for m, a in analyzers.items():
                    f = a.analyze(img)
                    rows.append({"detector": m, "modality": modality, "scan": scan.name, "kind": neg,
                                 "score": float(f.score or 0.0), "level": _level(f)})
            for j, t in enumerate(kinds):
                donor = _donor(donors, scan, rng) if tamper_method(t).needs_donor else None
                fake, mask, info = tampered(scan, t, donor, rng, seed=seed + 1000 * k + j)
                ys, xs = np.nonzero(mask)
                oy, ox = rng.integers(0, mask.shape[0], 4 * ys.size), rng.integers(0, mask.shape[1], 4 * ys.size)
                yy, xx = np.r_[ys, oy], np.r_[xs, ox]
                for m, a in analyzers.items():
                    f = a.analyze(fake)
                    st = _pixel_stats(f.heatmap, mask)
                    bucket = pix.setdefault((m, modality, t), {"y": [], "s": []})
                    bucket["y"].append(mask[yy, xx])
                    bucket["s"].append(st["up"][yy, xx])
                    rows.append({"detector": m, "modality": modality, "scan": scan.name, "kind": "tampered",
                                 "tamper": t, "held_out": bool(info["held_out"]), "score": float(f.score or 0.0),
                                 "level": _level(f), "iou": st["iou"], "hit": st["hit"]})
    return {"rows": rows, "pix": pix, "seconds": round(time.time() - t0, 1), "n": n,
            "detectors": list(analyzers), "skipped": skipped}


def _image_figures(pos: list[dict], neg: list[dict]) -> dict[str, float]:
    p = np.array([r["score"] for r in pos], float)
    q = np.array([r["score"] for r in neg], float)
    if not p.size or not q.size:
        return {"auc": float("nan"), "tpr@1%": float("nan")}
    y, s = np.r_[np.zeros(q.size), np.ones(p.size)], np.r_[q, p]
    return {"auc": roc_auc(y, s), "tpr@1%": tpr_at_fpr(y, s, 0.01)}


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """Figures per (detector, modality, tamper method), per (detector, seen/unseen, kind) and per negative kind."""
    from generators.tamper import tamper_method

    rows, pix = res["rows"], res["pix"]
    out: dict[str, Any] = {"methods": [], "groups": [], "negatives": []}
    for d in res["detectors"]:
        R = [r for r in rows if r["detector"] == d]
        for modality in MODALITIES:
            M = [r for r in R if r["modality"] == modality]
            untouched = [r for r in M if r["kind"] == "untouched"]
            for t in dict.fromkeys(r["tamper"] for r in M if r["kind"] == "tampered"):
                P = [r for r in M if r.get("tamper") == t]
                b = pix[(d, modality, t)]
                y, s = np.concatenate(b["y"]).astype(int), np.concatenate(b["s"])
                out["methods"].append({
                    "detector": d, "modality": modality, "tamper": t, "held_out": P[0]["held_out"], "n": len(P),
                    **_image_figures(P, untouched), "pixel_auc": roc_auc(y, s),
                    "iou": float(np.mean([r["iou"] for r in P])), "hit": float(np.mean([r["hit"] for r in P])),
                })
            for kind in ("untouched", *CONTROLS):
                K = [r for r in M if r["kind"] == kind]
                if K:
                    out["negatives"].append({"detector": d, "modality": modality, "kind": kind, "n": len(K),
                                             "medium": float(np.mean([r["level"] != "low" for r in K]))})
        for held_out in (False, True):
            for kind in ("inject", "remove"):
                P = [r for r in R if r["kind"] == "tampered" and r["held_out"] == held_out
                     and tamper_method(r["tamper"]).kind == kind]
                if not P:
                    continue
                # each tampered scan against the untouched scans of its own modality, pooled as one ranking
                untouched = [r for r in R if r["kind"] == "untouched" and r["modality"] in {p["modality"] for p in P}]
                keys = [k for k in pix if k[0] == d and tamper_method(k[2]).held_out == held_out
                        and tamper_method(k[2]).kind == kind]
                y = np.concatenate([np.concatenate(pix[k]["y"]) for k in keys]).astype(int)
                s = np.concatenate([np.concatenate(pix[k]["s"]) for k in keys])
                out["groups"].append({
                    "detector": d, "seen": not held_out, "kind": kind, "n": len(P), **_image_figures(P, untouched),
                    "pixel_auc": roc_auc(y, s), "iou": float(np.mean([r["iou"] for r in P])),
                    "hit": float(np.mean([r["hit"] for r in P])),
                })
    return out


def _f(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def render(res: dict[str, Any], summary: dict[str, Any]) -> str:
    from generators.tamper import tamper_method

    lines = [
        f"Per modality {res['n']} held-out real scans (a native-resolution window of at most {WORK_PX} x {WORK_PX} px "
        "around the body), one tampered copy per tamper "
        "method that applies to the modality; all through one unstamped PNG path. Negatives: the untouched scans "
        "(image AUC and TPR at 1 % FPR are against these, per modality) and their shortcut controls. Pixel level "
        "over tampered scans: pixel AUC of the heatmap against the mask, IoU of heatmap >= 0.5, hit = hottest cell "
        f"within one cell of the lesion. {res['seconds']:.0f} s.",
        "",
        "**Seen (training) vs unseen (held-out) tamper methods, all modalities pooled**",
        "",
        "| localizer | methods | kind | n | image AUC | TPR@1%FPR | pixel AUC | IoU | hit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:
        lines.append(f"| {g['detector']} | {'seen' if g['seen'] else 'unseen'} | {g['kind']} | {g['n']} | "
                     f"{_f(g['auc'])} | {_f(g['tpr@1%'])} | {_f(g['pixel_auc'])} | {_f(g['iou'])} | {_f(g['hit'])} |")
    lines += ["", "**Untouched scans and their shortcut controls: share whose finding alone reaches `medium`**", "",
              "| localizer | modality | " + " | ".join(("untouched", *CONTROLS)) + " |",
              "|---|---|" + "---|" * (1 + len(CONTROLS))]
    for d in res["detectors"]:
        for modality in MODALITIES:
            cells = {r["kind"]: r for r in summary["negatives"] if r["detector"] == d and r["modality"] == modality}
            if cells:
                lines.append(f"| {d} | {modality} | " + " | ".join(
                    f"{cells[k]['medium']:.0%} ({cells[k]['n']})" if k in cells else "n/a"
                    for k in ("untouched", *CONTROLS)) + " |")
    detectors = res["detectors"]
    lines += ["", "**Per tamper method and modality** (each cell: image AUC / TPR@1%FPR / pixel AUC / IoU / hit)", "",
              "| modality | tamper method | kind | seen | n | " + " | ".join(detectors) + " |",
              "|---|---|---|---|---|" + "---|" * len(detectors)]
    by_key: dict[tuple[str, str], dict[str, dict]] = {}
    for r in summary["methods"]:
        by_key.setdefault((r["modality"], r["tamper"]), {})[r["detector"]] = r
    for (modality, t), cells in by_key.items():
        first = next(iter(cells.values()))
        lines.append(f"| {modality} | {t} | {tamper_method(t).kind} | {'no' if first['held_out'] else 'yes'} | "
                     f"{first['n']} | " + " | ".join(
                         " / ".join(_f(cells[d][k]).replace("0.", ".", 1) if d in cells else "n/a"
                                    for k in ("auc", "tpr@1%", "pixel_auc", "iou", "hit")) for d in detectors) + " |")
    lines += [
        "",
        "`copymove` looks for grain copied within the image; `cnn` was trained on crops tampered by the training "
        "methods (training-split chest CT / CXR only); `noise` is training-free. In `scan` and `screen` the "
        "localizer abstains on MRI and mammography (modality gate); here it is run on them to measure it.",
        "",
    ]
    lines += [f"Not measured: `{m}` ({why})." for m, why in res.get("skipped", {}).items()] + [""]
    return "\n".join(lines)


@register_evaluation("tamper")
def evaluate_tamper(record: Recorder, *, data: Path, n: int = 8, seed: int = 0,
                    methods: tuple[str, ...] | None = None, threads: int = 1, weights: Path | None = None) -> Section:
    """Image- and pixel-level figures of each localization method per tamper method and modality.

    Args:
        data: folder with ``ct_lung_tcia/``, ``cxr_kermany/``, ``mri_brain/`` and ``mammo/`` (any of them).
        n: held-out real scans per modality; each gets one tampered copy per applicable tamper method.
        weights: localization weights folder (default: the bundled one).
    """
    import torch

    torch.set_num_threads(threads)
    res = evaluate(Path(data), n, seed, tuple(methods) if methods else None, weights)
    summary = summarize(res)
    for r in summary["methods"]:
        counts = {"detector": f"localization.{r['detector']}", "subset": f"{r['modality']}:{r['tamper']}",
                  "n_fake": r["n"]}
        record(metric="auc", value=r["auc"], **counts)
        record.figures({k: r[k] for k in ("tpr@1%", "pixel_auc", "iou", "hit")}, **counts)
    for g in summary["groups"]:
        counts = {"detector": f"localization.{g['detector']}",
                  "subset": f"{'seen' if g['seen'] else 'unseen'}:{g['kind']}", "n_fake": g["n"]}
        record(metric="auc", value=g["auc"], **counts)
        record.figures({k: g[k] for k in ("tpr@1%", "pixel_auc", "iou", "hit")}, **counts)
    for r in summary["negatives"]:
        record.figures({"medium": r["medium"]}, detector=f"localization.{r['detector']}",
                       subset=f"{r['modality']}:{r['kind']}", n_real=r["n"])
    return Section("tamper", "Tamper localization", render(res, summary))


