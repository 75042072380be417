"""Train the pixel detector suite (frequency, cnn) from real and synthetic images: prepare format-path variants,
fit each analyzer (its own ``forensics/analyzers/<name>/train.py``), calibrate them (across generator families when
there are several), fit the fusion, write the weights and a model card.

Used by ``medaudit train detector`` (through ``benchmarks.train_detector``) and by the benchmarks. Works on arrays
or :class:`MedicalImage` records handed down by the caller; it never imports ``generators`` (DESIGN.md: forensics
depends on third-party libraries only).

What makes the training format-fair (research/generalization_probe.md):
- both classes pass through the same random :func:`forensics.formatpath.format_path`;
- real images are also taken down to each generator's native size and back, as *negatives*, so "upsampled" or
  "low resolution" never means "synthetic";
- train and validation are split by source image (all variants of one file land on the same side);
- calibration (Platt scaling of the raw logit) is fitted on validation only and stored as JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensics.atomic import atomic_path, write_text
from forensics.calibration import Calibrator
from forensics.formatpath import STANDARD_SIZE, format_path, standardize, to_gray
from forensics.metrics import ece, roc_auc
from forensics.records import MedicalImage

#: Training works on images whose short side is capped here (area resize) - it bounds memory and time; the
#: format path then resizes 0.5-1.5x and ``standardize`` brings everything to 256 px.
PRESHRINK_SIDE = 512


# ---------------------------------------------------------------------------------------------- data
def source_split(group: str, *, val_fraction: float = 0.2, test_fraction: float = 0.0, salt: str = "medaudit") -> str:
    """``train``, ``val`` or ``test`` for a source id (file name, generator+seed), by hash: stable across runs and
    machines, and every variant of one source lands on the same side."""
    h = int.from_bytes(hashlib.sha256(f"{salt}:{group}".encode()).digest()[:8], "big") / 2**64
    if h < test_fraction:
        return "test"
    if h < test_fraction + val_fraction:
        return "val"
    return "train"


def _pixels(item: np.ndarray | MedicalImage) -> np.ndarray:
    x = item.pixels if isinstance(item, MedicalImage) else item
    return np.asarray(x, dtype=np.float32)


def preshrink(pixels: np.ndarray, side: int = PRESHRINK_SIDE) -> np.ndarray:
    """Grayscale, then area-resize so the short side is at most ``side``."""
    import cv2

    x = to_gray(pixels)
    h, w = x.shape
    s = side / min(h, w)
    if s < 1:
        x = cv2.resize(x, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return x


@dataclass
class VariantSet:
    """Format-path variants of source images: ``images`` float16 (n, S, S) standardized at the CNN's size,
    ``features`` float64 (n, d) frequency features (computed at :data:`STANDARD_SIZE`)."""

    images: np.ndarray
    features: np.ndarray
    label: np.ndarray
    source: np.ndarray  # index into the caller's list of sources
    native: np.ndarray  # True when the variant took a native-size round trip
    kind: np.ndarray  # object: "real" or the generator name of a synthetic source

    def subset(self, mask: np.ndarray) -> VariantSet:
        return VariantSet(*(getattr(self, f)[mask] for f in _FIELDS))

    @staticmethod
    def concat(sets: Sequence[VariantSet]) -> VariantSet:
        return VariantSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in _FIELDS))

    def save(self, path: str | Path) -> None:
        """A cache file (``.npz``, no pickled objects)."""
        arrays = {f: getattr(self, f) for f in _FIELDS}
        arrays["kind"] = arrays["kind"].astype(str)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> VariantSet:
        with np.load(path, allow_pickle=False) as z:
            return cls(*(z[f].astype(object) if f == "kind" else z[f] for f in _FIELDS))


def split_by_source(v: VariantSet, groups: Sequence[str], *, val_fraction: float = 0.2,
                    seed: int = 0) -> tuple[VariantSet, VariantSet]:
    """(train, val) of one variant set: ``groups[v.source[i]]`` decides the side of variant ``i``."""
    salt = f"medaudit-train-{seed}"
    is_val_src = np.array([source_split(g, val_fraction=val_fraction, salt=salt) == "val" for g in groups])
    if len(is_val_src) > 1 and is_val_src.all():  # tiny sets: both sides need examples
        is_val_src[0] = False
    if len(is_val_src) > 1 and not is_val_src.any():
        is_val_src[-1] = True
    m = is_val_src[v.source]
    return v.subset(~m), v.subset(m)


_FIELDS = ("images", "features", "label", "source", "native", "kind")


def make_variants(
    items: Sequence[np.ndarray | MedicalImage],
    label: int,
    *,
    n_variants: int,
    rng: np.random.Generator,
    native_sizes: Sequence[int] = (),
    p_native: float = 0.5,
    size: int = STANDARD_SIZE,
    cnn_size: int | None = None,
    kinds: Sequence[str] | None = None,
    progress: bool = False,
    desc: str = "",
) -> VariantSet:
    """Put every item ``n_variants`` times through the format path, standardize and extract frequency features.

    For real images (``native_sizes`` given) each variant picks one native size at random and takes the round trip
    with probability ``p_native``. ``size`` is the frequency analyzer's standard side, ``cnn_size`` the CNN's
    (default: the bundled CNN config's); both are standardized from the same format-path output.
    """
    from forensics.analyzers.cnn.model import DEFAULT_CONFIG

    cnn_size = cnn_size or DEFAULT_CONFIG["size"]
    from forensics.analyzers.frequency.features import extract_features

    images, feats, src, nat = [], [], [], []
    it = range(len(items))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=desc or f"variants (label {label})", file=sys.stderr, leave=False)
    for i in it:
        base = preshrink(_pixels(items[i]))
        for _ in range(n_variants):
            ns = int(rng.choice(np.asarray(native_sizes))) if len(native_sizes) else None
            took_native = ns is not None and rng.random() < p_native
            x = format_path(base, rng, native_size=ns if took_native else None, p_native=1.0)
            images.append(standardize(x, cnn_size).astype(np.float16))
            feats.append(extract_features(standardize(x, size)))
            src.append(i)
            nat.append(took_native)
    n = len(images)
    return VariantSet(
        images=np.stack(images) if n else np.zeros((0, cnn_size, cnn_size), np.float16),
        features=np.stack(feats) if n else np.zeros((0, 0)),
        label=np.full(n, label, dtype=int),
        source=np.asarray(src, dtype=int),
        native=np.asarray(nat, dtype=bool),
        kind=np.asarray([(kinds[i] if kinds is not None else ("real" if label == 0 else "synthetic")) for i in src],
                        dtype=object),
    )


# ---------------------------------------------------------------------------------------------- fusion
def fit_fusion(logits: dict[str, np.ndarray], y: np.ndarray) -> dict[str, Any]:
    """Weights, gain and bias for :func:`forensics.fusion.fuse` (``bias + gain * sum(w * logit) / sum(w)``).

    The weights are a grid search of convex combinations of the analyzers' calibrated logits; gain and bias are a
    Platt fit of the combined logit (averaging two partly independent logits leaves them under-confident). The
    choice minimizes the class-balanced log-loss, as the analyzers' own calibration does."""
    names = sorted(logits)
    y = np.asarray(y).astype(int)
    grid = _simplex_grid(len(names))
    sample_w = np.where(y == 1, 0.5 / max(1, y.sum()), 0.5 / max(1, (1 - y).sum()))
    best: tuple[float, Any] = (math.inf, None)
    for ws in grid:
        z = sum(wi * logits[n] for wi, n in zip(ws, names, strict=True)) / sum(ws)
        cal = Calibrator.fit(z, y)
        p = np.clip(cal(z), 1e-6, 1 - 1e-6)
        ll = -float(np.sum(sample_w * (y * np.log(p) + (1 - y) * np.log(1 - p))))
        if ll < best[0]:
            best = (ll, (ws, cal))
    ws, cal = best[1]
    return {"pixel_weights": {n: round(float(w), 3) for n, w in zip(names, ws, strict=True)},
            "pixel_gain": round(cal.a, 3), "pixel_bias": round(cal.b, 3), "val_logloss": round(best[0], 4)}


def _simplex_grid(n: int, steps: int = 20) -> list[list[float]]:
    """Weight vectors of ``n`` analyzers on a grid of the simplex, every weight at least 1/``steps`` (a fused score
    never drops an analyzer entirely: the one left out would not explain the score)."""
    import itertools

    if n == 1:
        return [[1.0]]
    return [[k / steps for k in ks] + [1 - sum(ks) / steps] for ks in itertools.product(range(1, steps), repeat=n - 1)
            if sum(ks) <= steps - 1]


def fused_probability(fusion: dict[str, Any], logits: dict[str, np.ndarray]) -> np.ndarray:
    """What :func:`forensics.fusion.fuse` gives for these calibrated logits (of :func:`_logit`, every analyzer
    present), with the weights, gain and bias of a :func:`fit_fusion` result."""
    from forensics.fusion import FusionConfig, pixel_probability

    config = FusionConfig(pixel_weights=fusion["pixel_weights"], pixel_gain=fusion["pixel_gain"],
                          pixel_bias=fusion["pixel_bias"])
    return pixel_probability(list(logits.items()), config)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


# ---------------------------------------------------------------------------------------------- entry point
def train_detectors(
    real: Sequence[np.ndarray | MedicalImage],
    fake: Sequence[np.ndarray | MedicalImage],
    *,
    out_dir: str | Path,
    real_groups: Sequence[str] | None = None,
    fake_groups: Sequence[str] | None = None,
    fake_kinds: Sequence[str] | None = None,
    families: dict[str, str] | None = None,
    native_sizes: Sequence[int] = (64,),
    seed: int = 0,
    time_budget_s: float | None = None,
    analyzers: Sequence[str] = ("frequency", "cnn"),
    real_variants: int = 4,
    fake_variants: int = 2,
    val_fraction: float = 0.2,
    frequency_classifier: str = "logistic",
    cnn_config: dict[str, Any] | None = None,
    cnn_max_steps: int = 3000,
    cnn_batch_size: int = 64,
    data_note: str = "",
    progress: bool = False,
) -> dict[str, Any]:
    """Train, calibrate and save the pixel detectors.

    Args:
        real: real images, float (H, W) or (H, W, 3) in [0, 1] or MedicalImages.
        fake: synthetic images, same forms (a generator's native output, e.g. 64 x 64).
        out_dir: where ``frequency/``, ``cnn/``, ``fusion.json``, ``MODEL_CARD.md`` and ``training_report.json`` go
            (the layout of ``forensics/weights``; pass it to an analyzer as ``weights_dir``).
        real_groups / fake_groups: source id per image (e.g. the file path; several crops of one patient share
            one id); the train/validation split is by these ids. Default: one id per image.
        fake_kinds: a label per fake (generator name or folder) - for the per-kind validation numbers and for
            ``families``.
        families: generator family of the fake kinds to hold out in turn for calibration (``{"cxr_gan": "gan"}``,
            see :func:`fit_and_save`); default: none (calibration on the validation split).
        native_sizes: generators' native sides in px; reals take these round trips as negatives.
        seed: seeds the format path, the split salt and the networks.
        time_budget_s: wall-clock budget of the whole call; the CNN gets what is left after the data preparation.
        analyzers: which of ``frequency``, ``cnn`` to train.
        real_variants / fake_variants: format-path draws per source image.
        val_fraction: share of source ids held out for calibration and validation metrics.
        data_note: free text for the model card (data sets, licences).
        progress: tqdm bars on stderr.

    Returns:
        The training report (also written to ``out_dir/training_report.json``).
    """
    t_start = time.perf_counter()
    train, val = prepare_variants(real, fake, real_groups=real_groups, fake_groups=fake_groups,
                                  fake_kinds=fake_kinds, native_sizes=native_sizes, seed=seed,
                                  real_variants=real_variants, fake_variants=fake_variants,
                                  val_fraction=val_fraction,
                                  cnn_size=(cnn_config or {}).get("size"), progress=progress)
    data = {"real_sources": len(real), "synthetic_sources": len(fake), "real_variants": real_variants,
            "synthetic_variants": fake_variants, "native_sizes": list(native_sizes), "note": data_note}
    prep_s = time.perf_counter() - t_start
    return fit_and_save(train, val, out_dir=out_dir, families=families, data=data, seed=seed, analyzers=analyzers,
                        time_budget_s=None if time_budget_s is None else time_budget_s - prep_s, prep_s=prep_s,
                        frequency_classifier=frequency_classifier,
                        cnn_config=cnn_config, cnn_max_steps=cnn_max_steps, cnn_batch_size=cnn_batch_size,
                        progress=progress)


def prepare_variants(
    real: Sequence[np.ndarray | MedicalImage],
    fake: Sequence[np.ndarray | MedicalImage],
    *,
    real_groups: Sequence[str] | None = None,
    fake_groups: Sequence[str] | None = None,
    fake_kinds: Sequence[str] | None = None,
    native_sizes: Sequence[int] = (64,),
    seed: int = 0,
    real_variants: int = 4,
    fake_variants: int = 2,
    val_fraction: float = 0.2,
    cnn_size: int | None = None,
    progress: bool = False,
) -> tuple[VariantSet, VariantSet]:
    """Format-path variants of both classes, split into (train, val) by source id (see :func:`train_detectors`)."""
    real_groups = list(real_groups) if real_groups is not None else [f"real:{i}" for i in range(len(real))]
    fake_groups = list(fake_groups) if fake_groups is not None else [f"fake:{i}" for i in range(len(fake))]
    if len(real_groups) != len(real) or len(fake_groups) != len(fake):
        raise ValueError("groups must have one entry per image")
    if not len(real) or not len(fake):
        raise ValueError("training needs real and synthetic images")
    rng = np.random.default_rng(seed)
    r = make_variants(real, 0, n_variants=real_variants, rng=rng, native_sizes=native_sizes, cnn_size=cnn_size,
                      progress=progress, desc="real variants")
    f = make_variants(fake, 1, n_variants=fake_variants, rng=rng, kinds=fake_kinds, cnn_size=cnn_size,
                      progress=progress, desc="synthetic variants")
    r_train, r_val = split_by_source(r, real_groups, val_fraction=val_fraction, seed=seed)
    f_train, f_val = split_by_source(f, fake_groups, val_fraction=val_fraction, seed=seed)
    return VariantSet.concat([r_train, f_train]), VariantSet.concat([r_val, f_val])


@dataclass
class PixelModels:
    """The pixel analyzers fitted on one training set (uncalibrated)."""

    frequency: Any = None  # (FrequencyDetector, reference quantiles)
    cnn: Any = None  # (model, config, training log)

    @classmethod
    def fit(cls, train: VariantSet, analyzers: Sequence[str], *, seed: int, frequency_classifier: str,
            cnn_kw: dict[str, Any]) -> PixelModels:
        from forensics.analyzers.cnn.train import fit_cnn
        from forensics.analyzers.frequency.train import fit_frequency

        models = cls()
        if "frequency" in analyzers:
            models.frequency = fit_frequency(train.features, train.label, classifier=frequency_classifier, seed=seed)
        if "cnn" in analyzers:
            models.cnn = fit_cnn(train.images, train.label, seed=seed, **cnn_kw)
        return models

    def logits(self, v: VariantSet) -> dict[str, np.ndarray]:
        """Raw logits per analyzer of the variants ``v``."""
        from forensics.analyzers.cnn.train import cnn_logits

        out = {}
        if self.frequency is not None:
            out["frequency"] = self.frequency[0].decision_function(v.features)
        if self.cnn is not None:
            out["cnn"] = cnn_logits(self.cnn[0], self.cnn[1], v.images)
        return out

    def save(self, out: Path, calibrators: dict[str, Calibrator], fitted_on: str) -> None:
        from forensics.analyzers.cnn.model import save_checkpoint

        if self.frequency is not None:
            det, reference = self.frequency
            det.save_json(out / "frequency" / "model.json", extra={"reference": reference})
            calibrators["frequency"].save(out / "frequency" / "calibration.json", extra={"fitted_on": fitted_on})
        if self.cnn is not None:
            save_checkpoint(self.cnn[0], self.cnn[1], out / "cnn")
            calibrators["cnn"].save(out / "cnn" / "calibration.json", extra={"fitted_on": fitted_on})


def _families(v: VariantSet, families: dict[str, str]) -> np.ndarray:
    """The generator family of each synthetic variant; "" for real ones and for kinds ``families`` leaves out."""
    return np.array([families.get(k, "") if y == 1 else "" for k, y in zip(v.kind, v.label, strict=True)],
                    dtype=object)


def held_out_families(train: VariantSet, val: VariantSet, families: dict[str, str]) -> list[str]:
    """Families to hold out in turn for calibration: those with synthetic variants in both splits, when there are
    at least two (with one, there is nothing left to train on)."""
    common = set(_families(train, families)[train.label == 1]) & set(_families(val, families)[val.label == 1])
    common.discard("")
    return sorted(common) if len(common) >= 2 else []


def cross_family_logits(train: VariantSet, val: VariantSet, families: dict[str, str], held: Sequence[str],
                        fit: Any) -> tuple[dict[str, np.ndarray], VariantSet]:
    """Raw logits of models that never saw a family, on that family's validation fakes and on every validation
    real, pooled over the held-out families (each real appears once per family).

    ``fit(train_subset) -> PixelModels``. Returns ({analyzer: logits}, the matching validation variants).
    """
    ft, fv = _families(train, families), _families(val, families)
    logits: dict[str, list[np.ndarray]] = {}
    parts = []
    for f in held:
        part = val.subset((val.label == 0) | (fv == f))
        for name, z in fit(train.subset(ft != f)).logits(part).items():
            logits.setdefault(name, []).append(z)
        parts.append(part)
    return {n: np.concatenate(z) for n, z in logits.items()}, VariantSet.concat(parts)


def fit_and_save(
    train: VariantSet,
    val: VariantSet,
    *,
    out_dir: str | Path,
    families: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
    seed: int = 0,
    analyzers: Sequence[str] = ("frequency", "cnn"),
    time_budget_s: float | None = None,
    prep_s: float = 0.0,
    frequency_classifier: str = "logistic",
    cnn_config: dict[str, Any] | None = None,
    cnn_max_steps: int = 3000,
    cnn_batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit, calibrate and save the detectors from prepared variants; returns the training report.

    Calibration (Platt per analyzer, then the fusion weights) is fitted **across generator families** when
    ``families`` names two or more (it maps a variant's kind - the generator name - to its family, e.g.
    ``{"cxr_gan": "gan", "cxr_vae": "vae"}``): for each family in turn the analyzers are refitted without it and score
    its validation fakes and the validation reals, and the calibration is fitted on these pooled scores, then applied
    to the models fitted on everything (scikit-learn's ``CalibratedClassifierCV`` with ``ensemble=False``, grouped by
    family). Seen generators are separated almost perfectly, so a calibration fitted on them alone puts an unseen
    generator's fakes far below ``high``; this one is fitted on what an unseen generator looks like. Kinds left out of
    ``families`` are always trained on (e.g. the only generator of a modality: holding it out would ask about a
    modality never seen as fake, not about a new generator). Otherwise calibration is fitted on the validation split.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    families = dict(families or {})
    held = held_out_families(train, val, families)
    fits_left = 1 + len(held)

    def fit(subset: VariantSet) -> PixelModels:
        nonlocal fits_left
        left = None
        if time_budget_s is not None:  # the CNN fits still to come share the time left equally
            left = max(10.0, (time_budget_s - (time.perf_counter() - t_start) - 15) / fits_left)
        fits_left -= 1
        return PixelModels.fit(subset, analyzers, seed=seed, frequency_classifier=frequency_classifier,
                               cnn_kw={"config": cnn_config, "time_budget_s": left, "max_steps": cnn_max_steps,
                                       "batch_size": cnn_batch_size, "progress": progress})

    models = fit(train)
    val_z = models.logits(val)
    if held:
        cal_z, cal_set = cross_family_logits(train, val, families, held, fit)
        fitted_on = f"validation scores of models trained without each generator family in turn ({', '.join(held)})"
    else:
        cal_z, cal_set = val_z, val
        fitted_on = "validation split"
    calibrators = {n: Calibrator.fit(z, cal_set.label) for n, z in cal_z.items()}

    def calibrated(logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: _logit(calibrators[n](z)) for n, z in logits.items()}

    models.save(out, calibrators, fitted_on)
    fusion = fit_fusion(calibrated(cal_z), cal_set.label)

    report: dict[str, Any] = {"seed": seed, "data": _data_summary(train, val, data), "prep_wall_s": round(prep_s, 1),
                              "calibration": {"method": "platt", "fitted_on": fitted_on, "held_out_families": held},
                              "analyzers": {}}
    if models.frequency is not None:
        report["analyzers"]["frequency"] = {"classifier": frequency_classifier,
                                            "features": int(train.features.shape[1])}
    if models.cnn is not None:
        report["analyzers"]["cnn"] = {"arch": models.cnn[1]["arch"], **models.cnn[2]}
    for n, z in val_z.items():
        report["analyzers"][n].update(_val_metrics(val.label, calibrators[n](z), val.native, val.kind))
    fusion["val"] = _val_metrics(val.label, fused_probability(fusion, calibrated(val_z)), val.native, val.kind)
    if held:  # the honest figure: every family scored by models that had not seen it
        fusion["val_unseen_family"] = _val_metrics(cal_set.label, fused_probability(fusion, calibrated(cal_z)),
                                                   cal_set.native, _families(cal_set, families))
    write_text(out / "fusion.json", json.dumps(fusion, indent=1))
    report["fusion"] = fusion
    report["wall_s"] = round(time.perf_counter() - t_start + prep_s, 1)
    report["files"] = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    write_model_card(out, report)
    write_text(out / "training_report.json", json.dumps(report, indent=1, default=str))
    return report


def _data_summary(train: VariantSet, val: VariantSet, data: dict[str, Any] | None) -> dict[str, Any]:
    data = dict(data or {})
    data.update({
        "train_variants": int(len(train.label)), "val_variants": int(len(val.label)),
        "train_real": int((train.label == 0).sum()), "train_synthetic": int((train.label == 1).sum()),
        "val_real": int((val.label == 0).sum()), "val_synthetic": int((val.label == 1).sum()),
    })
    data.setdefault("real_sources", len(set(train.source[train.label == 0]) | set(val.source[val.label == 0])))
    data.setdefault("synthetic_sources", len(set(train.source[train.label == 1]) | set(val.source[val.label == 1])))
    for k in ("real_variants", "synthetic_variants", "native_sizes", "note"):
        data.setdefault(k, "")
    return data


def _val_metrics(y: np.ndarray, p: np.ndarray, native: np.ndarray, kinds: np.ndarray) -> dict[str, Any]:
    y, p = np.asarray(y), np.asarray(p)
    real = y == 0
    out = {
        "val_auc": round(roc_auc(y, p), 4),
        "val_ece": round(ece(y, p), 4),
        "val_fpr_at_0.9": round(float((p[real] >= 0.9).mean()), 4) if real.any() else None,
        "val_tpr_at_0.9": round(float((p[~real] >= 0.9).mean()), 4) if (~real).any() else None,
    }
    if (real & native).any():
        out["val_fpr_at_0.9_native_roundtrip_reals"] = round(float((p[real & native] >= 0.9).mean()), 4)
    for k in sorted(set(kinds[~real].tolist())):
        m = real | (kinds == k)
        out[f"val_auc_{k}"] = round(roc_auc(y[m], p[m]), 4)
        out[f"val_tpr_at_0.9_{k}"] = round(float((p[kinds == k] >= 0.9).mean()), 4)
    return out


def write_model_card(out: Path, report: dict[str, Any]) -> Path:
    """``MODEL_CARD.md`` next to the weights: data, licence, sizes, steps, wall time, validation metrics."""
    d = report["data"]
    lines = [
        "# medaudit pixel detectors - model card",
        "",
        "Detectors of synthetic images trained by `forensics.training.train_detectors` "
        f"(medaudit, Python {platform.python_version()}, {platform.machine()}).",
        "",
        "## Data",
        "",
        f"- real source images: {d['real_sources']}; synthetic: {d['synthetic_sources']}",
        f"- format-path variants per image: real {d['real_variants']}, synthetic {d['synthetic_variants']}; "
        f"native-size round trips of reals (as negatives): {d['native_sizes']}",
        f"- train / validation variants: {d['train_variants']} / {d['val_variants']} (split by source image)",
    ]
    if d.get("note"):
        lines += ["", d["note"]]
    lines += ["", "## Models", ""]
    for name, a in report["analyzers"].items():
        desc = {k: v for k, v in a.items() if not k.startswith("val_")}
        lines.append(f"- **{name}**: " + ", ".join(f"{k} {v}" for k, v in desc.items()))
    fusion = report["fusion"]
    lines += ["", "## Calibration", "", f"Platt scaling per analyzer, then the fusion (`pixel_weights` "
              f"{fusion['pixel_weights']}, `pixel_gain` {fusion['pixel_gain']}, `pixel_bias` {fusion['pixel_bias']}; "
              f"fusion.json), fitted on {report['calibration']['fitted_on']}."]
    lines += ["", "## Validation (held-out source images, calibrated scores)", "",
              "| analyzer | metric | value |", "|---|---|---|"]
    tables = [*report["analyzers"].items(), ("fusion", fusion["val"])]
    if "val_unseen_family" in fusion:
        tables.append(("fusion, family unseen in training", fusion["val_unseen_family"]))
    for name, a in tables:
        for k, v in a.items():
            if k.startswith("val_"):
                lines.append(f"| {name} | {k[4:]} | {v} |")
    lines += ["", "## Files", "", "| file | bytes |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report.get("files", {}).items()]
    lines += ["", f"Wall time: {report['wall_s']} s (data preparation {report['prep_wall_s']} s).", "",
              "Limits: validation numbers come from the generators of training (except the rows of a family unseen in "
              "training); see docs/BENCHMARKS.md for "
              "unseen-generator and perturbation results. Scores are calibrated for a 50/50 prior (classes weighted "
              "equally in the Platt fit); base rates in real claims are far lower.", ""]
    return write_text(out / "MODEL_CARD.md", "\n".join(lines))
