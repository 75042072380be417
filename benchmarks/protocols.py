"""Benchmark protocols: which items train, calibrate and test a detector, and the loop that measures it.

Registered protocols (``list_protocols()``; each yields :class:`Task` s from a :class:`BenchmarkSet`):

- ``in_distribution``: train on every generator's train split and real train images, test on the test splits.
- ``leave_one_generator_out``: for each generator whose modality has another one, train on the others of that
  modality, test on the held-out one (its fakes are *unseen*) against that modality's real test images.
- ``gan_to_diffusion``: per modality with both, train on GAN generators, test on diffusion ones.
- ``cross_modality``: train on chest X-ray (reals + its generators), test on CT (reals + CT generators).
- ``third_party``: train on everything (as in-distribution), test on the external validation folder
  (``--external DIR``, :mod:`benchmarks.external`: third-party generators' images and their real counterparts, one
  normalization for both classes); one figure set per synthetic set x real counterpart of a modality the suite
  covers. No detector, pre-trained ones included, ever trained on these images, so every row is an unseen-generator
  row. Skipped with a note when no external folder is given.

Per in-distribution task the same fitted detector is also measured under the perturbation grid (both classes) and
on the shortcut controls (real test images only; flag rate at the detector's shipped threshold).

Fitting policy: trainable detectors are fitted anew for every task on its train split (detectors with
``fits_groups`` also get each item's generator and split unit, so ``suite.retrained`` calibrates across the families
it trains on and validates on patients it did not train on); the validation split picks ``bacc@val``'s threshold.
Pre-trained detectors (``pretrained = True``: our shipped analyzers and suite) are not refitted; their training data
covers every bundled generator, so on unseen-generator protocols their rows are marked ``unseen = 0`` and the
leaderboard does not rank them there.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks import metrics as M
from benchmarks.datasets import BenchmarkSet, Item
from forensics.registry import Registry

PROTOCOLS = Registry("protocol")
register_protocol = PROTOCOLS.register


@dataclass
class Task:
    protocol: str
    subset: str
    train: list[Item]
    val: list[Item]
    test: list[Item]
    unseen: bool  # the test fakes come from generators absent from train
    heldout: list[str] = field(default_factory=list)  # generators only in test
    unseen_by_all: bool = False  # no detector ever trained on the test fakes, pre-trained ones included
    subsets: dict[str, list[Item]] = field(default_factory=dict)  # test scored once, figures per named subset


def list_protocols(pattern: str = "*") -> list[str]:
    return PROTOCOLS.names(pattern)


def tasks(ds: BenchmarkSet, names: Sequence[str] | None = None, external: str | os.PathLike | None = None,
          external_max: int | None = None) -> tuple[list[Task], list[str]]:
    """(tasks of the named protocols, notes on protocols that had nothing to run and why). ``external`` (the
    external validation folder) and ``external_max`` (images per external set) go to the protocols that take them."""
    out, notes = [], []
    for name in names or list_protocols():
        params = inspect.signature(PROTOCOLS.get(name)).parameters
        kw = {k: v for k, v in (("external", external), ("external_max", external_max)) if k in params}
        made = list(PROTOCOLS.create(name, ds=ds, **kw))
        if made and isinstance(made[0], str):
            notes += [f"{name}: {m}" for m in made]
            continue
        out += made
    return out, notes


def _gens_by_modality(ds: BenchmarkSet) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for it in ds.items:
        if it.generator:
            out.setdefault(it.modality, [])
            if it.generator not in out[it.modality]:
                out[it.modality].append(it.generator)
    return out


@register_protocol("in_distribution")
def in_distribution(ds: BenchmarkSet) -> Iterator[Task]:
    yield Task("in_distribution", "all", ds.select(split="train"), ds.select(split="val"), ds.select(split="test"),
               unseen=False)


@register_protocol("leave_one_generator_out")
def leave_one_generator_out(ds: BenchmarkSet) -> Iterator[Any]:
    any_task = False
    for modality, gens in sorted(_gens_by_modality(ds).items()):
        if len(gens) < 2:
            continue
        for g in sorted(gens):
            others = [o for o in gens if o != g]

            def part(split: str, gen_filter: Sequence[str], modality=modality) -> list[Item]:
                return ds.select(split=split, modality=modality, label=0) + ds.select(split=split, generator=gen_filter)

            any_task = True
            yield Task("leave_one_generator_out", g, part("train", others), part("val", others), part("test", [g]),
                       unseen=True, heldout=[g])
    if not any_task:
        yield "needs two generators of one modality; " + ", ".join(
            f"{m}: {', '.join(g)}" for m, g in _gens_by_modality(ds).items())


@register_protocol("gan_to_diffusion")
def gan_to_diffusion(ds: BenchmarkSet) -> Iterator[Any]:
    found = False
    for modality, gens in sorted(_gens_by_modality(ds).items()):
        gans = [g for g in gens if ds.family_of(g) == "gan"]
        diff = [g for g in gens if ds.family_of(g) in ("ddpm", "diffusion", "ldm")]
        if not gans or not diff:
            continue
        found = True

        def part(split: str, gf: Sequence[str], modality=modality) -> list[Item]:
            return ds.select(split=split, modality=modality, label=0) + ds.select(split=split, generator=gf)

        yield Task("gan_to_diffusion", modality, part("train", gans), part("val", gans), part("test", diff),
                   unseen=True, heldout=diff)
    if not found:
        yield "needs a GAN and a diffusion generator of one modality (diffusion generators bundled: " + (
            ", ".join(g for g in ds.generators if ds.family_of(g) == "ddpm") or "none") + ")"


@register_protocol("cross_modality")
def cross_modality(ds: BenchmarkSet) -> Iterator[Any]:
    gm = _gens_by_modality(ds)
    if "cxr" not in gm or "ct" not in gm:
        yield f"needs chest X-ray and CT generators (have: {', '.join(sorted(gm)) or 'none'})"
        return

    def part(split: str, modality: str) -> list[Item]:
        return ds.select(split=split, modality=modality)

    yield Task("cross_modality", "cxr_to_ct", part("train", "cxr"), part("val", "cxr"), part("test", "ct"),
               unseen=True, heldout=gm["ct"])


@register_protocol("third_party")
def third_party(ds: BenchmarkSet, external: str | os.PathLike | None = None,
                external_max: int | None = None) -> Iterator[Any]:
    from benchmarks.external import EXTERNAL_ENV, load_external, pair_name, resolve

    root = resolve(external)
    if root is None:
        yield (f"needs the external validation folder (--external DIR or ${EXTERNAL_ENV}; "
               f"{'not a folder: ' + str(external) if external else 'none given'})")
        return
    ext = load_external(root)
    if external_max is not None:  # a seeded sample of each set (the quick profile's time budget)
        keep = []
        for g in ext.groups():
            members = ext.of(g)
            pick = np.random.default_rng(0).choice(len(members), min(external_max, len(members)), replace=False)
            keep += [members[i] for i in sorted(pick.tolist())]
        ext.images = keep
    items: dict[str, Item] = {}
    for im in ext.images:
        it = Item(id=f"external/{im.group}/{im.file}", label=im.label, modality=im.modality, source=im.group,
                  generator=im.group if im.label else None, family="external", split="external", group=im.group,
                  file=f"external/{im.group}/{im.file}", sha256=im.sha256, native=256 if im.label else None)
        ds.attach(it, im.pixels())
        items[it.id] = it
    subsets = {}
    for fake, real in ext.pairs():
        if not ext.of(fake)[0].covered:
            continue  # modalities outside the suite: `medaudit bench third-party` reports them as not assessed
        subsets[pair_name(fake, real)] = [items[f"external/{im.group}/{im.file}"] for im in ext.of(fake) + ext.of(real)]
    if not subsets:
        yield f"no synthetic set of a covered modality with its real counterpart in {root}"
        return
    test = list({it.id: it for members in subsets.values() for it in members}.values())
    yield Task("third_party", "all", ds.select(split="train"), ds.select(split="val"), test, unseen=True,
               heldout=ext.groups(1), unseen_by_all=True, subsets=subsets)


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class DetectorSpec:
    """How to make a fresh detector for each task (a factory), and what it is called on the board."""

    name: str
    factory: Callable[[], Any]


def _subsample(items: list[Item], n: int | None, seed: int) -> list[Item]:
    """At most ``n`` items, stratified by label (deterministic)."""
    if n is None or len(items) <= n:
        return items
    rng = np.random.default_rng(seed)
    out = []
    for lab in (0, 1):
        group = [it for it in items if it.label == lab]
        k = min(len(group), max(1, round(n * len(group) / len(items))))
        out += [group[i] for i in sorted(rng.choice(len(group), k, replace=False))]
    return out


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def run(
    ds: BenchmarkSet,
    detectors: Sequence[DetectorSpec],
    *,
    protocols: Sequence[str] | None = None,
    perturbations: dict[str, Callable] | None = None,
    controls: dict[str, Callable] | None = None,
    record: Callable[..., None],
    n_boot: int = 200,
    grid_max: int | None = None,
    seed: int = 0,
    parts: bool = False,
    progress: bool = False,
    external: str | os.PathLike | None = None,
    external_max: int | None = None,
) -> list[str]:
    """Fit and measure every detector on every task; ``record(**row)`` receives each result row.

    Rows: ``kind`` = ``metric`` (detector, version, weights_hash, protocol, subset, perturbation, metric, value, lo,
    hi, n_real, n_fake, unseen), ``curve`` (detector, protocol, subset, perturbation, curve kind, points) or
    ``skip`` (detector, reason). A detector's ``fit_figures()`` (e.g. ``cnn_steps``) are stored beside ``fit_s``.
    With ``parts``, the component scores of detectors that have ``predict_with_parts`` (e.g. each analyzer of the
    retrained suite, at the suite's threshold) are measured on the test split too, as detector ``<name>.<part>``.
    Tasks with ``subsets`` (third_party) are scored once and measured per subset. Tasks with the same train and
    validation items (third_party and in_distribution) share one fit of each detector.
    Returns notes (protocols that could not run, detectors skipped).
    """
    from benchmarks.detectors import availability

    all_tasks, notes = tasks(ds, protocols, external=external, external_max=external_max)
    fit_keys = [tuple(it.id for it in t.train + t.val) for t in all_tasks]
    shared = {k for k in fit_keys if fit_keys.count(k) > 1}
    for note in notes:
        _log(f"skipped protocol {note}", progress)
    cache: dict[tuple[str, ...], tuple[list[np.ndarray], np.ndarray]] = {}

    def arrays(items: list[Item]) -> tuple[list[np.ndarray], np.ndarray]:
        key = tuple(it.id for it in items)
        if key not in cache:
            cache.clear()  # keep one set in memory at a time besides the dataset's own cache
            cache[key] = ds.arrays(items)
        return cache[key]

    for spec in detectors:
        probe = spec.factory()
        ok, why = availability(probe)
        if not ok:
            notes.append(f"detector {spec.name} skipped: {why}")
            record(kind="skip", detector=spec.name, reason=why)
            _log(f"skip {spec.name}: {why}", progress)
            continue
        fitted: dict[tuple[str, ...], tuple[Any, float]] = {}  # shared train + val ids -> (detector, fit seconds)
        for task, key in zip(all_tasks, fit_keys, strict=True):
            if key in fitted:
                det, fit_s = fitted[key]
            else:
                det = probe if getattr(probe, "pretrained", False) else spec.factory()
                t0 = time.perf_counter()
                if getattr(det, "fits_groups", False):  # calibrates across the seen generator families
                    x, y = arrays(task.train)
                    det.fit(x, y, groups=[it.generator for it in task.train],
                            sources=[it.group for it in task.train])
                elif not getattr(det, "pretrained", False):
                    x, y = arrays(task.train)
                    det.fit(x, y)
                fit_s = time.perf_counter() - t0
                if key in shared:
                    fitted[key] = (det, fit_s)
            xv, yv = arrays(task.val)
            vthr = M.val_threshold(yv, det.predict_proba(xv)) if len(set(yv.tolist())) == 2 else None
            xt, yt = arrays(task.test)
            t1 = time.perf_counter()
            if parts and hasattr(det, "predict_with_parts"):  # one pass gives the scores and their components
                st, part_scores = det.predict_with_parts(xt)
            else:
                st, part_scores = det.predict_proba(xt), {}
            ms_per_image = 1000 * (time.perf_counter() - t1) / max(1, len(xt))
            unseen = int(task.unseen and not getattr(det, "pretrained", False)) if task.unseen else None
            if task.unseen_by_all:
                unseen = 1
            base = {"detector": spec.name, "version": str(det.version), "weights_hash": det.weights_hash(),
                    "protocol": task.protocol, "subset": task.subset}
            thr = float(getattr(det, "threshold", 0.5))
            where = {it.id: i for i, it in enumerate(task.test)}
            for subset, members in (task.subsets or {task.subset: task.test}).items():
                idx = np.asarray([where[it.id] for it in members], dtype=int)
                sub = {**base, "subset": subset}
                _emit(record, sub, "none", yt[idx], st[idx], thr, vthr, unseen, n_boot, seed)
                for part, sp in part_scores.items():
                    _emit(record, {**sub, "detector": f"{spec.name}.{part}"}, "none", yt[idx], sp[idx], thr, None,
                          unseen, n_boot, seed, curves=False)
            extra = {"fit_s": fit_s, "ms_per_image": ms_per_image, "threshold": thr,
                     "val_threshold": float("nan") if vthr is None else vthr,
                     **(det.fit_figures() if hasattr(det, "fit_figures") else {})}
            for k, v in extra.items() if not task.subsets else ():
                record(kind="metric", **base, perturbation="none", metric=k, value=float(v), lo=float("nan"),
                       hi=float("nan"), n_real=int((yt == 0).sum()), n_fake=int((yt == 1).sum()), unseen=unseen)
            _log(f"{spec.name} {task.protocol}/{task.subset}: auc {M.roc_auc(yt, st):.3f} "
                 f"tpr@1%fpr {M.tpr_at_fpr(yt, st, 0.01):.3f} (fit {fit_s:.0f} s)", progress)
            if task.protocol != "in_distribution":
                continue
            sub = _subsample(task.test, grid_max, seed)
            xs, ys = arrays(sub) if sub is not task.test else (xt, yt)
            for pname, fn in (perturbations or {}).items():
                from benchmarks.perturbations import apply

                sp = det.predict_proba(apply(fn, xs))
                _emit(record, base, pname, ys, sp, thr, vthr, unseen, n_boot, seed, curves=False)
            reals = [x for x, lab in zip(xs, ys, strict=True) if lab == 0]
            for cname, fn in (controls or {}).items():
                from benchmarks.perturbations import apply

                sc = det.predict_proba(apply(fn, reals))
                est = M.flag_rate_ci(sc, thr, n_boot=n_boot, seed=seed)
                record(kind="metric", **base, perturbation=f"control:{cname}", metric="flag_rate", value=est.value,
                       lo=est.lo, hi=est.hi, n_real=len(reals), n_fake=0, unseen=None)
            sr = det.predict_proba(reals)
            est = M.flag_rate_ci(sr, thr, n_boot=n_boot, seed=seed)
            record(kind="metric", **base, perturbation="control:none", metric="flag_rate", value=est.value,
                   lo=est.lo, hi=est.hi, n_real=len(reals), n_fake=0, unseen=None)
            _log(f"{spec.name}: perturbations and controls done", progress)
    return notes


def _emit(record, base: dict, perturbation: str, y: np.ndarray, s: np.ndarray, thr: float, vthr: float | None,
          unseen: int | None, n_boot: int, seed: int, curves: bool = True) -> None:
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    for name, est in M.bootstrap(y, s, threshold=thr, val_thr=vthr, n_boot=n_boot, seed=seed).items():
        record(kind="metric", **base, perturbation=perturbation, metric=name, value=est.value, lo=est.lo, hi=est.hi,
               n_real=n_real, n_fake=n_fake, unseen=unseen)
    if curves and n_real and n_fake:
        record(kind="curve", **base, perturbation=perturbation, curve="roc", points=M.roc_points(y, s))
        record(kind="curve", **base, perturbation=perturbation, curve="reliability", points=M.reliability(y, s))
