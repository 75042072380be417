"""Third-party generators and resampling controls, scored exactly as ``medaudit scan`` scores (issue 13, items 2, 5).

    medaudit bench third-party --external DIR --data DIR [--weights DIR] --write-docs docs/BENCHMARKS.md
    medaudit bench resampling --data DIR [--weights DIR]            (the control table alone)

``third_party``: every image of the external validation folder (:mod:`benchmarks.external`: verified against its
manifest, normalized the same way for both classes) is scored by ``Scanner.score`` - every default analyzer of a
scan, the pixel detectors of ``--weights`` (default: the shipped ones) and the fusion fitted beside them. Per
synthetic set against each real counterpart: AUC and TPR at 1% FPR of the fused risk; per set: the share reaching
``medium`` and ``high`` and the share *not assessed* (level ``unscored``, or every pixel analyzer abstained). Sets of
a modality the detectors were not trained on (OCT, MRI, fundus, breast MRI) should be 100% not assessed: a score
there is reported, never read as "low risk". Intervals: 95% bootstrap (stratified by class for AUC and TPR).

``resampling_controls`` (also part of ``third_party``, so its table sits beside every third-party figure): held-out
real images of the data folder (files the detectors never trained on: ``benchmarks.datafiles.is_heldout``),
normalized like the external sets, then put through each kernel x scale of :mod:`benchmarks.resampling` (saved as
8-bit PNG) and through JPEG re-encodes at quality 50-95 (saved as JPEG): the share reaching ``medium`` per cell.

Nothing here trains or tunes on anything: the external folder is for measuring only.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import metrics as M
from benchmarks.detectors import risk_or_zero
from benchmarks.evaluations import Recorder, Section, register_evaluation

FLAGGED = ("medium", "high")
#: Issue 13's targets, checked in the summary lines.
TARGET_AUC, TARGET_CAUGHT, TARGET_REAL_FLAGGED = 0.95, 0.80, 0.02


@dataclass(frozen=True)
class Verdict:
    """What a scan said about one image."""

    risk: float
    level: str
    assessed: bool  # some pixel analyzer gave a score (and the level is not "unscored")


def make_scanner(weights: Path | None):
    """The scanner of ``medaudit scan [--weights DIR]``: every default analyzer, the fusion fitted beside the
    weights. Raises SystemExit when no pixel analyzer can run (nothing would be measured)."""
    from forensics.fusion import FusionConfig
    from forensics.scanner import Scanner, ScanOptions

    w = None if weights is None else str(weights)
    scanner = Scanner(ScanOptions(fusion=FusionConfig.for_weights(w), weights_dir=w))
    if not any(a.kind == "pixel" for a in scanner.analyzers):
        why = "; ".join(f"{k}: {v}" for k, v in scanner.skipped.items())
        raise SystemExit(f"no pixel analyzer could load from {w or 'the bundled weights'} ({why})")
    return scanner


def weights_hash(scanner) -> str:
    parts = [f"{a.name}:{k}={v}" for a in scanner.analyzers for k, v in sorted(a.model_hashes().items())]
    parts.append(repr(scanner.options.fusion.to_dict()))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def score_file(scanner, data: bytes) -> Verdict:
    """Load ``data`` as a scan loads a file (under a neutral name: no file name reaches a detector) and score it."""
    from forensics.io import load

    result = scanner.score(load("image", data=data))
    pixel = [f for f in result.findings if f.kind == "pixel"]
    assessed = result.level != "unscored" and any(f.score is not None for f in pixel)
    return Verdict(risk_or_zero(result), str(result.level), assessed)  # unscored: also reported as not assessed


def _bar(items: Sequence[Any], desc: str, progress: bool):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


# Scoring runs in worker processes (torch with one thread each: on a shared machine two torch threads per process
# were 30x slower than one). Each process builds its scanner once.
_scanner: Any = None


def _init(weights: Path | None, parent: int | None) -> None:
    global _scanner
    import torch

    if parent is not None:
        from forensics.scanner import die_with_parent

        die_with_parent(parent)
    torch.set_num_threads(1)
    _scanner = make_scanner(weights)


def _score_files(files: list[bytes]) -> list[Verdict]:
    return [score_file(_scanner, d) for d in files]


def _score_controls(x: np.ndarray) -> list[Verdict]:
    """One real image through every control variant, in :func:`control_variants` order."""
    return [score_file(_scanner, fn(x)) for _row, _col, fn in control_variants().values()]


def parallel_map(fn, items: Sequence[Any], weights: Path | None, workers: int, desc: str, progress: bool) -> list:
    """``[fn(item) for item in items]`` with a scanner of ``weights`` in each of ``workers`` processes (order kept)."""
    import multiprocessing as mp
    import os

    if workers <= 1 or len(items) < 2:
        _init(weights, None)
        return [fn(it) for it in _bar(items, desc, progress)]
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(weights, os.getpid())) as pool:
        results = pool.map(fn, items)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(items), desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
        return list(results)


# ---------------------------------------------------------------------------------------------- figures
def _share(flags: Sequence[bool], n_boot: int, seed: int) -> M.Estimate:
    return M.flag_rate_ci(np.asarray(flags, dtype=np.float64), 0.5, n_boot=n_boot, seed=seed)


def set_figures(verdicts: Sequence[Verdict], n_boot: int, seed: int) -> dict[str, M.Estimate]:
    """share at ``medium`` or above, at ``high``, and not assessed, each with a bootstrap interval."""
    return {
        "share_medium": _share([v.level in FLAGGED for v in verdicts], n_boot, seed),
        "share_high": _share([v.level == "high" for v in verdicts], n_boot, seed),
        "not_assessed": _share([not v.assessed for v in verdicts], n_boot, seed),
    }


def pair_figures(fake: Sequence[Verdict], real: Sequence[Verdict], n_boot: int, seed: int) -> dict[str, M.Estimate]:
    """AUC and TPR at 1% FPR of the fused risk, fakes against reals."""
    y = np.r_[np.ones(len(fake)), np.zeros(len(real))].astype(int)
    s = np.asarray([v.risk for v in fake] + [v.risk for v in real], dtype=np.float64)
    est = M.bootstrap(y, s, n_boot=n_boot, seed=seed, metrics=("auc", "tpr@1%fpr"))
    return {"auc": est["auc"], "tpr@1%fpr": est["tpr@1%fpr"]}


def _pct(e: M.Estimate | None, ci: bool = True) -> str:
    if e is None or math.isnan(e.value):
        return "–"
    if not ci or math.isnan(e.lo):
        return f"{100 * e.value:.0f}%"
    return f"{100 * e.value:.0f}% [{100 * e.lo:.0f}, {100 * e.hi:.0f}]"


def _num(e: M.Estimate | None) -> str:
    if e is None or math.isnan(e.value):
        return "–"
    if math.isnan(e.lo):
        return f"{e.value:.2f}"
    return f"{e.value:.2f} [{e.lo:.2f}, {e.hi:.2f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


# ---------------------------------------------------------------------------------------------- external sets
def measure_external(external: Path, record: Recorder, *, weights: Path | None, workers: int, n_boot: int, seed: int,
                     progress: bool, whash: str) -> dict[str, Any]:
    """Score every external image; record per-set and per-pair figures; return what the section shows."""
    from benchmarks.external import load_external, pair_name

    ext = load_external(external, progress=progress)
    chunks = [[im.png for im in ext.images[i : i + 16]] for i in range(0, len(ext.images), 16)]
    flat = [v for c in parallel_map(_score_files, chunks, weights, workers, "third-party", progress) for v in c]
    verdicts = {(im.group, im.file): v for im, v in zip(ext.images, flat, strict=True)}
    by_group = {g: [verdicts[(im.group, im.file)] for im in ext.of(g)] for g in ext.groups()}
    modality = {g: ext.of(g)[0].modality for g in ext.groups()}
    covered = {g: ext.of(g)[0].covered for g in ext.groups()}
    common = {"detector": "scan", "weights_hash": whash, "perturbation": "none"}
    sets = {}
    for g, vs in by_group.items():
        label = ext.of(g)[0].label
        figs = set_figures(vs, n_boot, seed)
        sets[g] = figs
        n = {"n_real": 0 if label else len(vs), "n_fake": len(vs) if label else 0}
        for metric, e in figs.items():
            record(metric=metric, value=e.value, lo=e.lo, hi=e.hi, subset=g, **n, **common)
    pairs = {}
    for fake, real in ext.pairs():
        figs = pair_figures(by_group[fake], by_group[real], n_boot, seed)
        pairs[(fake, real)] = figs
        for metric, e in figs.items():
            record(metric=metric, value=e.value, lo=e.lo, hi=e.hi, subset=pair_name(fake, real),
                   n_real=len(by_group[real]), n_fake=len(by_group[fake]), **common)
    return {"hash": ext.hash, "notes": ext.notes, "sets": sets, "pairs": pairs, "n": {g: len(v) for g, v in
                                                                                        by_group.items()},
            "modality": modality, "covered": covered, "labels": {g: ext.of(g)[0].label for g in by_group}}


def external_markdown(res: dict[str, Any]) -> str:
    sets, n, cov, mod = res["sets"], res["n"], res["covered"], res["modality"]
    rows = []
    for (fake, real), p in res["pairs"].items():
        f, r = sets[fake], sets[real]
        name = f"{fake} ({mod[fake]})" + ("" if cov[fake] else " - modality not covered")
        rows.append([name, real, f"{n[fake]} / {n[real]}", _num(p["auc"]), _num(p["tpr@1%fpr"]),
                     _pct(f["share_medium"]), _pct(f["share_high"], ci=False), _pct(r["share_medium"]),
                     _pct(r["share_high"], ci=False),
                     f"{_pct(f['not_assessed'], ci=False)} / {_pct(r['not_assessed'], ci=False)}"])
    text = ("### Synthetic sets against their real counterparts\n\n" + _table(
        ["synthetic set (modality)", "real counterpart", "n fake / real", "AUC [95% CI]", "TPR@1%FPR [95% CI]",
         "fake ≥ medium", "fake ≥ high", "real ≥ medium", "real ≥ high", "not assessed fake / real"], rows))
    rows = []
    for g, figs in sets.items():
        if res["labels"][g]:
            continue
        want = "≤ 2% at medium" if cov[g] else "100% not assessed"
        rows.append([g, mod[g], str(n[g]), _pct(figs["share_medium"]), _pct(figs["share_high"], ci=False),
                     _pct(figs["not_assessed"]), want])
    text += ("\n\n### Real sets alone (every one, also those without a synthetic partner)\n\n" + _table(
        ["real set", "modality", "n", "≥ medium", "≥ high", "not assessed", "should be"], rows))
    unpaired = [g for g in sets if res["labels"][g] and not any(g == f for f, _ in res["pairs"])]
    if unpaired:
        text += "\n\nSynthetic sets without a real counterpart here: " + ", ".join(
            f"{g} (n {n[g]}, ≥ medium {_pct(sets[g]['share_medium'])})" for g in unpaired)
    return text


# ---------------------------------------------------------------------------------------------- controls
def control_reals(data: Path, n: int, seed: int, progress: bool) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Up to ``n`` held-out real images per data folder (a seeded sample), normalized like the external sets.

    A NIfTI volume gives its slices (``benchmarks.datafiles.read_frames``): up to n volumes are drawn and an equal
    seeded share of n slices from each, so a few held-out volumes still fill n images.
    """
    from benchmarks.datafiles import image_files, is_heldout, read_frames
    from benchmarks.datasets import FOLDER_MODALITY
    from benchmarks.external import normalize
    from forensics.errors import InputError

    out: dict[str, list[np.ndarray]] = {}
    notes: list[str] = []
    for folder, modality in FOLDER_MODALITY.items():
        if not (data / folder).is_dir():
            notes.append(f"{folder}: not in {data}")
            continue
        files = [p for p in image_files([data / folder]) if is_heldout(p)]
        rng = np.random.default_rng(seed)
        pick = sorted(rng.choice(len(files), min(n, len(files)), replace=False).tolist()) if files else []
        per_file = -(-n // len(pick)) if pick else 0
        ims = []
        for i in _bar(pick, f"controls {folder}", progress):
            try:
                frames = read_frames(files[i])
            except InputError as exc:
                notes.append(f"{files[i].name}: {exc.code}: {exc.message}")
                continue
            take = sorted(rng.choice(len(frames), min(per_file, len(frames)), replace=False).tolist())
            ims += [normalize(frames[k][1], modality) for k in take]
        if ims:
            out[modality] = ims[:n]
    return out, notes


def control_variants() -> dict[str, tuple[str, str, Any]]:
    """{name: (row, column, fn -> file bytes)}: ``none``, every kernel x scale (PNG), every JPEG quality (JPEG)."""
    import cv2

    from benchmarks.resampling import JPEG_QUALITIES, controls
    from forensics.formatpath import encode_png

    def jpeg(q: int):
        def fn(x: np.ndarray) -> bytes:
            u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(u8[..., ::-1] if u8.ndim == 3 else u8),
                                   [cv2.IMWRITE_JPEG_QUALITY, q])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            return buf.tobytes()

        return fn

    out: dict[str, tuple[str, str, Any]] = {"none": ("none", "as normalized", encode_png)}
    for name, (kernel, scale, fn) in controls().items():
        out[name] = (kernel, scale, lambda x, fn=fn: encode_png(fn(x)))
    for q in JPEG_QUALITIES:
        out[f"jpeg{q}"] = ("jpeg", f"q{q}", jpeg(q))
    return out


def measure_controls(reals: dict[str, list[np.ndarray]], record: Recorder, *, weights: Path | None, workers: int,
                     n_boot: int, seed: int, progress: bool, whash: str) -> dict[str, Any]:
    """Share of real images reaching ``medium`` (and ``high``) after each control, pooled and per modality."""
    variants = control_variants()
    order = [(m, x) for m, ims in reals.items() for x in ims]
    per_image = parallel_map(_score_controls, [x for _m, x in order], weights, workers, "controls", progress)
    verdicts: dict[tuple[str, str], list[Verdict]] = {}
    for (modality, _x), vs in zip(order, per_image, strict=True):
        for name, v in zip(variants, vs, strict=True):
            verdicts.setdefault((name, modality), []).append(v)
    figures: dict[tuple[str, str], dict[str, M.Estimate]] = {}
    for name in variants:
        pooled = [v for m in reals for v in verdicts[(name, m)]]
        for subset, vs in [("all", pooled)] + [(m, verdicts[(name, m)]) for m in reals]:
            figs = set_figures(vs, n_boot, seed)
            figures[(name, subset)] = figs
            for metric in ("share_medium", "share_high"):
                e = figs[metric]
                record(metric=metric, value=e.value, lo=e.lo, hi=e.hi, subset=subset, perturbation=f"control:{name}",
                       n_real=len(vs), n_fake=0, detector="scan", weights_hash=whash)
    return {"variants": {k: v[:2] for k, v in variants.items()}, "figures": figures,
            "n": {m: len(v) for m, v in reals.items()}}


def controls_markdown(res: dict[str, Any]) -> str:
    from benchmarks.resampling import JPEG_QUALITIES, KERNELS, SCALES

    figs, n = res["figures"], res["n"]
    total = sum(n.values())
    counts = ", ".join(f"{m} {k}" for m, k in n.items())

    def cell(name: str) -> str:
        return _pct(figs[(name, "all")]["share_medium"])

    rows = [[k] + [cell(f"{k}@{s}") for s, _f, _t in SCALES] for k in KERNELS]
    text = (f"### Resampling controls: held-out real images reaching `medium` (n = {total} per cell: {counts})\n\n"
            f"Unprocessed (normalized only): {cell('none')}.\n\n"
            + _table(["kernel"] + [f"{s} {'down and up' if t else 'up'}" for s, _f, t in SCALES], rows))
    text += "\n\n" + _table(["JPEG re-encode"] + [f"q{q}" for q in JPEG_QUALITIES],
                            [["≥ medium"] + [cell(f"jpeg{q}") for q in JPEG_QUALITIES]])
    worst = []
    for m in n:
        name, e = max(((k, figs[(k, m)]["share_medium"]) for k in res["variants"]), key=lambda t: t[1].value)
        worst.append(f"{m} (n {n[m]}): {_pct(e, ci=False)} at {name}")
    text += "\n\nWorst cell per modality: " + "; ".join(worst) + "."
    return text


# ---------------------------------------------------------------------------------------------- summary
def targets_markdown(ext: dict[str, Any] | None, ctl: dict[str, Any] | None) -> str:
    """Issue 13's bar, checked: per covered synthetic set, its counterparts, and the worst control."""
    lines = []
    if ext is not None:
        for (fake, real), p in ext["pairs"].items():
            if not ext["covered"][fake]:
                continue
            f, r = ext["sets"][fake], ext["sets"][real]
            ok = (p["auc"].value >= TARGET_AUC and f["share_medium"].value >= TARGET_CAUGHT
                  and r["share_medium"].value <= TARGET_REAL_FLAGGED)
            lines.append(f"- {fake} vs {real}: AUC {p['auc'].value:.2f}, {_pct(f['share_medium'], ci=False)} at "
                         f"medium, real {_pct(r['share_medium'], ci=False)}: {'met' if ok else '**not met**'}")
        for g, figs in ext["sets"].items():
            if not ext["covered"][g]:
                ok = figs["not_assessed"].value >= 1.0
                lines.append(f"- {g} ({ext['modality'][g]}, not covered): {_pct(figs['not_assessed'], ci=False)} not "
                             f"assessed: {'met' if ok else '**not met** (scored, so a verdict is implied)'}")
    if ctl is not None:
        name, e = max(((k, ctl["figures"][(k, "all")]["share_medium"]) for k in ctl["variants"]),
                      key=lambda t: t[1].value)
        ok = e.value <= TARGET_REAL_FLAGGED
        lines.append(f"- worst resampling / JPEG control: {_pct(e, ci=False)} at medium ({name}): "
                     f"{'met' if ok else '**not met**'}")
    return ("Issue 13's bar (AUC ≥ 0.95 and ≥ 80% at `medium` on every covered synthetic set; ≤ 2% of its real "
            "counterpart and of every control at `medium`; uncovered modalities not assessed):\n\n" + "\n".join(lines))


def _intro(scanner, weights: Path | None, whash: str) -> str:
    names = ", ".join(a.name for a in scanner.analyzers)
    f = scanner.options.fusion
    where = "the shipped weights" if weights is None else f"`--weights {weights}`"
    return (f"Scored as `medaudit scan` scores ({names}; fusion medium {f.medium}, high {f.high}) with {where} "
            f"(hash `{whash}`). Never trained or tuned on any of these images.")


@register_evaluation("third_party")
def evaluate_third_party(record: Recorder, *, external: Path, data: Path | None, weights: Path | None = None,
                         n_control: int = 20, n_boot: int = 1000, workers: int = 2, seed: int = 0,
                         progress: bool = True) -> Section:
    """External third-party sets (and, with ``data``, the resampling controls beside them)."""
    from benchmarks.external import NORMALIZATION_VERSION, NORMALIZED_SIZE

    scanner = make_scanner(weights)
    whash = weights_hash(scanner)
    run = {"weights": weights, "workers": workers, "n_boot": n_boot, "seed": seed, "progress": progress,
           "whash": whash}
    ext = measure_external(Path(external), record, **run)
    ctl, notes = None, list(ext["notes"])
    if data is not None:
        reals, more = control_reals(Path(data), n_control, seed, progress)
        notes += more
        if reals:
            ctl = measure_controls(reals, record, **run)
    md = (_intro(scanner, weights, whash) + f" External set `{ext['hash']}`: every image decoded, converted to its "
          f"modality's channels (gray for X-ray, CT, MRI, OCT; RGB for dermoscopy, fundus), centre-cropped square, "
          f"resized to {NORMALIZED_SIZE} px with one kernel (OpenCV area), saved as 8-bit PNG without metadata "
          f"(normalization v{NORMALIZATION_VERSION}); file names never reach a detector. Intervals: 95% bootstrap, "
          f"{n_boot} replicates; with n this small (4 matched IU reals, 8 StyleGAN, 6 OCT) read the intervals, not "
          "the points. `cxr_vae_recon_iu` reconstructs the same 4 images that form `cxr_iu_cxrdiffusion`.\n\n"
          + targets_markdown(ext, ctl) + "\n\n" + external_markdown(ext))
    md += "\n\n" + (controls_markdown(ctl) if ctl else "Resampling controls: not run (no `--data` folder).")
    if notes:
        md += "\n\nNotes: " + "; ".join(notes)
    return Section("third-party", "Third-party generators", md)


@register_evaluation("resampling_controls")
def evaluate_resampling_controls(record: Recorder, *, data: Path, weights: Path | None = None, n_control: int = 20,
                                 n_boot: int = 1000, workers: int = 2, seed: int = 0,
                                 progress: bool = True) -> Section:
    """The resampling control table alone."""
    from benchmarks.datafiles import DATA_FOLDERS

    scanner = make_scanner(weights)
    whash = weights_hash(scanner)
    reals, notes = control_reals(Path(data), n_control, seed, progress)
    if not reals:
        raise SystemExit(f"no held-out real images under {data} ({DATA_FOLDERS})")
    ctl = measure_controls(reals, record, weights=weights, workers=workers, n_boot=n_boot, seed=seed,
                           progress=progress, whash=whash)
    md = _intro(scanner, weights, whash) + "\n\n" + targets_markdown(None, ctl) + "\n\n" + controls_markdown(ctl)
    if notes:
        md += "\n\nNotes: " + "; ".join(notes)
    return Section("resampling-controls", "Resampling controls", md)
