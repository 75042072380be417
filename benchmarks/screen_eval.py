"""Claim screening end to end: does ``medaudit screen`` name the right cause for each kind of fraud?

A claims CSV is built from held-out real chest X-rays and CT slices (``benchmarks.datasets.is_holdout``), four claims
of each kind, cycling:

* ``clean``: an untouched real file, filed once;
* ``original``: an untouched real file that the next claim files again (both claims should be flagged as reuse);
* ``reused``: the original's image filed again - mirrored, resized to 90 % and re-saved as JPEG 85;
* ``tampered``: a real file with a lesion removed or injected by ``generators.tamper`` (unstamped PNG);
* ``synthetic``: an unstamped sample of a bundled generator of that modality, enlarged to 512 px, JPEG 90 (pixels
  only: no labels, no watermark).

The CSV is screened locally and with ``--engine dask``; a claim counts as *flagged for the right cause* when it
reaches ``medium`` and its top reason comes from the analyzer family of its kind (reuse / localization / pixel
detectors); clean claims should stay ``low``.

    medaudit bench screen --data DIR --write-docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.datafiles import data_files
from benchmarks.evaluations import Recorder, Section, register_evaluation
from generators import tamper as T

FOLDERS = {"cxr_kermany": "cxr_gan", "ct_lung_tcia": "ct_gan"}
KINDS = ("clean", "original", "reused", "tampered", "synthetic")
EXPECTED = {"clean": "clean", "original": "reused", "reused": "reused", "tampered": "tampered",
            "synthetic": "synthetic"}
CAUSES = {"reuse": "reused", "localization": "tampered", "cnn": "synthetic", "frequency": "synthetic",
          "watermark": "synthetic", "metadata": "synthetic"}


def build_claims(data: Path, out: Path, per_kind: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """Write the images and return ``(claim_id, path, kind)`` rows."""
    from generators.api import load_generator

    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, str]] = []
    for folder, gen_name in FOLDERS.items():
        files = data_files(data, True, (folder,))
        rng.shuffle(files)
        samples = np.asarray(load_generator(gen_name).sample(per_kind, seed=seed))
        original = None
        for i in range(per_kind * len(KINDS)):
            kind, k = KINDS[i % len(KINDS)], i // len(KINDS)
            claim = f"{folder[:3]}-{i:03d}"
            src = files[i]
            if kind in ("clean", "original"):
                path, original = str(src), src
            elif kind == "reused":
                im = cv2.imread(str(original), cv2.IMREAD_GRAYSCALE)[:, ::-1]
                im = cv2.resize(im, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)
                path = str(out / f"{claim}.jpg")
                cv2.imwrite(path, im, [cv2.IMWRITE_JPEG_QUALITY, 85])
            elif kind == "tampered":
                g = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
                r = T.default_radius(g.shape) * float(rng.uniform(1.0, 1.6))
                at = T.random_body_point(g, r, rng)
                path = str(out / f"{claim}.png")
                T.tamper_file(src, path, "remove" if k % 2 else "inject", at, r, stamp=False, seed=i)
            else:
                x = samples[k][..., 0] if samples[k].ndim == 3 else samples[k]
                up = cv2.resize(np.asarray(x, np.float32), (512, 512), interpolation=cv2.INTER_CUBIC)
                path = str(out / f"{claim}.jpg")
                cv2.imwrite(path, np.clip(up * 255, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
            rows.append((claim, path, kind))
    return rows


def verdict(summary: dict) -> str:
    """``clean`` for a low claim, else the kind its top reason points to (``other`` when none matches)."""
    if summary["level"] in (None, "low"):
        return "clean"
    code = summary["reasons"][0].split("(", 1)[1].split(")", 1)[0] if summary["reasons"] else ""
    return CAUSES.get(code.split(".", 1)[0], "other")


def screen(rows, out: Path, engine: str) -> tuple[dict[str, str], float]:
    from forensics.scanner import ScanOptions
    from forensics.screening import screen_claims

    t0 = time.perf_counter()
    summaries, _ = screen_claims([(p, c) for c, p, _ in rows], out, ScanOptions(thumbnails=True), workers=2,
                                 engine=engine)
    return {s["claim_id"]: verdict(s) for s in summaries}, time.perf_counter() - t0


def render(rows, results: dict[str, tuple[dict[str, str], float]]) -> str:
    kinds = {c: k for c, _, k in rows}
    lines = [f"{len(rows)} claims: held-out chest X-ray and CT files, {len(rows) // (2 * len(KINDS))} of "
             "each kind per modality; reused = mirrored, 90 %, JPEG 85; tampered = generators.tamper, unstamped; "
             "synthetic = unstamped generator sample, 512 px JPEG 90.", "",
             "Cell: claims of that kind whose verdict (low -> clean; else the family of the top reason) is the column; "
             "*right*: share with the expected verdict (an original whose image another claim filed again is "
             "expected to be flagged as reuse too).", ""]
    for engine, (found, seconds) in results.items():
        lines += [f"**{engine}** ({seconds:.0f} s, 2 workers)", "",
                  "| kind | n | " + " | ".join(("clean", "reused", "tampered", "synthetic", "other")) + " | right |",
                  "|---|---|---|---|---|---|---|---|"]
        for kind in KINDS:
            got = [found[c] for c, k in kinds.items() if k == kind]
            counts = [sum(v == col for v in got) for col in ("clean", "reused", "tampered", "synthetic", "other")]
            lines.append(f"| {kind} | {len(got)} | " + " | ".join(map(str, counts))
                         + f" | {sum(v == EXPECTED[kind] for v in got) / max(1, len(got)):.2f} |")
        lines.append("")
    if len(results) == 2:
        a, b = (r[0] for r in results.values())
        lines.append(f"Local and dask verdicts identical for {sum(a[c] == b[c] for c in a)} of {len(a)} claims.")
    return "\n".join(lines) + "\n"


@register_evaluation("screen")
def evaluate_screen(record: Recorder, *, data: Path, per_kind: int = 4, engines: tuple[str, ...] = ("local", "dask"),
                    seed: int = 0) -> Section:
    """Screen a claims CSV of every kind on each engine; per engine and kind, the share flagged for the right cause.

    Args:
        data: folder with ``cxr_kermany/`` and ``ct_lung_tcia/``.
        per_kind: claims of each kind per modality.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = build_claims(Path(data), tmp, per_kind, seed)
        with open(tmp / "claims.csv", "w", newline="") as f:
            csv.writer(f).writerows([("claim_id", "path"), *((c, p) for c, p, _ in rows)])
        results = {e: screen(rows, tmp / e, e) for e in engines}
    kinds = {c: k for c, _, k in rows}
    for engine, (found, seconds) in results.items():
        for kind in KINDS:
            got = [found[c] for c, k in kinds.items() if k == kind]
            record(metric="right_cause", value=sum(v == EXPECTED[kind] for v in got) / max(1, len(got)),
                   subset=kind, perturbation=engine, n_real=len(got) if kind == "clean" else 0,
                   n_fake=0 if kind == "clean" else len(got))
        record(metric="seconds", value=seconds, perturbation=engine)
    return Section("screen", "Claim screening end to end", render(rows, results))
