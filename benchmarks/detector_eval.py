"""Measure the pixel detectors (frequency, cnn, their fusion) on held-out data, format-matched, with controls.

    medaudit bench detectors --data DIR --write-docs docs/BENCHMARKS.md [--lofo-budget 450]

What it reports (targets from the detector-suite issue in brackets):
- in-distribution ROC-AUC per modality, format-matched: held-out real files (20% by patient, never trained on) and
  fresh generator samples (another seed), both through the same random format path [>= 0.99];
- leave-one-family-out on chest X-ray (the harness's ``leave_one_generator_out`` protocol run on :func:`lofo_set`):
  detectors retrained here on two of gan/vae/ddpm, tested on the third: AUC and share of unseen fakes reaching
  ``high`` (fused risk >= 0.9) [AUC >= 0.95, >= 80% caught];
- JPEG quality 70 and 0.5x resize on top of the format path [AUC >= 0.90];
- expected calibration error [<= 0.05]; false-positive rate at ``high`` on held-out reals [<= 2%];
- real DICOMs shipped with pydicom and nibabel: all ``low``;
- shortcut controls on held-out reals - down to 64 px and back, added noise, JPEG 50 - share reaching ``high``
  [<= 5%];
- speed: images/s at 256 x 256 with 2 worker processes.
Pixel analyzers only (metadata, watermark and reuse are left out: the images here carry no metadata and no mark).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.detectors import risk_or_zero
from benchmarks.evaluations import Recorder, Section, register_evaluation
from benchmarks.train_detector import (
    FAKE_RATIO,
    FAKE_VARIANTS,
    MODALITY_PREFIX,
    REAL_VARIANTS,
    TEST_FAKE_SEED,
    TRAIN_FAKE_SEED,
    bundled_sets,
)

PIXEL_ANALYZERS = ("frequency", "cnn")


def _scanner(weights_dir: Path | None):
    """A :class:`forensics.scanner.Scanner` of the pixel analyzers in ``weights_dir`` (None: the bundled ones),
    fused with the config fitted beside them."""
    from forensics.fusion import FusionConfig
    from forensics.scanner import Scanner, ScanOptions

    scanner = Scanner(ScanOptions(analyzers=list(PIXEL_ANALYZERS), fusion=FusionConfig.for_weights(weights_dir),
                                  weights_dir=None if weights_dir is None else str(weights_dir)))
    if scanner.skipped:
        raise SystemExit("; ".join(f"{name}: {why}" for name, why in scanner.skipped.items()))
    return scanner


def score(scanner, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Calibrated scores per analyzer (nan where it gave none) and the fused ``risk``, by ``scanner.score``."""
    from forensics.records import MedicalImage

    out: dict[str, list[float]] = {n: [] for n in [*PIXEL_ANALYZERS, "risk"]}
    for im in images:
        record = im if isinstance(im, MedicalImage) else MedicalImage(pixels=im, path="", sha256="", format="png")
        result = scanner.score(record)
        for f in result.findings:
            out[f.analyzer].append(np.nan if f.score is None else f.score)  # None: no pixel evidence
        out["risk"].append(risk_or_zero(result))
    return {k: np.asarray(v) for k, v in out.items()}


def _formatted(images: Sequence[np.ndarray], seed: int) -> list[np.ndarray]:
    from forensics.formatpath import format_path

    return [format_path(x, np.random.default_rng(seed + i)) for i, x in enumerate(images)]


def _resize_half(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    return cv2.resize(x, (max(8, w // 2), max(8, h // 2)), interpolation=cv2.INTER_AREA)


def _metrics(y: np.ndarray, p: np.ndarray, high: float) -> dict[str, float]:
    from forensics.metrics import ece, roc_auc

    p = np.nan_to_num(p, nan=0.0)  # an analyzer that abstained (modality gate) flagged nothing, as risk_or_zero
    return {"auc": roc_auc(y, p), "ece": ece(y, p),
            "fpr_high": float((p[y == 0] >= high).mean()), "tpr_high": float((p[y == 1] >= high).mean())}


def evaluate(data: Path, weights_dir: Path | None = None, *, fake_ratio: float = 1.0, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """In-distribution, perturbation, calibration and control numbers of the detectors in ``weights_dir``."""
    from forensics.formatpath import jpeg_roundtrip, native_roundtrip, png_roundtrip

    scanner = _scanner(weights_dir)
    cfg = scanner.options.fusion
    sets = bundled_sets(data, heldout=True, seed=TEST_FAKE_SEED + seed, fake_ratio=fake_ratio, progress=progress)
    res: dict[str, Any] = {"modalities": {}, "fusion": cfg.to_dict()}
    pooled: dict[str, list] = {"y": [], **{k: [] for k in [*PIXEL_ANALYZERS, "risk"]}}
    controls: dict[str, list] = {"native64": [], "noise": [], "jpeg50": []}
    for folder, e in sets.items():
        if not e["fake"]:
            continue
        xs = _formatted(e["real"] + e["fake"], seed=1000 * seed + 7)
        y = np.array([0] * len(e["real"]) + [1] * len(e["fake"]))
        kinds = np.array(["real"] * len(e["real"]) + e["fake_kinds"])
        s = score(scanner, xs)
        m: dict[str, Any] = {"n_real": len(e["real"]), "n_fake": len(e["fake"]),
                             "unscored": float(np.isnan(s["cnn"]).mean()),  # the gate found no known modality
                             **{f"{k}_{n}": v for n in s for k, v in _metrics(y, s[n], cfg.high).items()}}
        for g in e["generators"]:
            sel = (kinds == "real") | (kinds == g)
            m[f"auc_{g}"] = _metrics(y[sel], s["risk"][sel], cfg.high)["auc"]
            m[f"tpr_high_{g}"] = float((s["risk"][kinds == g] >= cfg.high).mean())
        for name, fn in (("jpeg70", lambda x: jpeg_roundtrip(x, 70)), ("resize0.5", _resize_half)):
            sp = score(scanner, [fn(x) for x in xs])
            for n in sp:
                m[f"auc_{n}_{name}"] = _metrics(y, sp[n], cfg.high)["auc"]
        for n in s:
            pooled[n] += list(s[n])
        pooled["y"] += list(y)
        rng = np.random.default_rng(seed + 11)
        reals = e["real"]
        mine = {
            "native64": score(scanner, [png_roundtrip(native_roundtrip(x, 64)) for x in reals])["risk"],
            "noise": score(scanner, [png_roundtrip(np.clip(
                x + rng.normal(0, 0.02, x.shape).astype(np.float32), 0, 1)) for x in reals])["risk"],
            "jpeg50": score(scanner, [jpeg_roundtrip(x, 50) for x in reals])["risk"],
        }
        for k, v in mine.items():
            controls[k] += list(v)
        m["controls_high"] = {k: float((v >= cfg.high).mean()) for k, v in mine.items()}
        res["modalities"][folder] = m
        if progress:
            print(f"{folder}: AUC {m['auc_risk']:.3f}", file=sys.stderr)
    y = np.asarray(pooled["y"])
    res["pooled"] = {n: _metrics(y, np.asarray(pooled[n]), cfg.high) for n in [*PIXEL_ANALYZERS, "risk"]}
    res["controls_high"] = {k: float((np.asarray(v) >= cfg.high).mean()) for k, v in controls.items()}
    res["controls_medium"] = {k: float((np.asarray(v) >= cfg.medium).mean()) for k, v in controls.items()}
    res["dicom"] = dicom_check(scanner)
    return res


def dicom_check(scanner) -> dict[str, Any]:
    """Levels of real scanner DICOMs shipped inside pydicom and nibabel, as ``scan`` gives them (the pixel analyzers
    abstain on modalities they were not trained on, e.g. MR)."""
    import glob

    import nibabel
    import pydicom.examples

    from forensics.errors import InputError
    from forensics.io import load

    paths = []
    for name in ("ct", "mr", "rgb_color", "overlay", "jpeg2k", "palette_color"):
        try:
            paths.append(str(pydicom.examples.get_path(name)))
        except Exception:  # noqa: BLE001 - an example missing in this pydicom version
            pass
    paths += sorted(glob.glob(os.path.join(os.path.dirname(nibabel.__file__), "**", "*.dcm"), recursive=True))
    levels = {}
    for p in paths:
        try:
            im = load(p)
        except InputError as exc:
            levels[Path(p).name] = f"error:{exc.code}"
            continue
        if min(im.pixels.shape[:2]) < 16:
            levels[Path(p).name] = "too small"
            continue
        result = scanner.score(im)
        if result.risk is not None and any(f.score is not None for f in result.findings):
            note = f"{result.risk:.2f}"
        elif any(e.code.endswith(".out_of_domain") for f in result.findings for e in f.evidence):
            note = f"no pixel score: modality {im.modality} is outside the detectors' training"
        else:
            note = "no pixel score: blank image"
        levels[f"{Path(p).parent.name}/{Path(p).name}"] = f"{result.level} ({note})"
    return levels


def lofo_set(data: Path, *, seed: int = 0, progress: bool = True) -> tuple[Any, list[int]]:
    """The chest X-ray set that leave-one-generator-out folds are cut from, and the reals' native round-trip sides.

    train: the training-split real files (short side <= 512 px) and ``FAKE_RATIO`` unstamped samples per real of the
    bundled chest X-ray generators (seed ``TRAIN_FAKE_SEED``; the format path is drawn in training);
    test: the held-out real files and twice as many new-seed samples, each through one format-path draw (the same
    draw for an image in every fold). Split units: patients, generator samples.
    """
    from benchmarks.datasets import from_arrays
    from generators.api import generator_config

    folder = "cxr_kermany"
    train = bundled_sets(data, heldout=False, seed=TRAIN_FAKE_SEED + seed, modalities=[folder],
                         fake_ratio=FAKE_RATIO, progress=progress)[folder]
    test = bundled_sets(data, heldout=True, seed=TEST_FAKE_SEED + seed, modalities=[folder], fake_ratio=2.0,
                        progress=progress)[folder]
    first = 1000 * seed + 7  # format-path seed of the first test image: reals, then each generator's fakes (in the
    test_fakes = []  # order bundled_sets samples them) from the seed after the last real, as each fold lists them
    for g in test["generators"]:
        test_fakes += _formatted([x for x, k in zip(test["fake"], test["fake_kinds"], strict=True) if k == g],
                                 seed=first + len(test["real"]))
    images = train["real"] + train["fake"] + _formatted(test["real"], seed=first) + test_fakes
    n_train, n_test = len(train["real"]) + len(train["fake"]), len(test["real"]) + len(test["fake"])
    gens = [None] * len(train["real"]) + train["fake_kinds"] + [None] * len(test["real"]) + test["fake_kinds"]
    ds = from_arrays(images, [int(g is not None) for g in gens], splits=["train"] * n_train + ["test"] * n_test,
                     generators=gens, modalities=["cxr"] * len(gens),
                     families=["real" if g is None else str(generator_config(g)["family"]) for g in gens],
                     groups=train["real_groups"] + train["fake_groups"] + test["real_groups"] + test["fake_groups"])
    return ds, sorted(train["natives"])


def lofo(data: Path, record: Recorder, *, budget_s: float, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Leave one generator family out on chest X-ray (protocol ``leave_one_generator_out`` over :func:`lofo_set`):
    the pixel detectors retrained on two families' fakes and the real training files, tested on the third.

    Each fold trains like ``medaudit train detector``: ``REAL_VARIANTS`` / ``FAKE_VARIANTS`` format-path draws per
    real / synthetic image, an inner validation split by patient and sample, calibration across the two seen
    families (each held out in turn, so the third is unseen by the models and by their calibration), ``budget_s``
    seconds of fitting shared by its three CNN fits. Every row goes to ``record``; returns the table of
    :func:`render` ({unseen generator: figures}).
    """
    from benchmarks.detectors import RetrainedSuiteDetector
    from benchmarks.protocols import DetectorSpec, run

    ds, natives = lofo_set(data, seed=seed, progress=progress)
    spec = DetectorSpec("suite.retrained", lambda: RetrainedSuiteDetector(
        PIXEL_ANALYZERS, native_sizes=natives, time_budget_s=budget_s, cnn_max_steps=3000, cnn_batch_size=64,
        real_variants=REAL_VARIANTS, fake_variants=FAKE_VARIANTS, seed=seed))
    rows: dict[tuple[str, str, str], float] = {}

    def keep(**row: Any) -> None:
        record(**row)
        if row.get("kind") == "metric":
            rows[(row["detector"], row["subset"], row["metric"])] = row["value"]

    run(ds, [spec], protocols=["leave_one_generator_out"], record=keep, seed=seed, parts=True, progress=progress)
    names = {"risk": "suite.retrained", **{n: f"suite.retrained.{n}" for n in PIXEL_ANALYZERS}}
    return {held: {"trained_on": [g for g in ds.generators if g != held],
                   "cnn_steps": int(rows[("suite.retrained", held, "cnn_steps")]),
                   **{f"auc_{n}": rows[(det, held, "auc")] for n, det in names.items()},
                   **{f"caught_high_{n}": rows[(det, held, "tpr@thr")] for n, det in names.items()},
                   "fpr_high_risk": rows[("suite.retrained", held, "fpr@thr")]}
            for held in ds.generators}


def speed(n: int = 96, workers: int = 2) -> dict[str, float]:
    """Images/s of the whole scan pipeline on 256 x 256 PNGs, ``workers`` processes, every available analyzer.

    Always the bundled weights: throughput depends on the architecture, not on the trained values.
    """
    from forensics.scanner import ScanOptions, scan_paths

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            base = cv2.resize(rng.random((32, 32)).astype(np.float32), (256, 256), interpolation=cv2.INTER_CUBIC)
            im = np.clip(base + rng.normal(0, 0.03, (256, 256)), 0, 1)
            cv2.imwrite(os.path.join(d, f"{i:03d}.png"), (im * 255).astype(np.uint8))
        out = {}
        for label, names in (("pixel analyzers", list(PIXEL_ANALYZERS)), ("full suite", None)):
            opts = ScanOptions(analyzers=names)
            list(scan_paths([os.path.join(d, "000.png"), os.path.join(d, "001.png")], opts, workers=1))  # warm-up
            t0 = time.perf_counter()
            results = list(scan_paths([d], opts, workers=workers))
            dt = time.perf_counter() - t0
            out[label] = round(len(results) / dt, 1)
            out[f"{label} errors"] = sum(r.status != "ok" for r in results)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.3f}"
    return str(v)


def render(res: dict[str, Any]) -> str:
    L = ["# Pixel detector evaluation"]
    if "fusion" in res:
        L += ["", f"Thresholds: high = fused risk >= {res['fusion']['high']}, medium >= {res['fusion']['medium']}. "
                  f"Fusion weights {res['fusion']['pixel_weights']}, gain {res['fusion'].get('pixel_gain', 1.0)}, "
                  f"bias {res['fusion']['pixel_bias']}."]
    if res.get("modalities"):
        L += ["", "## In-distribution, format-matched (held-out reals vs new-seed samples of the bundled generators)",
              "", "| modality | n real / fake | unscored | AUC fused | AUC frequency | AUC cnn | ECE fused | "
              "FPR@high | TPR@high | AUC JPEG 70 | AUC resize 0.5x |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for f, m in res["modalities"].items():
            L.append(f"| {f} | {m['n_real']} / {m['n_fake']} | {_fmt(m.get('unscored', float('nan')))} | "
                     f"{_fmt(m['auc_risk'])} | {_fmt(m['auc_frequency'])} | "
                     f"{_fmt(m['auc_cnn'])} | {_fmt(m['ece_risk'])} | {_fmt(m['fpr_high_risk'])} | "
                     f"{_fmt(m['tpr_high_risk'])} | {_fmt(m['auc_risk_jpeg70'])} | {_fmt(m['auc_risk_resize0.5'])} |")
        per_generator = tuple(f"{metric}_{prefix}" for metric in ("auc", "tpr_high")
                              for prefix in MODALITY_PREFIX.values())
        per = [f"{k[4:]} AUC {_fmt(v)}" if k.startswith("auc_") else f"{k[9:]} caught at high {_fmt(v)}"
               for m in res["modalities"].values() for k, v in m.items() if k.startswith(per_generator)]
        L += ["", "Per generator (fused): " + "; ".join(per) + "."]
    if res.get("pooled"):
        L += ["", "## Pooled over modalities", "", "| scores | AUC | ECE | FPR@high | TPR@high |",
              "|---|---|---|---|---|"]
        for n, m in res["pooled"].items():
            L.append(f"| {n} | {_fmt(m['auc'])} | {_fmt(m['ece'])} | {_fmt(m['fpr_high'])} | "
                     f"{_fmt(m['tpr_high'])} |")
    if res.get("lofo"):
        L += ["", "## Leave one generator family out (chest X-ray; retrained here on the other two)", "",
              "| unseen | trained on | cnn steps | AUC fused | AUC frequency | AUC cnn | caught at high (fused) | "
              "caught freq / cnn | FPR@high |", "|---|---|---|---|---|---|---|---|---|"]
        for g, m in res["lofo"].items():
            L.append(f"| {g} | {', '.join(m['trained_on'])} | {m['cnn_steps']} | {_fmt(m['auc_risk'])} | "
                     f"{_fmt(m['auc_frequency'])} | {_fmt(m['auc_cnn'])} | {_fmt(m['caught_high_risk'])} | "
                     f"{_fmt(m['caught_high_frequency'])} / {_fmt(m['caught_high_cnn'])} | "
                     f"{_fmt(m['fpr_high_risk'])} |")
    if res.get("controls_high"):
        per = {f: m["controls_high"] for f, m in res.get("modalities", {}).items() if "controls_high" in m}
        L += ["", "## Shortcut controls (held-out real images; share reaching high / medium)", "",
              "| " + " | ".join(["control", "high", "medium", *(f"high, {f}" for f in per)]) + " |",
              "|---|---|---|" + "---|" * len(per)]
        for k in res["controls_high"]:
            cells = [k, _fmt(res["controls_high"][k]), _fmt(res["controls_medium"][k]),
                     *(_fmt(c.get(k, float("nan"))) for c in per.values())]
            L.append("| " + " | ".join(cells) + " |")
    if res.get("dicom"):
        L += ["", "## Real DICOM files (pydicom and nibabel test data; fused pixel risk)", ""]
        L += [f"- {k}: {v}" for k, v in res["dicom"].items()]
    if res.get("speed"):
        L += ["", "## Speed (256 x 256 PNG, 2 worker processes, this 2-core CPU shared with other jobs)", ""]
        L += [f"- {k}: {v}" + (" images/s" if "errors" not in k else "") for k, v in res["speed"].items()]
    return "\n".join(L) + "\n"


#: Score names of ``evaluate`` -> detector names in the results store.
STORED_AS = {"frequency": "frequency", "cnn": "cnn", "risk": "suite"}


def record_rows(record: Recorder, res: dict[str, Any]) -> None:
    """Store the figures of ``res`` (as :func:`render` shows them; :func:`lofo` stores its rows as it measures).

    Thresholded figures are named as the leaderboard names them: ``tpr@thr`` / ``fpr@thr`` at ``high``.
    """
    for folder, m in res.get("modalities", {}).items():
        counts = {"protocol": "in_distribution", "subset": folder, "n_real": m["n_real"], "n_fake": m["n_fake"]}
        for score, det in STORED_AS.items():
            record.figures({"auc": m[f"auc_{score}"], "ece": m[f"ece_{score}"], "fpr@thr": m[f"fpr_high_{score}"],
                            "tpr@thr": m[f"tpr_high_{score}"]}, detector=det, **counts)
            record.figures({"auc": m[f"auc_{score}_jpeg70"]}, detector=det, perturbation="jpeg70", **counts)
            record.figures({"auc": m[f"auc_{score}_resize0.5"]}, detector=det, perturbation="resize0.5", **counts)
        for k, v in m.get("controls_high", {}).items():
            record(detector="suite", protocol="controls", subset=folder, perturbation=f"control:{k}",
                   metric="flag_rate@thr", value=v, n_real=m["n_real"], n_fake=0)
    for score, m in res.get("pooled", {}).items():
        record.figures({"auc": m["auc"], "ece": m["ece"], "fpr@thr": m["fpr_high"], "tpr@thr": m["tpr_high"]},
                       detector=STORED_AS[score], protocol="in_distribution", subset="pooled")
    for level, key in (("thr", "controls_high"), ("medium", "controls_medium")):
        for k, v in res.get(key, {}).items():
            record(detector="suite", protocol="controls", subset="pooled", perturbation=f"control:{k}",
                   metric=f"flag_rate@{level}", value=v, n_fake=0)
    for label, v in res.get("speed", {}).items():
        record(detector="scan", protocol="speed", subset=label, metric="errors" if "errors" in label else
               "images_per_s", value=v)


@register_evaluation("detectors")
def evaluate_detectors(record: Recorder, *, data: Path, lofo_budget: float = 450.0, weights: Path | None = None,
                       in_distribution: bool = True, speed_check: bool = True, seed: int = 0) -> Section:
    """The pixel detectors in ``weights`` (default: bundled): in-distribution, LOFO, controls, DICOMs, speed.

    Args:
        data: folder with ``cxr_kermany/``, ``ct_lung_tcia/``, ``derm_isic/``, ``mri_brain/``, ``mammo/``.
        lofo_budget: training seconds per leave-one-family-out fold, shared by its three CNN fits (0 skips LOFO).
        in_distribution: measure the in-distribution, perturbation, calibration, control and DICOM figures.
        speed_check: measure scan throughput.
    """
    import torch

    torch.set_num_threads(1)
    data = Path(data)
    res = evaluate(data, weights, seed=seed) if in_distribution else {}
    if lofo_budget > 0:
        res["lofo"] = lofo(data, record, budget_s=lofo_budget, seed=seed)
    if speed_check:
        res["speed"] = speed()
    record_rows(record, res)
    return Section("detectors", "Pixel detectors (frequency, cnn, fused)", render(res))
