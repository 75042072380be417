"""The patch CNN: a tiny timm ResNet trained from scratch on patches of standardized grayscale images.

A checkpoint folder is ``config.json`` (constructor arguments of the timm model + patch policy) and
``weights.safetensors`` (fp16). Weights load with ``safetensors`` only - never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

#: Defaults of the bundled model: resnet10t with 1/4 of the channels (~0.3 M parameters) on a 5 x 5 grid of 32 px
#: patches of the 256 px standardized image. At 256 px a 512 px generator's decoder traces survive the
#: standardization (at 128 px, as before issue 13, a 4x area shrink averaged them away); 25 small patches instead of
#: whole images keep training and scanning cheap on a shared 2-core CPU.
DEFAULT_CONFIG: dict[str, Any] = {
    "arch": "resnet10t",
    "model_kwargs": {"in_chans": 1, "num_classes": 1, "channels": [16, 32, 64, 128], "stem_width": 16},
    "patch": 32,
    "size": 256,
    "grid": 5,
    "aggregate": "mean",
    "norm_mean": 0.5,
    "norm_std": 0.25,
}


def builtin(config: dict[str, Any]) -> bool:
    """True when ``config`` asks for what ``resnet.py`` builds (resnet10t with these keyword arguments only): no timm
    needed."""
    return config.get("arch") == "resnet10t" and set(config.get("model_kwargs", {})) <= {
        "in_chans", "num_classes", "channels", "stem_width"}


def build_model(config: dict[str, Any]):
    """The timm network for ``config`` (random init; ``pretrained=False`` - nothing is downloaded). ``resnet10t``
    (the bundled model) is built by ``resnet.py`` instead, the same modules without importing timm (cold start)."""
    from forensics.analyzers.cnn import resnet

    kw = dict(config["model_kwargs"])
    if "channels" in kw:
        kw["channels"] = tuple(kw["channels"])
    if builtin(config):
        return resnet.ResNet10T(**kw)
    import timm

    return timm.create_model(config["arch"], pretrained=False, **kw)


def tile_patches(image: np.ndarray, patch: int, grid: int) -> np.ndarray:
    """float32 (grid*grid, patch, patch): a regular grid of patches covering a standardized (S, S) image.

    When ``grid * patch`` exceeds S, patches overlap evenly; when it is smaller, they are spread evenly.
    """
    s = image.shape[0]
    if s < patch:
        raise ValueError(f"image side {s} < patch {patch}")
    starts = np.linspace(0, s - patch, grid).round().astype(int) if grid > 1 else np.array([(s - patch) // 2])
    return np.stack([image[y : y + patch, x : x + patch] for y in starts for x in starts]).astype(np.float32)


def save_checkpoint(model, config: dict[str, Any], directory: str | Path) -> list[Path]:
    """Write ``weights.safetensors`` (fp16) and ``config.json`` atomically; returns the paths."""
    from forensics.atomic import write_text
    from forensics.trainloop import save_tensors

    d = Path(directory)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
    save_tensors(d / "weights.safetensors", tensors, metadata={"format": "pt", "arch": config["arch"]})
    write_text(d / "config.json", json.dumps(config, indent=1))
    return [d / "weights.safetensors", d / "config.json"]


def load_checkpoint(directory: str | Path):
    """(model in eval mode, config) from a checkpoint folder; safetensors only."""
    from safetensors.torch import load_file

    d = Path(directory)
    config = json.loads((d / "config.json").read_text())
    model = build_model(config)
    state = load_file(str(d / "weights.safetensors"))
    ref = model.state_dict()
    state = {k: v.to(ref[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, config


def patch_logits(model, config: dict[str, Any], images: np.ndarray) -> np.ndarray:
    """Raw patch logits, float32 (n, grid, grid), for standardized images (n, S, S)."""
    import torch

    g, p = config["grid"], config["patch"]
    tiles = np.stack([tile_patches(im, p, g) for im in images])  # (n, g*g, p, p)
    x = torch.from_numpy((tiles.reshape(-1, 1, p, p) - config["norm_mean"]) / config["norm_std"])
    with torch.inference_mode():
        out = model(x.float()).reshape(len(images), g, g)
    return out.numpy().astype(np.float32)


def aggregate(logits: np.ndarray, how: str = "mean") -> np.ndarray:
    """Image logit (n,) from patch logits (n, g, g): ``mean`` or ``topk`` (mean of the top quarter)."""
    flat = logits.reshape(logits.shape[0], -1)
    if how == "mean":
        return flat.mean(axis=1)
    if how == "topk":
        k = max(1, flat.shape[1] // 4)
        return np.sort(flat, axis=1)[:, -k:].mean(axis=1)
    raise ValueError(f"unknown aggregate {how!r}")
