"""Recall and false-match rate of the image-reuse index (``forensics.reuse``) on real images, per modality.

Each data folder is split in two halves by a fixed shuffle. The *calibration* half chooses the thresholds: the
largest pHash distance and the smallest keypoint-inlier count whose false-match rate over all pairs of different
images stays <= 0.05 % each (<= 0.1 % together). The *report* half is filed in a fresh index (one claim per image)
and measured with those thresholds, never tuned on: recall per transform (original filed, transformed copy
queried) and the false-match rate over all pairs of different images (every image queried against all others).

    medaudit bench reuse --data DIR --write-docs docs/BENCHMARKS.md
    medaudit bench reuse --data DIR --write-thresholds   # recalibrate forensics/reuse/thresholds.json
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.evaluations import Recorder, Section, register_evaluation
from forensics.atomic import write_text
from forensics.io import load
from forensics.reuse import hashing as H
from forensics.reuse.index import THRESHOLDS_FILE, ReuseIndex

# folder -> modality codes its thresholds are stored under (the first one is the folder's own)
DATASETS = {"cxr_kermany": ("CR", "DX"), "ct_lung_tcia": ("CT",), "derm_isic": ("XC",)}
_EXTS = {".png", ".jpg", ".jpeg"}
FMR_EACH = 0.0005  # per stage; the two stages together stay <= 0.1 %
LOOSE, CANDIDATES, MIN_INLIERS = 20, 10, 20


def _jpeg(x: np.ndarray, quality: int = 70) -> np.ndarray:
    u = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u[:, :, ::-1] if u.ndim == 3 else u, [cv2.IMWRITE_JPEG_QUALITY, quality])
    d = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return (d[:, :, ::-1] if d.ndim == 3 else d).astype(np.float32) / 255.0


def _crop(frac: float, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Remove ``frac`` of the height and of the width, split at random between the two sides."""

    def f(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        top, left = int(rng.uniform(0, frac) * h), int(rng.uniform(0, frac) * w)
        return x[top : top + round((1 - frac) * h), left : left + round((1 - frac) * w)]

    return f


def transforms(rng: np.random.Generator) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    c10, c15, c20 = _crop(0.10, rng), _crop(0.15, rng), _crop(0.20, rng)
    half = lambda x: cv2.resize(x, (max(8, x.shape[1] // 2), max(8, x.shape[0] // 2)), interpolation=cv2.INTER_AREA)  # noqa: E731
    return {
        "jpeg q70": _jpeg,
        "resize 0.5x": half,
        "gamma 0.6": lambda x: np.power(x, 0.6),
        "contrast 1.4x": lambda x: np.clip((x - 0.5) * 1.4 + 0.5, 0, 1),
        "hflip": lambda x: x[:, ::-1],
        "rot90": lambda x: np.rot90(x),
        "crop 10%": c10,
        "crop 20%": c20,
        "hflip+crop 10%+jpeg": lambda x: _jpeg(c10(x[:, ::-1])),
        "rot90+resize+gamma+crop 15%": lambda x: np.power(c15(half(np.rot90(x))), 0.8),
        "crop 20%+jpeg q70": lambda x: _jpeg(c20(x)),
    }


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTS)


def _undo(x: np.ndarray, t: int) -> np.ndarray:
    return H.undo_transform(x, t)


def calibrate(pixels: list[np.ndarray]) -> dict[str, int]:
    """Thresholds from pairs of different images only (no positives are used)."""
    stored = np.stack([H.to_u64(H.stored_hashes(p)) for p in pixels])
    feats = [H.keypoints(p) for p in pixels]
    n = len(pixels)
    pairs = n * (n - 1)  # ordered pairs: each image queried against every other
    dists, inliers = [], []
    for i, p in enumerate(pixels):
        q = H.to_u64(H.query_hashes(p))
        d, t, _w = H.best_matches(q, stored)
        d[i] = 10_000
        dists.append(np.delete(d, i))
        qf: dict[int, tuple] = {}
        for j in np.argsort(d, kind="stable")[:CANDIDATES]:
            if d[j] > LOOSE:
                break
            tj = int(t[j])
            if tj not in qf:
                qf[tj] = H.keypoints(_undo(p, tj))
            inliers.append(H.ransac_inliers(qf[tj], feats[j]))
    dist = np.concatenate(dists)
    allowed = int(FMR_EACH * pairs)  # false matches allowed per stage
    hash_t = 0
    for t in range(0, 33):
        if int((dist <= t).sum()) <= allowed:
            hash_t = t
    inl = np.sort(np.array(inliers or [0]))[::-1]
    # smallest count with at most `allowed` impostor pairs at or above it, plus a safety margin of 25 %
    inl_t = int(inl[allowed]) + 1 if allowed < len(inl) else 1
    inl_t = max(MIN_INLIERS, int(np.ceil(inl_t * 1.25)))
    return {
        "hash": hash_t,
        "loose": LOOSE,
        "candidates": CANDIDATES,
        "inliers": inl_t,
        "calibration": {
            "images": n,
            "pairs": pairs,
            "min_impostor_distance": int(dist.min()),
            "impostor_distance_p0.1": float(np.percentile(dist, 0.1)),
            "max_impostor_inliers": int(inl.max()),
        },
    }


def evaluate(pixels: list[np.ndarray], limits: dict, modality: str, n_pos: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        index = ReuseIndex(Path(tmp) / "eval.db", thresholds={modality: limits})
        t0 = time.perf_counter()
        for start in range(0, len(pixels), 64):
            list(index.add_many(pixels[start : start + 64], claim_id="", modality=modality))
        # one claim per image: the report split is filed, each image under its own claim
        index.conn.execute("UPDATE images SET claim_id = CAST(id AS TEXT)")
        add_s = time.perf_counter() - t0
        ids = [r[0] for r in index.conn.execute("SELECT id FROM images ORDER BY id")]

        # false matches: every filed image queried against all the others
        false, t0 = 0, time.perf_counter()
        for image_id, p in zip(ids, pixels, strict=True):
            found = index.query(p, exclude_claim=str(image_id), limit=len(pixels), modality=modality)
            false += sum(m.method in ("phash", "orb") for m in found)  # exact hits would be true duplicates
        query_s = (time.perf_counter() - t0) / len(pixels)
        pairs = len(pixels) * (len(pixels) - 1)

        recall: dict[str, tuple[int, int]] = {}
        for name, fn in transforms(rng).items():
            hits = 0
            sample = rng.choice(len(pixels), size=min(n_pos, len(pixels)), replace=False)
            for k in sample:
                q = np.ascontiguousarray(fn(pixels[k])).astype(np.float32)
                found = index.query(q, limit=1, modality=modality)
                hits += bool(found) and found[0].claim_id == str(ids[k])
            recall[name] = (hits, len(sample))
        index.close()
    return {
        "false": false,
        "pairs": pairs,
        "recall": recall,
        "add_per_s": len(pixels) / add_s,
        "query_per_s": 1.0 / query_s,
        "n": len(pixels),
    }


def measure(data: Path, n_pos: int, limit: int = 0, seed: int = 0) -> tuple[dict[str, dict], dict[str, dict]]:
    """(results per folder, thresholds per modality code incl. ``default``) for the folders found under ``data``."""
    cv2.setNumThreads(1)
    thresholds: dict[str, dict] = {}
    results: dict[str, dict] = {}
    for folder, codes in DATASETS.items():
        path = data / folder
        if not path.is_dir():
            print(f"skip {folder}: not found under {data}", file=sys.stderr)
            continue
        files = _files(path)
        rng = np.random.default_rng(seed)
        rng.shuffle(files)
        if limit:
            files = files[:limit]
        pixels = [load(f).pixels for f in files]
        calib, report = pixels[: len(pixels) // 2], pixels[len(pixels) // 2 :]
        t0 = time.perf_counter()
        limits = calibrate(calib)
        print(f"{folder}: calibrated on {len(calib)} in {time.perf_counter() - t0:.0f} s: {limits}", file=sys.stderr)
        for code in codes:
            thresholds[code] = limits
        t0 = time.perf_counter()
        results[folder] = evaluate(report, {k: v for k, v in limits.items() if k != "calibration"}, codes[0], n_pos,
                                   seed)
        print(f"{folder}: evaluated {len(report)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    if thresholds:
        # unknown modality (most PNG/JPEG claim files): the radiograph thresholds when calibrated, else the
        # strictest. CT is left out: its impostor pairs include adjacent slices of one series (distance 0).
        base = [thresholds["CR"]] if "CR" in thresholds else list(thresholds.values())
        thresholds["default"] = {
            "hash": min(v["hash"] for v in base),
            "loose": LOOSE,
            "candidates": CANDIDATES,
            "inliers": max(v["inliers"] for v in base),
        }
    return results, thresholds


def save_thresholds(thresholds: dict[str, dict], command: str) -> None:
    """Replace the shipped ``forensics/reuse/thresholds.json`` (atomically) with freshly calibrated thresholds."""
    doc = {
        "about": "pHash distance (of 64) and ORB+RANSAC inlier thresholds per modality, chosen by "
        "benchmarks/reuse_eval.py for <= 0.05 % false matches per stage on the calibration half; "
        "'default' (unknown modality, e.g. PNG/JPEG files) is the radiograph (CR) entry.",
        "command": command,
        "modalities": thresholds,
    }
    write_text(THRESHOLDS_FILE, json.dumps(doc, indent=2) + "\n")


@register_evaluation("reuse")
def evaluate_reuse(record: Recorder, *, data: Path, n_pos: int = 40, limit: int = 0, seed: int = 0,
                   write_thresholds: bool = False) -> Section:
    """Recall per transform and false-match rate per data folder; ``write_thresholds`` also ships the thresholds.

    Args:
        data: folder with ``cxr_kermany/``, ``ct_lung_tcia/``, ``derm_isic/`` (any of them).
        n_pos: transformed copies per transform and folder.
        limit: images per folder (0: all).
    """
    results, thresholds = measure(Path(data), n_pos, limit, seed)
    for folder, r in results.items():
        for name, (hits, n) in r["recall"].items():
            record(metric="recall", value=hits / n, subset=folder, perturbation=name, n_fake=n)
        record(metric="false_match_rate", value=r["false"] / r["pairs"], subset=folder, n_real=r["pairs"])
        limits = thresholds[DATASETS[folder][0]]
        record.figures({"add_per_s": r["add_per_s"], "query_per_s": r["query_per_s"],
                        "hash_threshold": limits["hash"], "inlier_threshold": limits["inliers"]},
                       subset=folder, n_real=r["n"])
    if write_thresholds and thresholds:
        save_thresholds(thresholds, shlex.join(["medaudit", *sys.argv[1:]]))
    return Section("reuse", "Image-reuse index", render(results, thresholds, n_pos=n_pos, limit=limit, seed=seed))


def render(results: dict, thresholds: dict, *, n_pos: int, limit: int = 0, seed: int = 0) -> str:
    names = list(transforms(np.random.default_rng(0)))
    lines = [
        "# Image-reuse index: recall and false matches",
        "",
        f"{n_pos} transformed copies per transform and folder{f', {limit} images per folder' if limit else ''} "
        f"(seed {seed}). Thresholds chosen on one half "
        "of each folder (pairs of different images only), everything below measured on the other half.",
        "Recall: original filed, transformed copy queried, top match must be the original. False-match rate: every "
        "filed image queried against all other filed images of the same folder (ordered pairs).",
        "",
        "| transform | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in names:
        cells = []
        for r in results.values():
            hits, n = r["recall"][name]
            cells.append(f"{hits / n:.0%} ({hits}/{n})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **false-match rate (pairs)** | "
        + " | ".join(f"{r['false'] / r['pairs']:.4%} ({r['false']}/{r['pairs']})" for r in results.values())
        + " |"
    )
    lines.append(
        "| thresholds: pHash ≤ / ORB inliers ≥ | "
        + " | ".join(
            f"{thresholds[DATASETS[f][0]]['hash']}/64 / {thresholds[DATASETS[f][0]]['inliers']}" for f in results
        )
        + " |"
    )
    lines.append(
        "| calibration: min impostor distance / max impostor inliers | "
        + " | ".join(
            f"{thresholds[DATASETS[f][0]]['calibration']['min_impostor_distance']} / "
            f"{thresholds[DATASETS[f][0]]['calibration']['max_impostor_inliers']}"
            for f in results
        )
        + " |"
    )
    lines.append("| images filed (report half) | " + " | ".join(str(r["n"]) for r in results.values()) + " |")
    lines.append("| add, images/s (1 core) | " + " | ".join(f"{r['add_per_s']:.0f}" for r in results.values()) + " |")
    lines.append(
        "| query, images/s (1 core) | " + " | ".join(f"{r['query_per_s']:.1f}" for r in results.values()) + " |"
    )
    lines.append("")
    return "\n".join(lines)
