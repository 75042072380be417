"""Train the pixel detectors from folders of real images and generators' output (what ``medaudit train detector``
calls), and reproduce the bundled detector weights.

    python -m benchmarks.train_detector --bundled --data DIR --out DIR [--time-budget 900]

Composition lives here, one level above ``forensics`` (DESIGN.md): images are loaded with ``forensics.io.load``,
fakes come from ``generators`` when no fake folders are given, and ``forensics.training`` gets plain arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datafiles import (
    DATA_ENV,
    DATA_FOLDERS,
    SLICES_PER_VOLUME,
    image_files,
    is_heldout,
    load_images,
    source_group,
)
from forensics.atomic import write_text
from forensics.formatpath import FORMAT_PATH_VERSION

#: Which bundled generators imitate which data folder (by name prefix).
MODALITY_PREFIX = {"cxr_kermany": "cxr_", "ct_lung_tcia": "ct_", "derm_isic": "derm_", "mri_brain": "mri_",
                   "mammo": "mammo_"}
LICENCES = {
    "cxr_kermany": "CC BY 4.0 - Kermany D., Zhang K., Goldbaum M. (2018), Mendeley Data v2",
    "ct_lung_tcia": "CC BY 3.0 - Li P. et al. (2020), Lung-PET-CT-Dx, The Cancer Imaging Archive",
    "derm_isic": "CC0 - ISIC Archive (UDA-1)",
    "mri_brain": "CC BY-SA 3.0 - IXI dataset (brain-development.org); CC BY 3.0 - Pedano N. et al. (2016), TCGA-LGG, "
                 "The Cancer Imaging Archive",
    "mammo": "research use only - MIAS MiniMammographic Database licence, Suckling J. et al. (1994); weights "
             "trained on it are for research use only",
}
#: Seeds of generator samples: training fakes and held-out evaluation fakes never share a seed.
TRAIN_FAKE_SEED = 0
TEST_FAKE_SEED = 100_000


def generator_natives(name: str) -> list[int]:
    """The sides a generator's images pass through: its native resolution and its output resolution."""
    from generators.api import generator_config

    cfg = generator_config(name)
    return sorted({int(cfg["resolution"]), int(cfg.get("output_resolution") or cfg["resolution"])})


def calibration_families(names: Sequence[str]) -> dict[str, str]:
    """{generator: family (gan, vae, ddpm ...)} of the generators that calibration holds out in turn: those of each
    modality with two or more families among ``names``. A modality's only generator is always trained on."""
    from generators.api import generator_config

    by_modality: dict[str, dict[str, str]] = {}
    for name in names:
        cfg = generator_config(name)
        by_modality.setdefault(str(cfg.get("modality")), {})[name] = str(cfg["family"])
    return {g: f for gens in by_modality.values() if len(set(gens.values())) >= 2 for g, f in gens.items()}


def calibration_families_with_makers(kinds: Sequence[str]) -> dict[str, str]:
    """{kind: family} to hold out in turn when calibrating: each fake maker's family, and - when fake makers are
    among ``kinds`` - all bundled generators together as one family ``bundled`` (one CNN fit per family: the few
    generators of the seed are one more family next to the decoders, not three); without makers, as before."""
    makers = maker_families()
    seen = {k: makers[k] for k in kinds if k in makers}
    generators = [k for k in kinds if k not in makers]
    if not seen:
        return calibration_families(generators)
    return seen | {g: "bundled" for g in generators}


def sample_generator(name: str, n: int, seed: int, batch: int = 64) -> np.ndarray:
    """``n`` unstamped samples float32 (n, H, W[, 3]) - the watermark is left out on purpose, so the detectors
    cannot learn it (the watermark analyzer covers our own marks)."""
    from generators import load_generator

    gen = load_generator(name, device="cpu")
    parts = [gen.sample(min(batch, n - i), seed=seed + i) for i in range(0, n, batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 64, 64), np.float32)


def train_detector_cli(
    real_dirs: Sequence[str | os.PathLike],
    fake_dirs: Sequence[str | os.PathLike],
    generator_names: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    time_budget_s: float | None = None,
    progress: bool = True,
    fakes_per_generator: int | None = None,
    exclude_heldout: bool = False,
    fake_makers: Sequence[str] | None = (),
    data_note: str = "",
    **train_kw: Any,
) -> dict[str, Any]:
    """Train frequency + cnn detectors into ``out_dir`` (usable as ``weights_dir=`` of the analyzers).

    Args:
        real_dirs: folders (or files) of real images, any format ``forensics.io.load`` reads.
        fake_dirs: folders of synthetic images; when empty, fakes are sampled from ``generator_names``.
        generator_names: bundled names or checkpoint dirs; their native sizes also set the resolution round trips
            of the real images (even when fake folders are given).
        out_dir: output folder (frequency/, cnn/, fusion.json, MODEL_CARD.md).
        seed: seeds sampling, the format path and training.
        time_budget_s: wall-clock budget of the training step.
        fakes_per_generator: samples per generator (default: as many fakes in total as real images).
        exclude_heldout: leave out the held-out evaluation split of real files (for the bundled weights).
        fake_makers: names of the fake makers that re-synthesize every real image (:func:`remake_reals`) as
            aligned fakes; None: every bundled one with weights; empty (the default): none. Off by default: with
            them, the detectors of docs/BENCHMARKS.md ("Fake makers: what training on them did") learned that a
            smooth image is synthetic and flagged most real images that were merely resized.
        train_kw: passed on to :func:`forensics.training.train_detectors` (e.g. ``cnn_max_steps``).
    """
    from forensics.training import train_detectors

    t0 = time.perf_counter()
    paths = image_files(real_dirs)
    if exclude_heldout:
        paths = [p for p in paths if not is_heldout(p)]
    real, paths = load_images(paths, progress)
    if not real:
        raise ValueError(f"no readable real images in {list(map(str, real_dirs))}")
    real_groups = [source_group(p) for p in paths]
    remakes, twins, remake_groups, remake_kinds, remake_families = remake_reals(
        real, real_groups, makers=fake_makers, seed=seed, progress=progress)
    real, real_groups = real + twins, real_groups + remake_groups
    if generator_names is None:  # fakes from folders need no generators; without folders, every bundled one
        generator_names = [] if fake_dirs else bundled_generator_names()
    natives: set[int] = set()
    for g in generator_names:
        natives.update(generator_natives(g))
    if fake_dirs:
        fpaths = image_files(fake_dirs)
        fake, fpaths = load_images(fpaths, progress)
        fake_groups = [str(p) for p in fpaths]
        fake_kinds = [Path(p).parent.name for p in fpaths]  # each folder counts as a generator family of its own
        natives.update({min(f.shape[:2]) for f in fake if min(f.shape[:2]) <= 128})
    else:
        if not generator_names:
            raise ValueError("give fake folders or generator names")
        n = fakes_per_generator or max(1, len(real) // len(generator_names))
        fake, fake_groups, fake_kinds = [], [], []
        for g in generator_names:
            x = sample_generator(g, n, seed=seed)
            fake += list(x)
            fake_groups += [f"{g}/seed{seed}/{i}" for i in range(len(x))]
            fake_kinds += [g] * len(x)
    origin = f"folders {', '.join(map(str, fake_dirs))}" if fake_dirs else f"generators {', '.join(generator_names)}"
    families = {k: k for k in fake_kinds} if fake_dirs else calibration_families(generator_names)
    if remakes:
        origin += f"; {len(remakes)} remakes of the real images by fake makers {', '.join(sorted(remake_families))}"
        fake, fake_groups, fake_kinds = fake + remakes, fake_groups + remake_groups, fake_kinds + remake_kinds
        # each fake folder stays a family of its own; bundled generators are one family beside the decoders
        families = remake_families | {k: k if fake_dirs else "bundled" for k in set(fake_kinds) - set(remake_families)}
    note = data_note or (
        f"Real images: {len(real)} files from {', '.join(map(str, real_dirs))}. Synthetic: {len(fake)} ({origin})."
    )
    report = train_detectors(real, fake, out_dir=out_dir, real_groups=real_groups, fake_groups=fake_groups,
                             fake_kinds=fake_kinds, families=families, native_sizes=sorted(natives) or (64,), seed=seed,
                             time_budget_s=time_budget_s, data_note=note, progress=progress,
                             **train_kw)
    report["total_wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def train_fake_makers(data: Path, out_dir: Path, *, seconds_each: float = 150.0, seed: int = 0,
                      progress: bool = True) -> dict[str, Any]:
    """Fit every bundled autoencoder fake maker on the training split of every data folder (gray, short side at
    most 384 px, held-out files excluded) and write ``out_dir/<maker>.safetensors``; returns {maker: log}."""
    from forensics.training import preshrink
    from generators.fakemakers.autoencoder import BUNDLED, maker_name
    from generators.fakemakers.train import fit_autoencoder

    paths = [p for folder in MODALITY_PREFIX for p in image_files([data / folder]) if not is_heldout(p)]
    images, _ = load_images(paths, progress)
    gray = [preshrink(x, 384) for x in images]
    logs = {}
    for i, (up, stride) in enumerate(BUNDLED):
        name = maker_name(up, stride)
        logs[name] = fit_autoencoder(gray, up, stride, Path(out_dir) / f"{name}.safetensors",
                                     time_budget_s=seconds_each, seed=seed + i, progress=progress)
    logs["data"] = {"images": len(gray), "folders": list(MODALITY_PREFIX), "seconds_each": seconds_each}
    write_text(Path(out_dir) / "training_log.json", json.dumps(logs, indent=1))
    write_text(Path(out_dir) / "MODEL_CARD.md", fake_maker_card(logs))
    return logs


def fake_maker_card(logs: dict[str, Any]) -> str:
    """MODEL_CARD.md of the fake makers: what each is, its training budget and data."""
    import platform

    lines = ["# medaudit fake makers - model card", "",
             "Autoencoders that re-synthesize real images as aligned fakes for detector training (issue 13; "
             "`generators/fakemakers/`). They are not generators of new images and are never used to make "
             "synthetic data for users. Trained by `medaudit train fake-makers` on one CPU thread "
             f"({platform.machine()}, Python {platform.python_version()}), L1 loss on random crops of "
             f"{logs['data']['images']} real training files (held-out split excluded), gray, short side at most "
             f"384 px, {logs['data']['seconds_each']:.0f} s each.", "",
             "| maker | steps | wall s | final L1 (EMA) | parameters |", "|---|---|---|---|---|"]
    for name, log in logs.items():
        if name != "data":
            lines.append(f"| {name} | {log['steps']} | {log['wall_s']} | {log['final_l1_ema']} | {log['parameters']} |")
    lines += ["", "Data and licences:", ""]
    lines += [f"- `{folder}`: {LICENCES[folder]}" for folder in logs["data"]["folders"]]
    lines += ["", "`inpaint_local` has no weights of its own: it blends one of these decoders' output into an "
              "elliptical region of the real image.", "",
              "Use: opt-in (`medaudit train detector --fake-makers all`). Detectors trained on these remakes caught "
              "most third-party latent-diffusion and VAE chest X-rays but also flagged real images that were only "
              "resized (docs/BENCHMARKS.md, \"Fake makers and a real-only model\"): the remakes are smoother than "
              "real acquisitions, and so is every resized image.", ""]
    return "\n".join(lines)


def bundled_sets(data: Path, *, heldout: bool, seed: int, modalities: Sequence[str] | None = None,
                 generators: Sequence[str] | None = None, fake_ratio: float = 1.0, progress: bool = False) -> dict:
    """Real images (train or held-out split) and matching generator samples for each data folder.

    Returns:
        {folder: {"real": [...], "real_groups": [...], "real_paths": [...], "fake": [...], "fake_groups": [...],
                  "fake_kinds": [...], "natives": set}}
    """
    bundled = bundled_generator_names()
    out = {}
    for folder, prefix in MODALITY_PREFIX.items():
        if modalities and folder not in modalities:
            continue
        gens = [g for g in bundled if g.startswith(prefix) and (generators is None or g in generators)]
        paths = [p for p in image_files([data / folder]) if is_heldout(p) == heldout]
        real, paths = load_images(paths, progress)
        entry = {"real": real, "real_paths": paths, "real_groups": [source_group(p) for p in paths],
                 "fake": [], "fake_groups": [], "fake_kinds": [], "natives": set(), "generators": gens}
        n = max(1, round(len(real) * fake_ratio / max(1, len(gens))))
        for g in gens:
            x = sample_generator(g, n, seed=seed)
            entry["fake"] += list(x)
            entry["fake_groups"] += [f"{g}/seed{seed}/{i}" for i in range(len(x))]
            entry["fake_kinds"] += [g] * len(x)
            entry["natives"].update(generator_natives(g))
        out[folder] = entry
    return out


REAL_VARIANTS = 4
FAKE_VARIANTS = 1
FAKE_RATIO = 2.0  # generator samples per real source (each fake takes one format-path draw, each real four)
REMAKES_PER_IMAGE = 1  # fake-maker remakes per real source (at the real file's size, one format-path draw)


#: The generator families the bundled detectors train against. Latent diffusion (256 px, well under one image a
#: second on a CPU) stays out: enough samples would take hours here, and it remains a family the detectors never saw.
DETECTOR_FAMILIES = ("gan", "vae", "ddpm")


def bundled_generator_names() -> list[str]:
    """Names of the bundled generators the detectors train against (the tamper in-painter is not a generator:
    ``list_bundled`` leaves it out)."""
    from generators import list_bundled

    return [g["name"] for g in list_bundled() if g["family"] in DETECTOR_FAMILIES]


def folder_natives(folder: str) -> list[int]:
    """Native sides of the generators that imitate ``folder``: from their checkpoints and from the training plan of
    the bundled generators (so real variants can be prepared while those are still training)."""
    prefix = MODALITY_PREFIX[folder]
    sizes = {n for b in bundled_generator_names() if b.startswith(prefix) for n in generator_natives(b)}
    try:
        from generators.train_bundled import PLAN

        sizes |= {s for family, f, res, gkw, *_rest in PLAN.values() if f == folder and family in DETECTOR_FAMILIES
                  for s in (res, gkw.get("output_resolution", res))}
    except ImportError:
        pass
    return sorted(sizes) or [64]


def folder_generators(folder: str) -> list[str]:
    """Bundled generators of the detector families that imitate ``folder``: those trained, plus those planned in
    ``generators.train_bundled.PLAN`` (so sample counts do not change while generators are still training).
    Latent diffusion stays out, here and in :func:`folder_natives`: counted in, it halved every modality's fakes and
    made a third to half of the real images' native-size round trips go to 256 px, a no-op."""
    prefix = MODALITY_PREFIX[folder]
    names = {b for b in bundled_generator_names() if b.startswith(prefix)}
    try:
        from generators.train_bundled import PLAN

        names |= {name for name, plan in PLAN.items() if plan[1] == folder and plan[0] in DETECTOR_FAMILIES}
    except ImportError:
        pass
    return sorted(names)


def _cached(path: Path | None, make):
    from forensics.training import VariantSet

    if path is not None and path.is_file() and path.with_suffix(".groups.json").is_file():
        return VariantSet.load(path), json.loads(path.with_suffix(".groups.json").read_text())
    vs, groups = make()
    if path is not None:
        vs.save(path)
        write_text(path.with_suffix(".groups.json"), json.dumps(groups))
    return vs, groups


def real_variants(data: Path, folder: str, *, heldout: bool = False, seed: int = 0, cache: Path | None = None,
                  progress: bool = False):
    """(VariantSet of the folder's real training files, their source groups); kind = folder name."""
    from forensics.training import make_variants

    natives = folder_natives(folder)
    key = None if cache is None else cache / f"real_{folder}_{'test' if heldout else 'train'}_s{seed}_" \
        f"n{'-'.join(map(str, natives))}_v{REAL_VARIANTS}_fp{FORMAT_PATH_VERSION}.npz"

    def make():
        paths = [p for p in image_files([data / folder]) if is_heldout(p) == heldout]
        ims, paths = load_images(paths, progress)
        rng = np.random.default_rng([seed, sum(map(ord, folder))])
        vs = make_variants(ims, 0, n_variants=REAL_VARIANTS, rng=rng, native_sizes=natives,
                           kinds=[folder] * len(ims), progress=progress, desc=f"{folder} variants")
        return vs, [source_group(p) for p in paths]

    return _cached(key, make)


def fake_variants(name: str, n: int, *, sample_seed: int, seed: int = 0, cache: Path | None = None,
                  progress: bool = False):
    """(VariantSet of ``n`` samples of generator ``name``, their groups); kind = generator name."""
    from forensics.training import make_variants

    key = None if cache is None else \
        cache / f"fake_{name}_n{n}_seed{sample_seed}_s{seed}_v{FAKE_VARIANTS}_fp{FORMAT_PATH_VERSION}.npz"

    def make():
        x = sample_generator(name, n, seed=sample_seed)
        rng = np.random.default_rng([seed, sample_seed, sum(map(ord, name))])
        vs = make_variants(list(x), 1, n_variants=FAKE_VARIANTS, rng=rng, kinds=[name] * len(x),
                           progress=progress, desc=f"{name} variants")
        return vs, [f"{name}/seed{sample_seed}/{i}" for i in range(len(x))]

    return _cached(key, make)


def remake_reals(images: Sequence[np.ndarray], groups: Sequence[str], *, makers: Sequence[str] | None = None,
                 per_image: int = REMAKES_PER_IMAGE, seed: int = 0, progress: bool = False):
    """Aligned fakes: each real image re-synthesized by ``per_image`` fake makers drawn at random (default: every
    bundled one that has weights), each with its real twin (:func:`generators.fakemakers.twins.envelope_twin`: the
    real image with the remake's amount of detail, a real negative). A remake and its twin keep their real image's
    source group, so the pair lands on one side of the train/validation split. Returns (fakes, twins, groups,
    kinds = maker names, {maker: calibration family})."""
    from forensics.training import preshrink
    from generators.fakemakers import fake_maker, fake_maker_names
    from generators.fakemakers.twins import envelope_twin

    try:
        chosen = [fake_maker(n) for n in (makers if makers is not None else fake_maker_names())]
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    if makers is not None and (missing := [m.name for m in chosen if not m.available()]):
        raise ValueError(f"fake makers without weights: {', '.join(missing)} (train them: medaudit train fake-makers)")
    chosen = [m for m in chosen if m.available()]
    if not chosen:
        return [], [], [], [], {}
    rng = np.random.default_rng([seed, 13])
    fakes, twins, fgroups, kinds = [], [], [], []
    it = range(len(images))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="fake makers", file=sys.stderr, leave=False)
    for i in it:
        gray = preshrink(images[i])
        for j in rng.choice(len(chosen), size=min(per_image, len(chosen)), replace=False):
            fakes.append(chosen[j].remake(gray, rng))
            twins.append(envelope_twin(gray, fakes[-1]))
            fgroups.append(groups[i])
            kinds.append(chosen[j].name)
    return fakes, twins, fgroups, kinds, {m.name: m.family for m in chosen}


def remade_variants(data: Path, folder: str, *, seed: int = 0, cache: Path | None = None, progress: bool = False):
    """[(VariantSet, source groups)] of the real twins and of the fake makers' remakes of the folder's real training
    files (:func:`remake_reals`); one format-path draw each."""
    from forensics.training import make_variants

    stem = f"remade_{folder}_s{seed}_m{len(maker_families())}_r{REMAKES_PER_IMAGE}_fp{FORMAT_PATH_VERSION}"
    made: dict[str, Any] = {}

    def remakes():
        if not made:
            paths = [p for p in image_files([data / folder]) if not is_heldout(p)]
            ims, paths = load_images(paths, progress)
            made["fakes"], made["twins"], made["groups"], made["kinds"], _ = remake_reals(
                ims, [source_group(p) for p in paths], seed=seed, progress=progress)
        return made

    def variants(label: int):
        m = remakes()
        rng = np.random.default_rng([seed, 17 + label, sum(map(ord, folder))])
        images, kinds = (m["fakes"], m["kinds"]) if label else (m["twins"], ["twin"] * len(m["twins"]))
        vs = make_variants(images, label, n_variants=1, rng=rng, kinds=kinds, progress=progress,
                           desc=f"{folder} {'remakes' if label else 'twins'}")
        return vs, m["groups"]

    return [_cached(None if cache is None else cache / f"{stem}_twins.npz", lambda: variants(0)),
            _cached(None if cache is None else cache / f"{stem}.npz", lambda: variants(1))]


def maker_families() -> dict[str, str]:
    """{fake maker: calibration family} of the bundled makers that have weights."""
    from generators.fakemakers import fake_maker, fake_maker_names

    makers = [fake_maker(n) for n in fake_maker_names()]
    return {m.name: m.family for m in makers if m.available()}


def bundled_variants(data: Path, *, seed: int = 0, cache: Path | None = None, modalities: Sequence[str] | None = None,
                     generators: Sequence[str] | None = None, use_fake_makers: bool = False,
                     progress: bool = False) -> list[tuple[Any, list[str]]]:
    """[(VariantSet, groups)] of every data folder's training split, of the fake makers' remakes of it and of its
    generators' samples."""
    bundled = set(bundled_generator_names())
    out = []
    for folder in MODALITY_PREFIX:
        if modalities and folder not in modalities:
            continue
        rv, rg = real_variants(data, folder, seed=seed, cache=cache, progress=progress)
        out.append((rv, rg))
        if use_fake_makers and maker_families():
            out += remade_variants(data, folder, seed=seed, cache=cache, progress=progress)
        planned = folder_generators(folder)
        n_sources = len(set(rv.source.tolist()))
        for g in planned:
            if g not in bundled or (generators is not None and g not in generators):
                continue
            n = max(1, round(n_sources * FAKE_RATIO / len(planned)))
            out.append(fake_variants(g, n, sample_seed=TRAIN_FAKE_SEED + seed, seed=seed, cache=cache,
                                     progress=progress))
    return out


def train_bundled(data: Path, out_dir: Path, *, seed: int = 0, time_budget_s: float | None = None,
                  generators: Sequence[str] | None = None, modalities: Sequence[str] | None = None,
                  cache: Path | None = None, use_fake_makers: bool = False, progress: bool = True,
                  **kw: Any) -> dict[str, Any]:
    """The bundled detectors: every data folder except its held-out split, against the bundled generators (and,
    with ``use_fake_makers``, the fake makers' remakes of those real files)."""
    from forensics.training import VariantSet, fit_and_save, split_by_source

    t0 = time.perf_counter()
    parts = bundled_variants(data, seed=seed, cache=cache, modalities=modalities, generators=generators,
                             use_fake_makers=use_fake_makers, progress=progress)
    trains, vals, lines = [], [], []
    for vs, groups in parts:
        tr, va = split_by_source(vs, groups, val_fraction=0.2, seed=seed)
        trains.append(tr)
        vals.append(va)
        kinds = sorted(set(vs.kind.tolist()))
        kind = kinds[0] if kinds else "?"
        n_src = len(set(vs.source.tolist()))
        if kind == "twin":
            lines.append(f"- their real twins (each remake's real image with the remake's amount of detail, labelled "
                         f"real): {len(vs.label)} images, 1 format-path draw each")
        elif vs.label[:1].tolist() == [0]:
            lines.append(f"- real `{kind}`: {n_src} images of {len(set(groups))} patients / subjects / slice blocks / "
                         "files (held-out 20% of these excluded; a NIfTI volume gives up to "
                         f"{SLICES_PER_VOLUME} axial slices), "
                         f"{REAL_VARIANTS} format-path draws each, about half through a native-size round trip "
                         f"({', '.join(map(str, folder_natives(kind)))} px); licence {LICENCES.get(kind, '?')}")
        elif len(kinds) > 1:
            lines.append(f"- remakes of those real files by the fake makers ({', '.join(kinds)}): {len(vs.label)} "
                         f"images, {REMAKES_PER_IMAGE} per real file, 1 format-path draw each")
        else:
            lines.append(f"- synthetic `{kind}`: {n_src} unstamped samples (seed {TRAIN_FAKE_SEED + seed}), "
                         f"{FAKE_VARIANTS} format-path draw each")
    note = "Training data (real files are byte-exact public images; synthetic ones the bundled generators' and " \
           "the fake makers' remakes of the real files):\n\n"
    note += "\n".join(lines)
    if any(str(vs.kind[0]) == "mammo" for vs, _ in parts if len(vs.kind)):
        note += "\n\n**Research use only**: trained on mini-MIAS mammograms, whose licence allows research use only."
    folders = [(vs, str(vs.kind[0])) for vs, _ in parts if len(vs.kind) and str(vs.kind[0]) in MODALITY_PREFIX]
    natives = sorted({n for _, folder in folders for n in folder_natives(folder)})
    data_info = {"real_sources": sum(len(set(vs.source.tolist())) for vs, _ in folders),
                 "synthetic_sources": sum(len(v.label) for v, _ in parts if v.label[:1].tolist() == [1]),
                 "real_variants": REAL_VARIANTS, "synthetic_variants": FAKE_VARIANTS, "native_sizes": natives,
                 "note": note}
    prep = time.perf_counter() - t0
    families = calibration_families_with_makers(
        sorted({str(k) for vs, _ in parts if vs.label[:1].tolist() == [1] for k in set(vs.kind.tolist())}))
    return fit_and_save(VariantSet.concat(trains), VariantSet.concat(vals), out_dir=out_dir, data=data_info,
                        families=families, seed=seed, prep_s=prep, progress=progress,
                        time_budget_s=None if time_budget_s is None else time_budget_s - prep, **kw)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundled", action="store_true", help="reproduce the bundled detector weights from --data")
    ap.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV),
                    help=f"data folder for --bundled / --prepare-reals ({DATA_FOLDERS}) [env var: {DATA_ENV}]")
    ap.add_argument("--real", nargs="*", default=[])
    ap.add_argument("--fake", nargs="*", default=[])
    ap.add_argument("--generators", nargs="*", default=[])
    ap.add_argument("--out", type=Path, required=True,
                    help="output folder (frequency/, cnn/, fusion.json, MODEL_CARD.md); for the bundled weights, "
                         "copy it over forensics/weights after review")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=None)
    ap.add_argument("--cnn-max-steps", type=int, default=3000)
    ap.add_argument("--cache", type=Path, default=None, help="folder for format-path variant caches (.npz)")
    ap.add_argument("--prepare-reals", action="store_true", help="only fill the cache with real-image variants")
    ap.add_argument("--fake-makers", action="store_true",
                    help="--bundled: add the fake makers' remakes of the real images as fakes (see train detector)")
    args = ap.parse_args(argv)
    if (args.bundled or args.prepare_reals) and args.data is None:
        ap.error(f"no data folder: give --data DIR or set {DATA_ENV} ({DATA_FOLDERS})")
    import torch

    torch.set_num_threads(1)
    if args.prepare_reals:  # fill the cache with what exists already (reals, trained generators' samples)
        bundled_variants(args.data, seed=args.seed, cache=args.cache, progress=True)
        return 0
    if args.bundled:
        report = train_bundled(args.data, args.out, seed=args.seed, time_budget_s=args.time_budget,
                               cnn_max_steps=args.cnn_max_steps, cache=args.cache, use_fake_makers=args.fake_makers)
    else:
        report = train_detector_cli(args.real, args.fake, args.generators, args.out, seed=args.seed,
                                    time_budget_s=args.time_budget)
    print(json.dumps({k: report[k] for k in ("analyzers", "fusion", "wall_s") if k in report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
