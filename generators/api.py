"""The public functions ``cli.py`` calls: train, generate, list and load generators."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .base import CONFIG_FILE, WEIGHTS_FILE, Generator, read_config, resolve_device
from .registry import create_generator

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


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
) -> list[Path]:
    """Sample ``n`` images, stamp each (watermark) and write it with explicit labels.

    Files are ``{name}_{seed}_{i:05d}.png`` (or ``.dcm``). Image ``i`` is the ``i % batch_size``-th of chunk
    ``i // batch_size``, drawn with seed ``seed * 1000003 + chunk``, so a run is reproducible and an interrupted
    run resumes: chunks whose files all exist are skipped.

    Args:
        fmt: ``png`` (8-bit), ``png16`` (16-bit grayscale / RGB), ``jpeg`` (quality 95) or ``dcm`` (Secondary
            Capture DICOM).
        bits: override the bit depth (PNG 8/16; DICOM grayscale 8/16).
        signing_key: a ``forensics.signatures.SigningKey``: each file also gets signed provenance (C2PA manifest in
            PNG/JPEG, PS3.15 Digital Signatures in DICOM) naming generator, version, weights hash, seed and family.
        watermark_key: a secret ``forensics.watermark.WatermarkKey`` for the invisible mark (default: public).

    Returns:
        The paths written or found, in index order.
    """
    import sys

    from tqdm.auto import tqdm

    from forensics.atomic import write_bytes

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
    version = f"{gen.config()['version']}"
    weights_sha256 = _file_sha256(_resolve(name_or_ckpt)[1] / WEIGHTS_FILE)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = {"dcm": "dcm", "jpeg": "jpg"}.get(fmt, "png")
    paths = [out_dir / f"{name}_{seed}_{i:05d}.{ext}" for i in range(n)]
    bar = tqdm(total=n, disable=not progress, file=sys.stderr, desc=f"generate {name}")
    for chunk, start in enumerate(range(0, n, batch_size)):
        todo = paths[start : start + batch_size]
        if all(p.exists() for p in todo):
            bar.update(len(todo))
            continue
        images = gen.sample(len(todo), seed=_chunk_seed(seed, chunk))
        for k, (path, img) in enumerate(zip(todo, images, strict=True)):
            i = start + k
            info = provenance_info(name, version, seed, index=i, family=gen.family, model_steps=gen.steps_,
                                   weights_sha256=weights_sha256)
            stamped = stamp(img, generator=name, version=version, seed=seed, key=watermark_key)
            if fmt == "dcm":
                data = dicom_bytes(stamped, info, modality=gen.modality or "OT", bits=bits)
            elif fmt == "jpeg":
                data = jpeg_bytes(stamped, info)
            else:
                data = png_bytes(stamped, info, bits=bits or (16 if fmt == "png16" else 8))
            if signing_key is not None:
                data = sign(data, {"dcm": "dicom"}.get(fmt, "png" if fmt == "png16" else fmt), info, signing_key)
            write_bytes(path, data)
            bar.update(1)
    bar.close()
    return paths
