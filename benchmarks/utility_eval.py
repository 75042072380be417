"""``medaudit bench utility``: what synthetic images are worth to a classifier, measured on held-out real images.

Per labelled task (:data:`TASKS`: bacterial vs viral pneumonia on chest X-rays, benign vs malignant dermoscopy,
normal vs abnormal mammograms) a small timm CNN is trained from random weights under each condition of
:data:`CONDITIONS` (real only, synthetic only, real + synthetic at 1:1, 1:4, 1:10, and 25% / 50% of the real images
topped up with synthetic to the full count) and scored by ROC-AUC on the same held-out real images.

- **Split**: by patient (``person<N>`` of Kermany, the ``patient`` column of the mini-MIAS labels; dermoscopy images
  are their own group). A patient is held out when the project's held-out rule
  (:func:`benchmarks.datafiles.is_heldout`) holds for its first file, so every image of one patient falls on one
  side and the test images are those the bundled detectors never trained on. With ``folds`` (for small sets such
  as the 51 mini-MIAS films): k-fold cross-validation over patients instead, a generator per fold trained
  without it (``generators.train_bundled --fold K/N``), every image tested once.
- **Synthetic images** come from a class-conditional generator through ``generators.api.generate`` (stamped and
  written as files, in the task's real format: JPEG for the JPEG data sets, lossless 8-bit PNG for the 8-bit PGM
  mammograms) and are cached per generator, class and guidance, so a rerun draws only what is missing. Their class
  mix follows the real training split's.
- **Both sources are read the same way**: decoded by OpenCV from the file, center-cropped square, area-resized to
  the classifier's side; per-image standardized at training and test time.
- **Training** is a fixed number of steps per task for every condition (same compute, whatever the data count),
  class-balanced batches drawn uniformly within each class from whatever the condition holds; flips where the
  anatomy allows, small shifts.
- **Figures**: AUC averaged over seeds, with a 95% percentile interval of a bootstrap that resamples test patients
  (the same resamples for every condition, so differences to real-only are paired); "helps" / "hurts" in the
  summary means the paired interval of the difference excludes zero.

A task whose data folder or class-conditional generator is missing is reported as not measured, as is a
condition that needs more synthetic images than ``max_synthetic`` allows.
"""

from __future__ import annotations

import csv
import inspect
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.evaluations import Recorder, Section, register_evaluation

DEFAULT_CACHE = Path(".cache") / "medaudit-bench" / "utility"
ARCH = "resnet10t"


@dataclass(frozen=True)
class Task:
    """A binary classification task on one data folder; class 1 is the positive (scored) class."""

    name: str
    folder: str
    classes: tuple[str, str]
    #: Generator class labels per task class (several: sampled in equal shares).
    generator_classes: tuple[tuple[str, ...], tuple[str, ...]]
    channels: int
    #: ``generate`` format matching the real files (lossy JPEG vs lossless 8-bit).
    fmt: str
    #: Horizontal flips as augmentation (not for chest X-rays: the heart is on the left).
    hflip: bool
    description: str
    #: What one split group is (the patient where the data says who it is).
    group: str = "patients"


TASKS: dict[str, Task] = {
    "cxr": Task("cxr", "cxr_kermany", ("bacterial", "viral"), (("bacterial",), ("viral",)), 1, "jpeg", False,
                "chest X-ray, bacterial vs viral pneumonia"),
    "derm": Task("derm", "derm_isic", ("benign", "malignant"), (("benign",), ("malignant",)), 3, "jpeg", True,
                 "dermoscopy, benign naevus vs melanoma", "images (the labels name no patient)"),
    "mammo": Task("mammo", "mammo", ("normal", "abnormal"), (("normal",), ("benign", "malignant")), 1, "png", True,
                  "mammography, normal vs abnormal (benign or malignant)"),
}


@dataclass(frozen=True)
class Condition:
    """``real_share`` of each class's real training images, plus ``ratio`` synthetic per real training image
    (``None``: synthetic tops the class up to its full real count)."""

    name: str
    real_share: float
    ratio: float | None

    def counts(self, n_class: int) -> tuple[int, int]:
        """(real, synthetic) images of a class with ``n_class`` real training images."""
        real = round(self.real_share * n_class)
        syn = n_class - real if self.ratio is None else round(self.ratio * n_class)
        return real, syn


CONDITIONS = (
    Condition("real only", 1.0, 0.0),
    Condition("synthetic only", 0.0, None),
    Condition("real + synthetic 1:1", 1.0, 1.0),
    Condition("real + synthetic 1:4", 1.0, 4.0),
    Condition("real + synthetic 1:10", 1.0, 10.0),
    Condition("25% real + synthetic", 0.25, None),
    Condition("50% real + synthetic", 0.5, None),
)
BASELINE = CONDITIONS[0].name
#: Reference row when ``max_real`` caps the real training images: all of them, no synthetic.
REFERENCE = "all real images (no cap)"
#: The bundled class-conditional generators of each task (``--generator TASK=NAME`` overrides).
DEFAULT_GENERATORS = {"cxr": "cxr_ldm", "derm": "derm_ldm", "mammo": "mammo_ldm"}


@dataclass
class Item:
    path: Path
    label: int
    patient: str


@dataclass
class TaskResult:
    task: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    not_measured: str | None = None
    notes: list[str] = field(default_factory=list)


# --- data ---------------------------------------------------------------------------------------------------------
_KERMANY = re.compile(r"(person\d+)_(bacteria|virus)_", re.I)


def _labels_csv(folder: Path) -> list[dict[str, str]]:
    path = folder / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (the task's labels)")
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def list_items(task: Task, folder: Path) -> list[Item]:
    """The labelled images of ``folder`` for ``task``, sorted by file name; unlabelled and missing files left out."""
    items = []
    if task.name == "cxr":
        for p in sorted(folder.iterdir()):
            m = _KERMANY.match(p.name)
            if m:
                items.append(Item(p, int(m.group(2).lower() == "virus"), m.group(1)))
        return items
    for row in _labels_csv(folder):
        p = folder / row["file"]
        if task.name == "derm":
            label, patient = row.get("benign_malignant", "").strip(), row["file"]
            y = {"benign": 0, "malignant": 1}.get(label)
        else:  # mammo: normal vs benign or malignant, grouped by woman
            label, patient = row.get("label", "").strip(), row.get("patient") or row["file"]
            y = {"normal": 0, "benign": 1, "malignant": 1}.get(label)
        if y is not None and p.is_file():
            items.append(Item(p, y, patient))
    return sorted(items, key=lambda it: it.path.name)


def split_by_patient(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """(train, test): a patient is test when :func:`benchmarks.datafiles.is_heldout` holds for its first file."""
    from benchmarks.datafiles import is_heldout

    first: dict[str, Path] = {}
    for it in sorted(items, key=lambda it: it.path.name):
        first.setdefault(it.patient, it.path)
    held = {pt for pt, p in first.items() if is_heldout(p)}
    return [it for it in items if it.patient not in held], [it for it in items if it.patient in held]


def patient_folds(items: list[Item], n_folds: int) -> dict[str, int]:
    """{patient: fold in range(n_folds)}: patients stratified by label (abnormal if any of their images is), in a
    fixed pseudo-random order (sha256 of the name) within each label, dealt round robin. The same for every run, so
    a generator trained without fold k (``generators.train_bundled --fold k/n``) and the benchmark agree."""
    import hashlib

    label: dict[str, int] = {}
    for it in items:
        label[it.patient] = max(label.get(it.patient, 0), it.label)
    order = sorted(label, key=lambda pt: (label[pt], hashlib.sha256(pt.encode()).hexdigest()))
    return {pt: i % n_folds for i, pt in enumerate(order)}


def task_of_folder(folder: str) -> Task:
    """The utility task whose data folder is ``folder``."""
    for task in TASKS.values():
        if task.folder == folder:
            return task
    raise ValueError(f"no utility task uses the data folder {folder!r} (tasks: {', '.join(TASKS)})")


def fold_files(folder: Path, fold: int, n_folds: int) -> set[str]:
    """Names of the files of ``folder`` whose patient falls in ``fold`` of ``n_folds`` (see :func:`patient_folds`)."""
    items = list_items(task_of_folder(folder.name), folder)
    folds = patient_folds(items, n_folds)
    return {it.path.name for it in items if folds[it.patient] == fold}


def read_pixels(path: Path, size: int, channels: int) -> np.ndarray:
    """uint8 (size, size) or (size, size, 3): decoded by OpenCV (JPEG, PNG, PGM alike), center square, area resize."""
    import cv2

    from forensics.errors import InputError
    from forensics.io.guarded import read_file

    x = cv2.imdecode(np.frombuffer(read_file(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if x is None:
        raise InputError("corrupt_image", f"OpenCV could not decode {path.name}")
    x = x.astype(np.float32) / (65535.0 if x.dtype == np.uint16 else 255.0)
    if x.ndim == 3:
        x = x[..., :3][..., ::-1] if x.shape[2] >= 3 else x[..., 0]
    if channels == 1 and x.ndim == 3:
        from forensics.formatpath import to_gray

        x = to_gray(x)
    elif channels == 3 and x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    h, w = x.shape[:2]
    s = min(h, w)
    x = x[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    x = cv2.resize(np.ascontiguousarray(x), (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_CUBIC)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def load_all(paths: list[Path], size: int, channels: int) -> tuple[np.ndarray, list[int]]:
    """Pixels of every readable file and the indices of those read (errors go to stderr and are skipped)."""
    from forensics.errors import InputError

    out, ok = [], []
    for i, p in enumerate(paths):
        try:
            out.append(read_pixels(p, size, channels))
            ok.append(i)
        except (InputError, OSError) as e:
            print(f"utility: skipped {p}: {e}", file=sys.stderr)
    shape = (0, size, size) if channels == 1 else (0, size, size, 3)
    return (np.stack(out) if out else np.zeros(shape, np.uint8)), ok


# --- synthetic pool -----------------------------------------------------------------------------------------------
def check_conditional(generator: str, task: Task) -> str | None:
    """Why ``generator`` cannot serve ``task`` (None when it can): missing, unconditional or lacking a class."""
    from generators.api import generator_config, load_generator

    try:
        cfg = generator_config(generator)
        gen = load_generator(generator, device="cpu")
    except (FileNotFoundError, ValueError, KeyError) as e:
        return f"generator {generator!r} not available: {e}"
    if "class_label" not in inspect.signature(gen.sample).parameters:
        return f"generator {generator!r} is unconditional ({cfg.get('family')}): no class labels to sample"
    known = generator_classes(cfg)
    wanted = [c for cs in task.generator_classes for c in cs]
    missing = [c for c in wanted if known is not None and c not in known]
    if missing:
        return f"generator {generator!r} has no class {', '.join(missing)} (it knows {', '.join(known or [])})"
    return None


def generator_classes(cfg: dict[str, Any]) -> list[str] | None:
    """The class labels a checkpoint's config names (``params.classes`` or ``data.classes``), None if it names none."""
    for where in (cfg.get("params") or {}, cfg.get("data") or {}, cfg):
        classes = where.get("classes")
        if isinstance(classes, dict):
            return list(classes)
        if isinstance(classes, (list, tuple)):
            return [str(c) for c in classes]
    return None


def sampling_variant(generator: str, steps: int, cache: Path) -> str:
    """A checkpoint dir that samples ``generator``'s weights with ``steps`` DDIM steps (its ``config.json`` with
    ``params.num_inference_steps`` changed, the weights file linked), so the images still come from ``generate``."""
    import json
    import os
    import shutil

    from generators.api import _resolve
    from generators.base import CONFIG_FILE, WEIGHTS_FILE, read_config
    from generators.sources import file_sha256

    name, path = _resolve(generator)
    cfg = read_config(path)
    if "num_inference_steps" not in (cfg.get("params") or {}):
        raise ValueError(f"generator {generator!r} ({cfg.get('family')}) has no sampling steps to set")
    out = cache / "checkpoints" / f"{name}-{file_sha256(path / WEIGHTS_FILE)[:12]}-steps{steps}"
    if not (out / WEIGHTS_FILE).is_file():
        out.mkdir(parents=True, exist_ok=True)
        cfg["params"]["num_inference_steps"] = int(steps)
        cfg["name"] = f"{name}-steps{steps}"
        (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        try:
            os.link(path / WEIGHTS_FILE, out / WEIGHTS_FILE)
        except OSError:  # another file system
            shutil.copyfile(path / WEIGHTS_FILE, out / WEIGHTS_FILE)
    return str(out)


def synthetic_pool(generator: str, task: Task, per_class: list[int], *, cache: Path, guidance: float | None,
                   progress: bool) -> list[list[Path]]:
    """Files of ``per_class[c]`` samples of each task class (generator classes in equal shares, interleaved),
    generated into ``cache`` where missing: one folder per weights hash, sampling settings, class and guidance."""
    from generators.api import _resolve, generate
    from generators.base import WEIGHTS_FILE
    from generators.sources import file_sha256

    name, path = _resolve(generator)
    # keyed by the weights' hash: retrained weights never reuse an older model's images
    folder = cache / "pools" / f"{name}-{file_sha256(path / WEIGHTS_FILE)[:12]}"
    pools: list[list[Path]] = []
    for c, n in enumerate(per_class):
        parts = task.generator_classes[c]
        shares = [n // len(parts) + (k < n % len(parts)) for k in range(len(parts))]
        lists = []
        for k, (label, m) in enumerate(zip(parts, shares, strict=True)):
            out = folder / f"{label}_guidance-{guidance if guidance is not None else 'default'}"
            kw = {"class_label": label} | ({"guidance": guidance} if guidance is not None else {})
            lists.append(generate(generator, m, out, fmt=task.fmt, seed=10 * c + k, device="cpu",
                                  progress=progress, **kw) if m else [])
        pools.append([p for group in _interleave(lists) for p in group])
    return pools


def _interleave(lists: list[list[Path]]) -> list[list[Path]]:
    """Round robin over ``lists`` (so any prefix has the sub-classes in equal shares), as one-element groups."""
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [[x[i]] for x in lists if i < len(x)]
    return out


# --- classifier ---------------------------------------------------------------------------------------------------
def _batch(x: np.ndarray, rng: np.random.Generator | None, hflip: bool, shift: int):
    """uint8 images -> float tensor (B, C, S, S), per-image standardized; with ``rng`` randomly flipped and shifted."""
    import torch

    t = torch.from_numpy(x).float() / 255.0
    t = t[:, None] if t.ndim == 3 else t.permute(0, 3, 1, 2)
    if rng is not None:
        if hflip:
            flip = torch.from_numpy(rng.random(len(t)) < 0.5)
            t[flip] = t[flip].flip(-1)
        if shift:
            s = t.shape[-1]
            padded = torch.nn.functional.pad(t, (shift,) * 4, mode="reflect")
            dy, dx = rng.integers(0, 2 * shift + 1, size=2)
            t = padded[..., dy : dy + s, dx : dx + s]
    mean = t.mean(dim=(1, 2, 3), keepdim=True)
    std = t.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return ((t - mean) / std).contiguous()


def train_and_score(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, channels: int, steps: int, batch: int,
                    seed: int, hflip: bool, lr: float = 2e-3, arch: str = ARCH) -> np.ndarray:
    """Train ``arch`` from random weights for ``steps`` class-balanced batches; logits of ``x_test``."""
    import timm
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=1, in_chans=channels)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    shift = max(1, x.shape[1] // 16)
    model.train()
    for _ in range(steps):
        idx = np.concatenate([rng.choice(ix, batch // 2) for ix in by_class])
        xb = _batch(x[idx], rng, hflip, shift)
        yb = torch.from_numpy(y[idx].astype(np.float32))[:, None]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        out = [model(_batch(x_test[i : i + 128], None, hflip, 0))[:, 0] for i in range(0, len(x_test), 128)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


# --- metrics ------------------------------------------------------------------------------------------------------
def cluster_resamples(groups: list[str], n_boot: int, seed: int) -> list[np.ndarray]:
    """``n_boot`` index arrays, each the images of test patients drawn with replacement."""
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    members = {g: np.flatnonzero(np.asarray(groups) == g) for g in names}
    return [np.concatenate([members[names[k]] for k in rng.integers(0, len(names), len(names))])
            for _ in range(n_boot)]


def mean_auc(y: np.ndarray, scores: list[np.ndarray], idx: np.ndarray | None = None) -> float:
    """ROC-AUC averaged over seeds' scores (on the images ``idx``); NaN when a class is missing."""
    from forensics.metrics import rank_auc

    yy = y if idx is None else y[idx]
    if yy.min(initial=1) == yy.max(initial=0):
        return math.nan
    return float(np.mean([rank_auc(s[yy == 1], s[yy == 0]) for s in
                          (s if idx is None else s[idx] for s in scores)]))


def auc_with_ci(y: np.ndarray, scores: list[np.ndarray], resamples: list[np.ndarray],
                baseline: list[np.ndarray] | None = None, alpha: float = 0.05) -> dict[str, float]:
    """Seed-mean AUC with its bootstrap interval; with ``baseline`` also the paired difference and its interval."""
    point = mean_auc(y, scores)
    boots = np.array([mean_auc(y, scores, ix) for ix in resamples])
    out = {"auc": point, **_interval(boots, alpha, "auc")}
    if baseline is not None:
        base = np.array([mean_auc(y, baseline, ix) for ix in resamples])
        out |= {"delta": point - mean_auc(y, baseline), **_interval(boots - base, alpha, "delta")}
    return out


def _interval(values: np.ndarray, alpha: float, key: str) -> dict[str, float]:
    v = values[np.isfinite(values)]
    if not len(v):
        return {f"{key}_lo": math.nan, f"{key}_hi": math.nan}
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return {f"{key}_lo": float(lo), f"{key}_hi": float(hi)}


# --- one task -----------------------------------------------------------------------------------------------------
def _subset(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(pool, size=n, replace=False)) if n < len(pool) else pool


@dataclass(frozen=True)
class Settings:
    """How every task is measured (the options of ``medaudit bench utility``)."""

    size: int = 64
    steps: int = 200
    batch: int = 32
    seeds: tuple[int, ...] = (0,)
    n_boot: int = 1000
    guidance: float | None = None
    sampling_steps: int | None = None
    max_real: int | None = None
    max_synthetic: int | None = None
    cache: Path = DEFAULT_CACHE
    #: k-fold cross-validation over patients instead of the held-out split (a generator per fold)
    folds: int | None = None
    generate_only: bool = False
    progress: bool = True


def _plan(n_class: list[int], max_synthetic: int | None) -> tuple[dict[str, list], dict[str, tuple[list, str]]]:
    """({condition: [(real, synthetic) per class]} to run, {condition: (counts, why)} left out)."""
    plan, skipped = {}, {}
    for cond in CONDITIONS:
        counts = [cond.counts(n) for n in n_class]
        total = sum(s for _, s in counts)
        if max_synthetic is not None and total > max_synthetic:
            skipped[cond.name] = (counts, f"needs {total} synthetic images, over --max-synthetic {max_synthetic}")
        else:
            plan[cond.name] = counts
    return plan, skipped


@dataclass
class SplitScores:
    """One train/test split's classifier scores: per condition, one array of test logits per seed."""

    y: np.ndarray
    groups: list[str]
    scores: dict[str, list[np.ndarray]]
    plan: dict[str, list]
    skipped: dict[str, tuple[list, str]]


def task_splits(task: Task, items: list[Item], generator: str, folds: int | None) -> list[tuple[list, list, str]]:
    """[(train, test, generator)]: the held-out split with ``generator``, or with ``folds`` one split per fold of
    :func:`patient_folds`, each with ``generator`` formatted with ``fold=k`` (a model trained without fold k)."""
    if not folds:
        return [(*split_by_patient(items), generator)]
    if "{fold}" not in generator:
        raise ValueError(f"--folds needs a generator per fold: a path with {{fold}} in it, e.g. "
                         f"DIR/{DEFAULT_GENERATORS.get(task.name, 'NAME')}_fold{{fold}}of{folds}, not {generator!r}")
    of = patient_folds(items, folds)
    return [([it for it in items if of[it.patient] != k], [it for it in items if of[it.patient] == k],
             generator.format(fold=k)) for k in range(folds)]


def run_task(task: Task, data: Path, generator: str | None, opts: Settings) -> TaskResult:
    """Every condition of :data:`CONDITIONS` on one task (see the module docstring); with ``opts.folds`` the
    out-of-fold scores of every fold pooled, so every image is tested once."""
    res = TaskResult(task.name)
    folder = data / task.folder
    if not folder.is_dir():
        res.not_measured = f"no data folder {task.folder}/ under --data"
        return res
    if not generator:
        res.not_measured = f"no class-conditional generator given (--generator {task.name}=NAME)"
        return res
    try:
        splits = task_splits(task, list_items(task, folder), generator, opts.folds)
    except ValueError as e:
        res.not_measured = str(e)
        return res
    for _, _, gen in splits:
        why = check_conditional(gen, task)
        if why:
            res.not_measured = why
            return res
    t0, c0 = time.perf_counter(), time.process_time()
    parts = []
    for k, (train, test, gen) in enumerate(splits):
        part = _run_split(task, train, test, gen, opts, res, fold=(k, len(splits)) if opts.folds else None)
        if part is None:
            return res
        parts.append(part)
    y_test = np.concatenate([p.y for p in parts])
    resamples = cluster_resamples([g for p in parts for g in p.groups], opts.n_boot, seed=0)
    ran = [name for name in parts[0].scores if all(name in p.scores for p in parts)]
    scores = {name: [np.concatenate([p.scores[name][i] for p in parts]) for i in range(len(opts.seeds))]
              for name in ran}
    base = scores[BASELINE]
    for name in [c.name for c in CONDITIONS] + [REFERENCE]:
        counts = [p.plan.get(name) or (p.skipped[name][0] if name in p.skipped else None) for p in parts]
        if any(c is None for c in counts):
            continue
        # with folds: the mean per fold
        row = {"condition": name, "n_real": round(np.mean([sum(r for r, _ in c) for c in counts])),
               "n_synthetic": round(np.mean([sum(s for _, s in c) for c in counts]))}
        if name not in scores:
            res.rows.append({**row, "not_measured": next(p.skipped[name][1] for p in parts if name in p.skipped)})
            continue
        fig = auc_with_ci(y_test, scores[name], resamples, baseline=None if name == BASELINE else base)
        res.rows.append({**row, **fig, "seed_sd": float(np.std([mean_auc(y_test, [s]) for s in scores[name]]))})
    res.notes.append(f"sampling what was not cached, classifier training and testing: {time.perf_counter() - t0:.0f} "
                     f"s wall, {time.process_time() - c0:.0f} s CPU")
    return res


def _run_split(task: Task, train: list[Item], test: list[Item], generator: str, opts: Settings, res: TaskResult,
               fold: tuple[int, int] | None) -> SplitScores | None:
    """Every condition trained on ``train`` (and ``generator``'s images) and scored on ``test``; None (with
    ``res.not_measured`` set) when the split cannot be measured."""
    where = f"fold {fold[0]} of {fold[1]}: " if fold else ""
    y_all = np.array([it.label for it in train])
    capped = np.arange(len(train))
    if opts.max_real is not None and len(train) > opts.max_real:  # a fixed, class-stratified subsample (seed 0)
        rng = np.random.default_rng(0)
        capped = np.sort(np.concatenate([_subset(np.flatnonzero(y_all == c),
                                                 round(opts.max_real * np.mean(y_all == c)), rng) for c in (0, 1)]))
    y_test = np.array([it.label for it in test])
    n_class = [int((y_all[capped] == c).sum()) for c in (0, 1)]
    if min(n_class) == 0 or len(set(y_test.tolist())) < 2:
        res.not_measured = (f"{where}too few labelled images: training {n_class[0]} {task.classes[0]} / "
                            f"{n_class[1]} {task.classes[1]}, test {int((y_test == 0).sum())} / "
                            f"{int((y_test == 1).sum())}")
        return None
    plan, skipped = _plan(n_class, opts.max_synthetic)
    need = [max((c[k][1] for c in plan.values()), default=0) for k in (0, 1)]
    sampler = generator if opts.sampling_steps is None else sampling_variant(generator, opts.sampling_steps,
                                                                              opts.cache)
    t0, c0 = time.perf_counter(), time.process_time()
    pool_paths = synthetic_pool(sampler, task, need, cache=opts.cache, guidance=opts.guidance,
                                progress=opts.progress)
    res.notes.append(
        f"{where}synthetic pool: {need[0]} {task.classes[0]} + {need[1]} {task.classes[1]} from "
        f"`{Path(generator).name}` ({_model_line(generator)}; guidance "
        f"{opts.guidance if opts.guidance is not None else 'default'}, sampling steps "
        f"{opts.sampling_steps or 'default'}); generating what was not cached took "
        f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU")
    if opts.generate_only:
        res.not_measured = "synthetic images generated only (--generate-only)"
        return None
    x_all, ok = load_all([it.path for it in train], opts.size, task.channels)
    y_all = y_all[ok]
    capped = np.flatnonzero(np.isin(ok, capped))
    x_test, ok = load_all([it.path for it in test], opts.size, task.channels)
    test = [test[i] for i in ok]
    y_test = y_test[ok]
    syn = [load_all(p, opts.size, task.channels)[0] for p in pool_paths]
    if len(capped) < len(y_all):  # the ceiling: every real training image, no synthetic
        plan[REFERENCE] = [(int((y_all == c).sum()), 0) for c in (0, 1)]
    scores: dict[str, list[np.ndarray]] = {}
    for name, counts in plan.items():
        pool_real = np.arange(len(y_all)) if name == REFERENCE else capped
        scores[name] = []
        for seed in opts.seeds:
            rng = np.random.default_rng(seed)
            parts_x, parts_y = [], []
            for c, (n_r, n_s) in enumerate(counts):
                own = pool_real[y_all[pool_real] == c]
                real_c = _subset(own, min(n_r, len(own)), rng)
                syn_c = _subset(np.arange(len(syn[c])), min(n_s, len(syn[c])), rng)
                parts_x += [x_all[real_c], syn[c][syn_c]]
                parts_y += [np.full(len(real_c) + len(syn_c), c)]
            t1 = time.perf_counter()
            s = train_and_score(np.concatenate(parts_x), np.concatenate(parts_y), x_test, channels=task.channels,
                                steps=opts.steps, batch=opts.batch, seed=seed, hflip=task.hflip)
            scores[name].append(s)
            if opts.progress:
                print(f"utility {task.name} | {where}{name} | seed {seed}: AUC {mean_auc(y_test, [s]):.3f} "
                      f"({time.perf_counter() - t1:.0f} s)", file=sys.stderr, flush=True)
    res.notes.append(where + _data_note(task, generator, train, test, n_class, len(y_all), fold))
    return SplitScores(y_test, [it.patient for it in test], scores, plan, skipped)


def _model_line(generator: str) -> str:
    """Which weights: training steps and the weights file's hash (the synthetic cache is keyed by it)."""
    from generators.api import _resolve, generator_config
    from generators.base import WEIGHTS_FILE
    from generators.sources import file_sha256

    cfg = generator_config(generator)
    return (f"{cfg.get('family')}, {cfg.get('steps')} training steps, weights sha256 "
            f"{file_sha256(_resolve(generator)[1] / WEIGHTS_FILE)[:12]}")


def _data_note(task: Task, generator: str, train: list[Item], test: list[Item], n_class: list[int],
               n_train_all: int, fold: tuple[int, int] | None = None) -> str:
    """Counts of the split, and whether the generator could have seen the test images."""
    from benchmarks.datafiles import is_heldout
    from generators.api import generator_config

    n_test = [sum(it.label == c for it in test) for c in (0, 1)]
    cfg = generator_config(generator)
    data = cfg.get("data") or {}
    cap = f" (a class-stratified subsample of {n_train_all})" if sum(n_class) < n_train_all else ""
    if fold:
        excluded = cfg.get("utility_fold_excluded")
        seen = ("the generator's training excluded this fold's patients" if excluded == f"{fold[0]}/{fold[1]}" else
                f"the generator does not say it was trained without this fold ({excluded or 'no fold recorded'}): "
                "it may have seen the test images")
    elif "held_out_files_excluded" in cfg or "held_out_files_excluded" in data:
        unsure = sum(not is_heldout(it.path) for it in test)
        seen = ("the generator's training excluded every test image" if not unsure else
                f"the generator's training excluded the held-out files; {unsure} test image(s) (held out with their "
                f"patient, not by their own file) may have been in it")
    else:
        seen = f"the generator was trained on {data.get('n_images', 'an unknown number of')} images of " \
               f"{task.folder}/, which can include the test images"
    return (f"real training: {n_class[0]} {task.classes[0]} / {n_class[1]} {task.classes[1]}{cap}, "
            f"{len({it.patient for it in train})} {task.group} in the training split; test: {n_test[0]} / "
            f"{n_test[1]} ({len({it.patient for it in test})} {task.group}); {seen}")


# --- report -------------------------------------------------------------------------------------------------------
def _ci(r: dict[str, Any], key: str, signed: bool = False) -> str:
    fmt = "+.3f" if signed else ".3f"
    if not math.isfinite(r.get(key, math.nan)):
        return "–"
    return f"{r[key]:{fmt}} [{r[key + '_lo']:{fmt}}, {r[key + '_hi']:{fmt}}]"


def verdict(task: Task, res: TaskResult) -> str:
    """One plain sentence per task from the paired differences to real only."""
    if res.not_measured:
        return f"**{task.name}**: not measured ({res.not_measured})."
    rows = [r for r in res.rows if r["condition"] not in (BASELINE, REFERENCE) and "not_measured" not in r]
    helps = [r["condition"] for r in rows if r.get("delta_lo", math.nan) > 0]
    hurts = [r["condition"] for r in rows if r.get("delta_hi", math.nan) < 0]
    same = [r["condition"] for r in rows if r["condition"] not in helps + hurts]
    base = next(r for r in res.rows if r["condition"] == BASELINE)
    best = max([base] + rows, key=lambda r: r["auc"] if math.isfinite(r["auc"]) else -1)
    parts = [f"**{task.name}** ({task.description}): real only reaches AUC {base['auc']:.3f} with "
             f"{base['n_real']} images"]
    ref = next((r for r in res.rows if r["condition"] == REFERENCE), None)
    if ref:
        parts[0] += f" ({ref['auc']:.3f} with all {ref['n_real']})"
    if helps:
        parts.append(f"synthetic data helps in {', '.join(helps)} (the paired 95% interval of the gain excludes 0)")
    if hurts:
        parts.append(f"it hurts in {', '.join(hurts)}")
    if same:
        parts.append(f"{', '.join(same)}: no difference to real only beyond test-sampling noise")
    parts.append(f"highest point AUC: {best['condition']} ({best['auc']:.3f})")
    return "; ".join(parts) + "."


def to_markdown(res: TaskResult, opts: Settings) -> str:
    """The docs section of one task: method, table, notes and the verdict."""
    task = TASKS[res.task]
    guidance = opts.guidance if opts.guidance is not None else "as the model ships"
    sampling = f"guidance {guidance}, {opts.sampling_steps or 'the model’s'} sampling steps"
    lines = [
        f"How much class-conditional synthetic images are worth to a classifier: a timm `{ARCH}` trained from random "
        f"weights at {opts.size} px, {opts.steps} steps of {opts.batch} class-balanced images (the same for every "
        f"condition), seeds {', '.join(map(str, opts.seeds))}, CPU, one thread. Tested on held-out **real** images "
        + ("only (split by patient with the project's held-out rule, `benchmarks.datafiles.is_heldout`, applied per "
           "patient). " if not opts.folds else
           f"only, by {opts.folds}-fold cross-validation over {task.group} (stratified by label, "
           "`benchmarks.utility_eval.patient_folds`): every image is tested once, by the classifiers of its fold, "
           "and each fold's synthetic images come from a generator trained without that fold's "
           f"{task.group} (`python -m generators.train_bundled --fold K/{opts.folds}`); the out-of-fold scores "
           "are pooled. ")
        + "Synthetic images come from `generators.api.generate` "
        f"({sampling}; stamped files in the task's real format, read back like the real ones). AUC: mean over "
        f"seeds [95% bootstrap interval over test {task.group}, {opts.n_boot} resamples"
        + ("; one seed, so the intervals cover test sampling, not training-seed variation" if len(opts.seeds) == 1
           else "") + "]; Δ: paired difference to real only. n real / n synthetic: training images per condition "
        "(the synthetic class mix follows the real training split" + ("; the mean over folds)." if opts.folds else ").")
        + (f" Real training images capped at {opts.max_real} (`{REFERENCE}`: the uncapped reference)."
           if opts.max_real else ""),
        "",
    ]
    if res.not_measured:
        lines += [f"Not measured: {res.not_measured}.", *[f"- {n}" for n in res.notes]]
        return "\n".join(lines) + "\n"
    lines += ["| condition | n real | n synthetic | AUC [95% CI] | Δ vs real only [95% CI] |", "|---|--:|--:|--:|--:|"]
    for r in res.rows:
        figures = (f"not measured: {r['not_measured']} | –" if "not_measured" in r else
                   f"{_ci(r, 'auc')} | {_ci(r, 'delta', signed=True)}")
        lines.append(f"| {r['condition']} | {r['n_real']} | {r['n_synthetic']} | {figures} |")
    lines += ["", *[f"- {n}" for n in res.notes], "", verdict(task, res)]
    return "\n".join(lines) + "\n"


@register_evaluation("utility")
def evaluate_utility(record: Recorder, *, data: Path, generators: dict[str, str] | None = None,
                     tasks: tuple[str, ...] = tuple(TASKS), threads: int | None = 1,
                     **settings: Any) -> list[Section]:
    """Classifier AUC on held-out real images per task and training condition (see the module docstring); one
    docs section per task (``utility-cxr`` ...), so tasks measured at different times each keep their own.

    Args:
        data: the folder holding cxr_kermany/, derm_isic/, mammo/.
        generators: task -> class-conditional generator (bundled name or checkpoint dir); a task without one is
            reported as not measured.
        settings: the fields of :class:`Settings` (size, steps, seeds, max_real, max_synthetic, cache ...).
    """
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {', '.join(unknown)}; known: {', '.join(TASKS)}")
    opts = Settings(**settings)
    generators = generators or {}
    sections = []
    for name in tasks:
        print(f"utility: {name}", file=sys.stderr, flush=True)
        res = run_task(TASKS[name], Path(data), generators.get(name), opts)
        task = TASKS[name]
        sections.append(Section(f"utility-{name}", f"Synthetic data utility: {task.description}",
                                to_markdown(res, opts)))
        if res.not_measured:
            record(kind="skip", detector=name, reason=res.not_measured)
        for r in (r for r in res.rows if "not_measured" not in r):
            common = {"subset": name, "perturbation": r["condition"], "n_real": r["n_real"],
                      "n_fake": r["n_synthetic"]}
            record(metric="auc", value=r["auc"], lo=r["auc_lo"], hi=r["auc_hi"], **common)
            if "delta" in r:
                record(metric="auc_delta_vs_real", value=r["delta"], lo=r["delta_lo"], hi=r["delta_hi"], **common)
    return sections
