"""How often the series comparison (``forensics.series``) flags one tampered slice of a real DICOM series.

Each NIfTI volume of ``DATA/mri_brain`` (IXI T1, the TCGA glioma case) is written as a DICOM MR series (one file per
slice along the volume's third axis, its stored integers and rescale slope, positions along the slice normal; the
header of pydicom's example MR otherwise). The untouched series is surveyed as ``medaudit scan`` of its folder does
(``forensics.series.survey`` on the files); then, for each tamper method that applies to MRI
(``generators.tamper.tamper_methods(modality="mri")``), one slice in the middle of the head is tampered
(unstamped, DICOM in, DICOM out, lesion radius 5 mm and 10 mm, each x U(0.8, 1.6)) and the series surveyed again.
Reported per method and radius: the share of tampered slices flagged, of those flagged with the region on the
lesion, and the other slices of the tampered series that were flagged; for the untouched series, flagged slices and
series with any flag. IXI volumes split by ``benchmarks.datasets.is_holdout``: the reporting level was set on the
others (``forensics/series.json``).

    medaudit bench series --data DIR --write-docs docs/BENCHMARKS.md
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.evaluations import Recorder, Section, register_evaluation


def write_series(
    slices: list[np.ndarray], out: Path, *, spacing_mm: tuple[float, float], gap_mm: float, slope: float = 1.0,
    intercept: float = 0.0, modality: str = "MR", seed: int = 0,
) -> list[Path]:
    """Write 2-D stored-value slices as one DICOM series (a file per slice, ``out/slice_NNN.dcm``), positions
    ``gap_mm`` apart along the normal of an axial orientation. The header is pydicom's example MR (or CT for
    ``modality="CT"``) with new study, series and instance UIDs and the slices' size, spacing and rescale."""
    from pydicom import examples
    from pydicom.uid import generate_uid

    out.mkdir(parents=True, exist_ok=True)
    template = examples.ct if modality == "CT" else examples.mr
    rng = np.random.default_rng(seed)
    study, series, frame = (generate_uid(entropy_srcs=[str(seed), s, str(rng.random())]) for s in "abc")
    paths = []
    for k, values in enumerate(slices):
        ds = template.copy()
        v = np.asarray(values)
        signed = bool(v.min() < 0)
        ds.Rows, ds.Columns = v.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = int(signed)
        ds.PixelData = v.astype(np.int16 if signed else np.uint16).tobytes()
        ds.PixelSpacing = [float(spacing_mm[0]), float(spacing_mm[1])]
        ds.SliceThickness = float(gap_mm)
        ds.RescaleSlope, ds.RescaleIntercept = float(slope), float(intercept)
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [0.0, 0.0, float(k * gap_mm)]
        ds.SliceLocation = float(k * gap_mm)
        ds.InstanceNumber = k + 1
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for keyword in ("WindowCenter", "WindowWidth", "SmallestImagePixelValue", "LargestImagePixelValue"):
            if keyword in ds:
                delattr(ds, keyword)
        path = out / f"slice_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def nifti_series(path: Path, out: Path, seed: int = 0) -> list[Path]:
    """A NIfTI volume's slices along its third axis as a DICOM MR series (stored integers and scl_slope kept)."""
    import nibabel as nib

    img = nib.load(str(path))
    raw = np.asanyarray(img.dataobj.get_unscaled())
    slope = img.dataobj.slope if np.isfinite(img.dataobj.slope) and img.dataobj.slope else 1.0
    inter = img.dataobj.inter if np.isfinite(img.dataobj.inter) else 0.0
    zooms = img.header.get_zooms()
    slices = [np.round(raw[:, :, k]).astype(np.int32) for k in range(raw.shape[2])]
    return write_series(slices, out, spacing_mm=(float(zooms[0]), float(zooms[1])), gap_mm=float(zooms[2]),
                        slope=float(slope), intercept=float(inter), seed=seed)


def _head_slices(paths: list[Path]) -> list[int]:
    """Indices of slices whose middle 60 % of the head-bearing range (enough tissue for a lesion)."""
    from forensics.io import load

    share = [float(np.mean(load(p).pixels > 0.1)) for p in paths]
    bearing = [k for k, s in enumerate(share) if s > 0.15]
    if not bearing:
        return list(range(len(paths) // 4, 3 * len(paths) // 4))
    lo, hi = bearing[0], bearing[-1]
    cut = int(0.2 * (hi - lo))
    return list(range(lo + cut, hi - cut + 1))


def _survey(paths: list[Path]) -> dict[str, Any]:
    from forensics.io import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
    from forensics.series import survey

    return survey([str(p) for p in paths], max_bytes=DEFAULT_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS)


def _donor(files: list[Path], here: Path, rng: np.random.Generator):
    """Another subject's volume as loaded (its middle slice) and a point inside its head: the paste source."""
    from forensics.io import load
    from generators.tamper import random_body_point

    other = [f for f in files if f != here and f.name.startswith("IXI")] or [f for f in files if f != here]
    img = load(other[int(rng.integers(len(other)))])
    return img, random_body_point(img.pixels, 4.0, rng)


def evaluate(data: Path, n: int | None = None, seed: int = 0, methods: tuple[str, ...] | None = None,
             radii_mm: tuple[float, ...] = (5.0, 10.0)) -> dict[str, Any]:
    """Survey each volume's series untouched and once per tamper method; the raw rows and the timing."""
    from benchmarks.datasets import is_holdout
    from forensics.io import load
    from generators.tamper import random_body_point, tamper_file, tamper_method, tamper_methods

    files = sorted((Path(data) / "mri_brain").glob("*.nii*"))
    files = [f for f in files if f.name.startswith("IXI")][:n] + [f for f in files if "T1.nii" in f.name
                                                                  and f.name.startswith("TCGA")]
    if not files:
        raise FileNotFoundError(f"no NIfTI volumes in {Path(data) / 'mri_brain'}")
    methods = methods or tuple(tamper_methods(modality="mri"))
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    for i, f in enumerate(tqdm(files, desc="series", file=sys.stderr, leave=False)):  # -q: TQDM_DISABLE
        group = "tcga" if f.name.startswith("TCGA") else "ixi_holdout" if is_holdout(f.name) else "ixi_calibration"
        with tempfile.TemporaryDirectory() as tmp:
            paths = nifti_series(f, Path(tmp) / "series", seed=seed + i)
            found = _survey(paths)
            rows.append({"volume": f.name, "group": group, "method": None, "slices": len(found),
                         "flagged": sum(v.flagged for v in found.values())})
            candidates = _head_slices(paths)
            for j, (name, radius_mm) in enumerate((t, r) for r in radii_mm for t in methods):
                k = int(candidates[int(rng.integers(len(candidates)))])
                img = load(paths[k])
                r = radius_mm / min(img.spacing_mm or (1.0, 1.0)) * float(rng.uniform(0.8, 1.6))
                at = random_body_point(img.pixels, r, rng)
                donor = {}
                if tamper_method(name).needs_donor:
                    d, d_at = _donor(files, f, rng)
                    donor = {"donor": d, "donor_at": d_at}
                original = paths[k].read_bytes()
                info = tamper_file(paths[k], paths[k], name, at, r, stamp=False, seed=seed + 31 * i + j,
                                   modality="mri", mask_path=None, **donor)
                found = _survey(paths)
                paths[k].write_bytes(original)
                v = found.get(str(paths[k]))
                x0, y0, x1, y1 = info["bbox"] or (0, 0, 0, 0)
                on_lesion = bool(v is not None and v.flagged and v.box[0] < x1 and x0 < v.box[2] and v.box[1] < y1
                                 and y0 < v.box[3])
                rows.append({"volume": f.name, "group": group, "method": name, "radius_mm": radius_mm,
                             "slices": len(found), "z": None if v is None else v.z,
                             "detected": bool(v is not None and v.flagged), "on_lesion": on_lesion,
                             "others_flagged": sum(u.flagged for p, u in found.items() if p != str(paths[k]))})
    return {"rows": rows, "seconds": round(time.time() - t0, 1), "methods": list(methods), "radii_mm": list(radii_mm)}


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    rows = res["rows"]
    out: dict[str, Any] = {"untouched": {}, "methods": []}
    for group in ("ixi_holdout", "ixi_calibration", "tcga"):
        real = [r for r in rows if r["method"] is None and r["group"] == group]
        if real:
            out["untouched"][group] = {"series": len(real), "slices": sum(r["slices"] for r in real),
                                       "flagged_slices": sum(r["flagged"] for r in real),
                                       "series_with_flag": sum(r["flagged"] > 0 for r in real)}
    for radius in res["radii_mm"]:
        for m in res["methods"]:
            done = [r for r in rows if r["method"] == m and r["radius_mm"] == radius]
            if done:
                out["methods"].append({
                    "method": m, "radius_mm": radius, "n": len(done),
                    "detected": float(np.mean([r["detected"] for r in done])),
                    "on_lesion": float(np.mean([r["on_lesion"] for r in done])),
                    "median_z": float(np.median([r["z"] for r in done if r["z"] is not None] or [np.nan])),
                    "others_flagged": sum(r["others_flagged"] for r in done),
                    "other_slices": sum(r["slices"] - 1 for r in done),
                })
    return out


def render(res: dict[str, Any], summary: dict[str, Any]) -> str:
    from forensics.series import load_calibration
    from generators.tamper import tamper_method

    flag = load_calibration()["flag_z"]
    lines = [
        f"Each brain MRI volume of `mri_brain/` written as a DICOM MR series (a file per slice), surveyed as `scan` of "
        f"its folder does; then one slice per tamper method and lesion radius tampered (unstamped, radius x U(0.8, "
        f"1.6)) and surveyed again. A slice is flagged at z >= {flag:g} (set on the untouched IXI calibration "
        f"volumes); {res['seconds']:.0f} s.",
        "",
        "| untouched series | series | slices | slices flagged | series with a flag |",
        "|---|---|---|---|---|",
    ]
    for group, u in summary["untouched"].items():
        lines.append(f"| {group} | {u['series']} | {u['slices']} | {u['flagged_slices']} "
                     f"({u['flagged_slices'] / max(u['slices'], 1):.1%}) | {u['series_with_flag']} |")
    lines += ["", "| tamper method | kind | held out from training | lesion radius | n | tampered slice flagged "
              "| flagged on the lesion | median z | other slices flagged |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summary["methods"]:
        t = tamper_method(s["method"])
        lines.append(f"| {s['method']} | {t.kind} | {'yes' if t.held_out else 'no'} | {s['radius_mm']:g} mm | "
                     f"{s['n']} | {s['detected']:.1%} | {s['on_lesion']:.1%} | {s['median_z']:.1f} | "
                     f"{s['others_flagged']} / {s['other_slices']} |")
    lines += [
        "",
        "The series comparison is training-free (one threshold set on untouched volumes), so every tamper method is "
        "unseen by it. 2 mm sagittal brain slices change a lot from one to the next, and the tamper methods match "
        "the local intensity and grain of the slice they edit: a lesion of this size stays inside the natural "
        "slice-to-slice variation more often than not.",
        "",
    ]
    return "\n".join(lines)


@register_evaluation("series")
def evaluate_series(record: Recorder, *, data: Path, n: int | None = None, seed: int = 0) -> Section:
    """Series consistency on DICOM series made from ``data/mri_brain``: untouched and one tampered slice per method.

    Args:
        data: folder with ``mri_brain/`` (NIfTI volumes).
        n: IXI volumes to use (default all); the TCGA T1 volume is always added.
    """
    res = evaluate(Path(data), n, seed)
    summary = summarize(res)
    for group, u in summary["untouched"].items():
        record(metric="flagged_slices", value=u["flagged_slices"] / max(u["slices"], 1), subset=group,
               n_real=u["slices"])
    for s in summary["methods"]:
        record.figures({"detected": s["detected"], "on_lesion": s["on_lesion"], "median_z": s["median_z"]},
                       subset=f"{s['method']}:{s['radius_mm']:g}mm", n_fake=s["n"])
    return Section("series", "DICOM series consistency", render(res, summary))
