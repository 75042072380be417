"""Train the ``residual`` analyzer from a data folder of real images (what ``medaudit train residual`` calls), and
measure it: held-out reals and their resampling / JPEG controls, the bundled generators, third-party sets.

    python -m benchmarks.train_residual --data DIR --measure-only --weights DIR [--external DIR] [-o report.json]

Composition lives here (docs/ARCHITECTURE.md): files are listed and split with ``benchmarks.datafiles`` (the pixel
detectors' held-out split is never trained on; a further 25% of the other sources calibrates), loaded with
``forensics.io``, and ``forensics.analyzers.residual.train`` gets plain arrays. Fakes are used only to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datafiles import DATA_ENV, DATA_FOLDERS, image_files, is_heldout, load_images, source_group
from forensics.atomic import write_text

#: Data folder -> (group name, DICOM modalities it stands for); COLOUR: groups of colour photographs.
GROUPS = {"cxr_kermany": ("chest X-ray", ["CR", "DX"]), "ct_lung_tcia": ("CT", ["CT"]),
          "derm_isic": ("dermoscopy", ["XC"])}
COLOUR = {"dermoscopy"}
CALIBRATION_FRACTION = 0.25
CALIBRATION_SALT = "medaudit-residual-calibration"
#: Seed of the bundled generators' measurement samples (never a training seed of any detector).
TEST_FAKE_SEED = 100_000
#: Third-party sets measured against their real counterparts (folders below the external root).
#: The DICOM modality each third-party set stands for: the grey-normalized images are compared with that group.
EXTERNAL_MODALITY = {"cxr": "DX", "derm": "XC"}
EXTERNAL_PAIRS = {
    "synthetic/cxr_ldm_iu": ("real/cxr_openist", "real/cxr_iu_cxrdiffusion"),
    "synthetic/cxr_vae_recon_iu": ("real/cxr_openist", "real/cxr_iu_cxrdiffusion"),
    "synthetic/derm_stylegan_slgan": ("real/derm_ham10000_artefact",),
}


def split_files(data: Path, folder: str) -> dict[str, list[Path]]:
    """{"fit", "calibration", "test"} files of one data folder: test = the detectors' held-out split; the rest is
    split by source group, so no patient or CT block is both fitted and calibrated on."""
    from forensics.training import source_split

    out: dict[str, list[Path]] = {"fit": [], "calibration": [], "test": []}
    for p in image_files([data / folder]):
        if is_heldout(p):
            out["test"].append(p)
        elif source_split(source_group(p), val_fraction=CALIBRATION_FRACTION, salt=CALIBRATION_SALT) == "val":
            out["calibration"].append(p)
        else:
            out["fit"].append(p)
    return out


def train_residual(data: Path, out: Path, *, draws: int = 4, calibration_draws: int = 8, estimator: str =
                   "ledoit_wolf", seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Fit on the real images of ``data`` (cxr_kermany/, ct_lung_tcia/, derm_isic/: those present) and write
    ``out/residual/model.json``; returns a summary."""
    from forensics.analyzers.residual.train import fit_residual
    from forensics.formatpath import FORMAT_PATH_VERSION

    start = time.time()
    groups = {}
    for folder, (name, modalities) in GROUPS.items():
        if not (data / folder).is_dir():
            continue
        files = split_files(data, folder)
        fit, _ = load_images(files["fit"], progress=progress)
        cal, _ = load_images(files["calibration"], progress=progress)
        groups[name] = {"fit": fit, "calibration": cal, "modalities": modalities, "colour": name in COLOUR}
    if not groups:
        raise FileNotFoundError(f"no real images in {data}: expected {DATA_FOLDERS}")
    info = {"data_folders": [f for f in GROUPS if (data / f).is_dir()], "format_path_version": FORMAT_PATH_VERSION,
            "heldout_rule": "benchmarks.datafiles.is_heldout (never fitted or calibrated on)"}
    model = fit_residual(groups, draws=draws, calibration_draws=calibration_draws, estimator=estimator, seed=seed,
                         progress=progress, info=info)
    model.info["train_s"] = round(time.time() - start, 1)
    path = model.save_json(Path(out) / "residual" / "model.json")
    write_text(Path(out) / "residual" / "MODEL_CARD.md", model_card(model))
    return {"model": str(path), "groups": model.info["counts"], "train_s": model.info["train_s"]}


def model_card(model) -> str:
    """The Markdown card of a fitted residual model: data, licences, calibration, CPU time."""
    from benchmarks.train_detector import LICENCES

    info = model.info
    lines = ["# residual analyzer - model card", "",
             "One-class models of real images' noise-residual and coding-surprisal features "
             "(`forensics/analyzers/residual/README.md`), fitted by `medaudit train residual` on **real images "
             "only**: no synthetic image was used to fit or to calibrate them.", "", "## Data", ""]
    for folder in info.get("data_folders", []):
        group = GROUPS[folder][0]
        c = info["counts"][group]
        lines.append(f"- `{folder}` -> group **{group}** (DICOM {', '.join(GROUPS[folder][1])}): "
                     f"{c['fit_images']} files fitted x {info['draws']} format-path draws, {c['calibration_images']} "
                     f"other-source files calibrate x {info['calibration_draws']} draws; the held-out 20% "
                     f"(`benchmarks.datafiles.is_heldout`) never read. Licence {LICENCES.get(folder, '?')}")
    lines += ["", "## Model and calibration", "",
              f"Estimator `{info.get('estimator')}` on robustly scaled features (27), format path version "
              f"{info.get('format_path_version')}, seed {info.get('seed')}; fitted in {info.get('train_s')} s of CPU "
              "wall time (one process, no GPU).", "",
              "| group | NLL 90th pct of calibration reals | NLL at score 0.5 (99th pct) | NLL units per e-fold of "
              "the tail |",
              "|---|---|---|---|"]
    for name, g in model.groups.items():
        cal = g["calibration"]
        lines.append(f"| {name} | {cal['q90']:.1f} | {cal['q_tail']:.1f} | {cal['beta']:.2f} |")
    lines += ["", "Score 0.5 where 1% of processed real images lie further out, 0.8 one decade further, capped at "
              f"{model.max_score}; below 0.5 the analyzer abstains (no score).", ""]
    return "\n".join(lines)


def measurement_markdown(report: dict[str, Any]) -> str:
    """The measured figures of :func:`measure_residual` as a Markdown section for the model card."""
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = ["## Measured (held-out reals, controls, generators never used in fitting)", "",
             "Share reaching score >= 0.5 (`medium` if this analyzer alone decided). Every image scanned as a PNG "
             "would be (no DICOM modality: the most typical group decides).", "",
             "| held-out reals | n | as stored | through the format path (2 draws) |", "|---|---|---|---|"]
    for k, v in report["reals"].items():
        lines.append(f"| {k} | {v['n']} | {pct(v['as_is_at_0.5'])} | {pct(v['format_path_at_0.5'])} |")
    lines += ["", "| control (held-out reals, resized then 8-bit PNG; or JPEG) | n | at 0.5 |", "|---|---|---|"]
    for k, v in report["controls"].items():
        lines.append(f"| {k} | {v['n']} | {pct(v['at_0.5'])} |")
    for title, key in (("bundled generator (seed 100000, 8-bit PNG) vs held-out reals of its modality",
                        "generators"),
                       ("third-party set vs real counterpart (grey, 256 px, 8-bit PNG both; measurement only)",
                        "external")):
        if report.get(key):
            lines += ["", f"| {title} | n fake / real | AUC | fakes at 0.5 | reals at 0.5 |", "|---|---|---|---|---|"]
            for k, v in report[key].items():
                lines.append(f"| {k} | {v['n_fake']} / {v['n_real']} | {v['auc']:.3f} | {pct(v['fake_at_0.5'])} | "
                             f"{pct(v['real_at_0.5'])} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- measurement
def _resizers() -> dict[str, Callable[[np.ndarray, int, int], np.ndarray]]:
    """Resampling kernels of two libraries other than our format path's draw: name -> f(pixels, h, w)."""
    import cv2
    from PIL import Image

    def cv(interp):
        return lambda x, h, w: cv2.resize(x, (w, h), interpolation=interp)

    def pil(method):
        def f(x, h, w):
            u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # (H, W) or (H, W, 3)
            return np.asarray(Image.fromarray(u8).resize((w, h), method), dtype=np.float32) / 255.0
        return f

    R = Image.Resampling
    return {"cv2_nearest": cv(cv2.INTER_NEAREST), "cv2_area": cv(cv2.INTER_AREA), "cv2_linear": cv(cv2.INTER_LINEAR),
            "cv2_cubic": cv(cv2.INTER_CUBIC), "cv2_lanczos": cv(cv2.INTER_LANCZOS4), "pil_nearest": pil(R.NEAREST),
            "pil_bilinear": pil(R.BILINEAR), "pil_bicubic": pil(R.BICUBIC), "pil_lanczos": pil(R.LANCZOS),
            "pil_box": pil(R.BOX)}


def _auc_share(r: list[dict], f: list[dict]) -> dict[str, Any]:
    """AUC of the surprise (-log10 tail) and the share at 0.5 of fakes ``f`` vs reals ``r`` (verdicts)."""
    from forensics.metrics import rank_auc

    surprise = lambda vs: np.array([-np.log10(max(v["tail"], 1e-300)) for v in vs])  # noqa: E731
    return {"n_fake": len(f), "n_real": len(r), "auc": round(float(rank_auc(surprise(f), surprise(r))), 4),
            "fake_at_0.5": round(float(np.mean([v["score"] >= 0.5 for v in f])), 4),
            "real_at_0.5": round(float(np.mean([v["score"] >= 0.5 for v in r])), 4)}


def measure_residual(weights: Path, data: Path, *, external: Path | None = None, n_controls: int = 40,
                     n_generated: int = 100, generators: Sequence[str] | None = None, seed: int = 1,
                     progress: bool = True) -> dict[str, Any]:
    """Share of images reaching score 0.5 and AUC (of -log10 tail probability) for the residual model in
    ``weights``: held-out reals as they are and through the format path, ``n_controls`` of them per folder
    resized by other libraries' kernels (0.25-2x) or JPEG re-encoded (50-95), bundled generators' samples (seed
    100000) against the held-out reals of their modality, and third-party sets against their real counterparts.
    Every image is scanned as a PNG would be (no DICOM modality: the most typical group decides)."""
    import cv2

    from forensics.analyzers.residual import ResidualAnalyzer
    from forensics.formatpath import format_path, jpeg_roundtrip, png_roundtrip

    analyzer = ResidualAnalyzer(weights)
    assess = analyzer.assess_pixels
    rng = np.random.default_rng(seed)
    say = (lambda m: print(m, file=sys.stderr)) if progress else (lambda m: None)
    out: dict[str, Any] = {"reals": {}, "controls": {}, "generators": {}, "external": {}}
    heldout: dict[str, list[np.ndarray]] = {}
    verdicts: dict[str, list[dict]] = {}
    for folder in GROUPS:
        if not (data / folder).is_dir():
            continue
        ims, _ = load_images(split_files(data, folder)["test"], progress=progress)
        heldout[folder] = ims
        say(f"held-out {folder}: {len(ims)}")
        verdicts[folder] = [assess(x) for x in ims]
        as_is = [v["score"] >= 0.5 for v in verdicts[folder]]
        processed = [assess(format_path(x, rng))["score"] >= 0.5 for x in ims for _ in range(2)]
        out["reals"][folder] = {"n": len(ims), "as_is_at_0.5": round(float(np.mean(as_is)), 4),
                                "format_path_at_0.5": round(float(np.mean(processed)), 4)}
    controls: dict[str, list[bool]] = {}
    resizers = _resizers()
    for folder, ims in heldout.items():
        pick = [ims[i] for i in rng.choice(len(ims), min(n_controls, len(ims)), replace=False)]
        for x in pick:
            g = x  # colour stays colour: a resized photograph is still one
            h, w = g.shape[:2]
            for kname, f in resizers.items():
                for s in (0.25, 0.5, 0.75, 1.5, 2.0):
                    y = png_roundtrip(np.clip(f(g, max(8, round(h * s)), max(8, round(w * s))), 0, 1))
                    controls.setdefault(f"{kname} x{s}", []).append(assess(y)["score"] >= 0.5)
            for q in (50, 70, 95):
                controls.setdefault(f"jpeg q{q}", []).append(assess(jpeg_roundtrip(g, q))["score"] >= 0.5)
            small = cv2.resize(g, (max(8, round(w * 64 / min(h, w))), max(8, round(h * 64 / min(h, w)))),
                               interpolation=cv2.INTER_AREA)
            for kname in ("cv2_cubic", "pil_bicubic", "pil_lanczos"):
                y = png_roundtrip(np.clip(resizers[kname](small, h, w), 0, 1))
                controls.setdefault(f"down to 64 px, up with {kname}", []).append(assess(y)["score"] >= 0.5)
        say(f"controls {folder}: done")
    out["controls"] = {k: {"n": len(v), "at_0.5": round(float(np.mean(v)), 4)} for k, v in controls.items()}
    if n_generated:
        from benchmarks.train_detector import MODALITY_PREFIX, bundled_generator_names, sample_generator

        for gname in generators or bundled_generator_names():
            folder = next((f for f, p in MODALITY_PREFIX.items() if gname.startswith(p)), None)
            if folder not in heldout:
                continue
            fakes = [png_roundtrip(x) for x in sample_generator(gname, n_generated, TEST_FAKE_SEED)]
            out["generators"][gname] = _auc_share(verdicts[folder], [assess(x) for x in fakes])
            say(f"generator {gname}: {out['generators'][gname]}")
    if external is not None:
        out["external"] = measure_external(assess, external)
    return out


def _normalized(paths: Sequence[Path]) -> list[np.ndarray]:
    """The same normalization for both classes: gray, 256 px square, 8-bit PNG round trip."""
    from forensics.formatpath import png_roundtrip, standardize
    from forensics.io import load

    return [png_roundtrip(standardize(load(p).pixels, 256)) for p in paths]


def measure_external(assess, root: Path) -> dict[str, Any]:
    """AUC and share at 0.5 of each third-party synthetic set in :data:`EXTERNAL_PAIRS` against each of its real
    counterparts (measurement only: nothing here is fitted or chosen on these images). Both classes are grey, so
    each set is compared with the group of its modality (:data:`EXTERNAL_MODALITY`), as a DICOM file would be."""
    res: dict[str, Any] = {}
    for fake, reals in EXTERNAL_PAIRS.items():
        if not (root / fake).is_dir():
            continue
        modality = EXTERNAL_MODALITY.get(fake.split("/")[-1].split("_")[0])
        fakes = [assess(x, modality) for x in _normalized(image_files([root / fake]))]
        for real in reals:
            if (root / real).is_dir():
                reals_v = [assess(x, modality) for x in _normalized(image_files([root / real]))]
                res[f"{fake} vs {real}"] = _auc_share(reals_v, fakes)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV), help=f"{DATA_FOLDERS} [env: {DATA_ENV}]")
    ap.add_argument("--weights", type=Path, required=True, help="folder with residual/model.json (or to write it)")
    ap.add_argument("--train", action="store_true", help="fit first (as `medaudit train residual --out WEIGHTS`)")
    ap.add_argument("--external", type=Path, default=None, help="third-party sets (measurement only)")
    ap.add_argument("--n-controls", type=int, default=40)
    ap.add_argument("--n-generated", type=int, default=100)
    ap.add_argument("-o", "--output", type=Path, default=None)
    ap.add_argument("--write-card", action="store_true", help="append the figures to WEIGHTS/residual/MODEL_CARD.md")
    args = ap.parse_args(argv)
    if args.data is None:
        ap.error(f"no data folder: give --data DIR or set {DATA_ENV}")
    if args.train:
        print(json.dumps(train_residual(args.data, args.weights), indent=1), file=sys.stderr)
    report = measure_residual(args.weights, args.data, external=args.external, n_controls=args.n_controls,
                              n_generated=args.n_generated)
    text = json.dumps(report, indent=1)
    if args.output:
        write_text(args.output, text)
    if args.write_card:
        card = args.weights / "residual" / "MODEL_CARD.md"
        write_text(card, card.read_text().split("## Measured")[0].rstrip() + "\n\n" + measurement_markdown(report))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
