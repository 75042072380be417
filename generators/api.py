"""The public functions ``cli.py`` calls: train, generate, list and load generators."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .base import CONFIG_FILE, WEIGHTS_FILE, Generator, read_config, resolve_device
from .registry import create_generator
from .sources import file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMATS = ("png", "png16", "jpeg", "dcm")


def list_bundled() -> list[dict[str, Any]]:
    """Checkpoints shipped in ``generators/weights/<name>/``.

    Returns:
        [{name, family, modality, resolution, channels, path, size_bytes, steps, data}], sorted by name;
        ``size_bytes`` counts the whole folder.
    """
    out = []
    if not WEIGHTS_DIR.is_dir():
        return out
    for d in sorted(WEIGHTS_DIR.iterdir()):
        if not ((d / WEIGHTS_FILE).is_file() and (d / CONFIG_FILE).is_file()):
            continue
        cfg = json.loads((d / CONFIG_FILE).read_text())
        if "family" not in cfg:  # other bundled networks (e.g. the tamper inpainter) are not samplers
            continue
        out.append(
            {
                "name": d.name,
                "family": cfg["family"],
                "modality": cfg.get("modality"),
                "resolution": cfg.get("output_resolution") or cfg["resolution"],
                "channels": cfg["channels"],
                "path": str(d),
                "size_bytes": sum(f.stat().st_size for f in d.iterdir() if f.is_file()),
                "steps": cfg.get("steps"),
                "data": (cfg.get("data") or {}).get("name"),
            }
        )
    return out


def _resolve(name_or_ckpt: str | os.PathLike) -> tuple[str, Path]:
    p = Path(name_or_ckpt)
    if (p / WEIGHTS_FILE).is_file():
        cfg = read_config(p)
        return str(cfg.get("name") or p.resolve().name), p
    bundled = WEIGHTS_DIR / str(name_or_ckpt)
    if "/" not in str(name_or_ckpt) and os.sep not in str(name_or_ckpt) and (bundled / WEIGHTS_FILE).is_file():
        return str(name_or_ckpt), bundled
    known = ", ".join(b["name"] for b in list_bundled()) or "none"
    raise FileNotFoundError(f"{name_or_ckpt!r} is neither a bundled generator ({known}) nor a checkpoint dir")


def generator_config(name_or_ckpt: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` (family, modality, resolution, ...) of a bundled generator name or a checkpoint dir."""
    return read_config(_resolve(name_or_ckpt)[1])


def load_generator(name_or_ckpt: str | os.PathLike, device: str = "auto") -> Generator:
    """Load a bundled generator by name (``cxr_gan``...) or a checkpoint dir written by ``save`` / training."""
    name, path = _resolve(name_or_ckpt)
    gen = Generator.load(path, device=device)
    gen.name_ = name
    return gen


@cache
def bundled_generator(name: str) -> Generator:
    """A bundled generator loaded once per process, on the CPU: for many small uses in one run (tamper edits)."""
    return load_generator(name, device="cpu")


def train_generator(
    family: str,
    data: list[str] | str,
    out: str | os.PathLike,
    *,
    resolution: int = 64,
    max_steps: int | None = None,
    time_budget_s: float | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
    dataset_kwargs: dict[str, Any] | None = None,
    generator_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Train a generator of ``family`` on image files/folders and write its checkpoint dir.

    When ``out`` already holds a checkpoint, training resumes from it (same family required); ``max_steps`` counts
    the total steps including those already done; ``time_budget_s`` is for this call.

    ``dataset_kwargs={"labels": CSV}`` gives each image a class (``generators.labels.read_labels``); the counts go to
    stderr and into ``config.json`` (``data.classes``).

    Returns:
        ``out`` as a Path (``weights.safetensors`` + ``config.json`` + sample grids).
    """
    from .data import ImageDataset

    out = Path(out)
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    resumed = (out / WEIGHTS_FILE).is_file()
    if resumed:
        cfg = read_config(out)
        if cfg["family"] != family:
            raise ValueError(f"{out} holds a {cfg['family']!r} checkpoint, not {family!r}")
        gen = create_generator(family, **cfg["params"])
        resolution = cfg["resolution"]
    ds_kw = dict(dataset_kwargs or {})
    dataset = ImageDataset(data, resolution=resolution, **ds_kw)
    if dataset.labels is not None and progress:
        import sys

        counts = ", ".join(f"{c or '(unlabelled)'}: {k}" for c, k in dataset.class_counts().items())
        print(f"classes of {len(dataset)} training images: {counts}", file=sys.stderr, flush=True)
    if not resumed:
        kw = dict(resolution=resolution, channels=dataset.channels, modality=dataset.modality, batch_size=batch_size)
        kw.update(generator_kwargs or {})
        gen = create_generator(family, **kw)
    elif batch_size:
        gen.batch_size = batch_size
    gen.fit(
        dataset,
        max_steps=max_steps,
        time_budget_s=time_budget_s,
        device=device,
        seed=seed,
        progress=progress,
        out_dir=out,
    )
    return out


def _chunk_seed(seed: int, chunk: int) -> int:
    return (int(seed) * 1_000_003 + chunk) % (2**63)


def generate(
    name_or_ckpt: str | os.PathLike,
    n: int,
    out_dir: str | os.PathLike,
    *,
    fmt: str = "png",
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    batch_size: int = 16,
    bits: int | None = None,
    signing_key: Any = None,
    watermark_key: Any = None,
    class_label: str | None = None,
    guidance: float | None = None,
    privacy: Any = None,
    max_attempts: int | None = None,
    write_labels: bool = True,
) -> list[Path]:
    """Sample ``n`` images, stamp each (watermark), write it with explicit labels and list it in ``labels.csv``.

    Files are ``{name}_{seed}_{i:05d}.png`` (or ``.dcm``), ``i`` the draw index. Draw ``i`` is the
    ``i % batch_size``-th of chunk ``i // batch_size``, drawn with seed ``seed * 1000003 + chunk``, so a run is
    reproducible and an interrupted run resumes: chunks whose files all exist are skipped.

    Args:
        fmt: ``png`` (8-bit), ``png16`` (16-bit grayscale / RGB), ``jpeg`` (quality 95) or ``dcm`` (Secondary
            Capture DICOM).
        bits: override the bit depth (PNG 8/16; DICOM grayscale 8/16).
        signing_key: a ``forensics.signatures.SigningKey``: each file also gets signed provenance (C2PA manifest in
            PNG/JPEG, PS3.15 Digital Signatures in DICOM) naming generator, version, weights hash, seed and family.
        watermark_key: a secret ``forensics.watermark.WatermarkKey`` for the invisible mark (default: public).
        class_label, guidance: for a class-conditional generator (one whose ``sample`` takes them; the bundled
            models are unconditional and refuse them): passed to ``sample`` and recorded in the labels (PNG JSON,
            DICOM private block and descriptions, ``labels.csv``).
        privacy: a ``generators.privacy.PrivacyFilter``: candidates at or above its similarity to a reference are
            discarded and sampling goes on until ``n`` are kept or ``max_attempts`` (default ``10 * n``) candidates
            were drawn; kept files keep their draw index (gaps where samples were dropped); its ``summary()``
            gives the counts. A resumed filtered run redraws but does not rewrite existing files.
        write_labels: merge one row per file into ``out_dir/labels.csv`` (``generators.labels``).

    Returns:
        The paths written or found, in index order (fewer than ``n`` when the filter hit ``max_attempts``).
    """
    import inspect
    import sys

    from tqdm.auto import tqdm

    from forensics.atomic import write_bytes

    from .labels import check_labels_file, merge_labels
    from .provenance import dicom_bytes, jpeg_bytes, png_bytes, provenance_info, sign, stamp

    fmt = fmt.lower().lstrip(".")
    if fmt in ("dicom", "dcm"):
        fmt = "dcm"
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if n < 0:
        raise ValueError("n must be >= 0")
    gen = load_generator(name_or_ckpt, device=str(resolve_device(device)))
    name = gen.name_
    condition = {k: v for k, v in (("class_label", class_label), ("guidance", guidance)) if v is not None}
    if condition and not set(condition) <= set(inspect.signature(gen.sample).parameters):
        raise ValueError(f"{name} is an unconditional {gen.family} generator: it takes no "
                         f"{' or '.join('--' + k.replace('_label', '') for k in condition)}")
    if class_label is not None and guidance is None:  # record the scale the model will use, not "none"
        guidance = getattr(gen, "guidance", None)
    version = f"{gen.config()['version']}"
    weights_sha256 = file_sha256(_resolve(name_or_ckpt)[1] / WEIGHTS_FILE)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_labels:
        check_labels_file(out_dir)  # refuse before sampling, not after
    ext = {"dcm": "dcm", "jpeg": "jpg"}.get(fmt, "png")
    extra = {"class": class_label, "guidance": guidance} if condition else {}

    def path_of(i: int) -> Path:
        return out_dir / f"{name}_{seed}_{i:05d}.{ext}"

    def write(i: int, img: np.ndarray) -> None:
        info = provenance_info(name, version, seed, index=i, family=gen.family, model_steps=gen.steps_,
                               weights_sha256=weights_sha256, **extra)
        stamped = stamp(img, generator=name, version=version, seed=seed, key=watermark_key)
        if fmt == "dcm":
            data = dicom_bytes(stamped, info, modality=gen.modality or "OT", bits=bits)
        elif fmt == "jpeg":
            data = jpeg_bytes(stamped, info)
        else:
            data = png_bytes(stamped, info, bits=bits or (16 if fmt == "png16" else 8))
        if signing_key is not None:
            data = sign(data, {"dcm": "dicom"}.get(fmt, "png" if fmt == "png16" else fmt), info, signing_key)
        write_bytes(path_of(i), data)

    bar = tqdm(total=n, disable=not progress, file=sys.stderr, desc=f"generate {name}")
    paths: list[Path] = []
    if privacy is None:
        paths = [path_of(i) for i in range(n)]
        for chunk, start in enumerate(range(0, n, batch_size)):
            todo = paths[start : start + batch_size]
            if all(p.exists() for p in todo):
                bar.update(len(todo))
                continue
            images = gen.sample(len(todo), seed=_chunk_seed(seed, chunk), **condition)
            for k, img in enumerate(images):
                write(start + k, img)
                bar.update(1)
    else:
        cap = int(max_attempts) if max_attempts is not None else 10 * n
        chunk = 0
        while len(paths) < n and chunk * batch_size < cap:
            # always whole chunks, so draw i is the same image whatever n or the cap is
            images = gen.sample(batch_size, seed=_chunk_seed(seed, chunk), **condition)
            keep, nn = privacy.judge(images)
            used = 0
            for k in range(batch_size):
                if len(paths) >= n or chunk * batch_size + k >= cap:
                    break
                used += 1
                i = chunk * batch_size + k
                if keep[k]:
                    write(i, images[k])  # (again): a file left by an earlier run may hold another draw
                    paths.append(path_of(i))
                    bar.update(1)
                else:
                    path_of(i).unlink(missing_ok=True)  # an earlier unfiltered run's copy of this dropped draw
            privacy.account({key: v[:used] for key, v in nn.items()})
            chunk += 1
    bar.close()
    if write_labels and paths:
        merge_labels(out_dir, [{"file": p.name, "class": class_label, "generator": name, "seed": seed,
                                "guidance": guidance} for p in paths])
    return paths
