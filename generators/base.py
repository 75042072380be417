"""The generator contract shared by every family: config, fit loop, sampling, checkpoints.

A checkpoint dir is ``weights.safetensors`` (model tensors, and for a full checkpoint the optimizer state)
+ ``config.json`` (constructor arguments, family, steps done, training data description, version). Nothing is
pickled; ``torch.load`` is never used.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from forensics import trainloop
from forensics.atomic import write_bytes

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"


def tool_version() -> str:
    """The installed medaudit version, or ``0+unknown`` when running from a bare checkout."""
    try:
        from importlib.metadata import version

        return version("medaudit")
    except Exception:  # noqa: BLE001 - not installed: still usable from a checkout
        return "0+unknown"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_uint8_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile images float32 (N, H, W) or (N, H, W, 3) in [0, 1] into one uint8 grid (rows x cols)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncol = ncol or int(math.ceil(math.sqrt(n)))
    nrow = int(math.ceil(n / ncol))
    grid = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y : y + h, x : x + w] = np.clip(im * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return grid[..., 0] if c == 1 else grid


def write_grid(path: str | os.PathLike, images: np.ndarray, ncol: int | None = None) -> Path:
    """Save a sample grid as PNG (atomically). Colour images are float RGB; cv2 wants BGR."""
    import cv2

    grid = to_uint8_grid(images, ncol)
    if grid.ndim == 3:
        grid = grid[..., ::-1]
    ok, buf = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError(f"could not encode sample grid {path}")
    return write_bytes(path, buf.tobytes())


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied), with a warm-up.

    The decay ramps as ``min(decay, (1 + step) / (10 + step))`` so a short CPU run is not dominated by the
    random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for pe, p in zip(self.model.parameters(), model.parameters(), strict=True):
            pe.lerp_(p.detach(), 1.0 - d)
        for be, b in zip(self.model.buffers(), model.buffers(), strict=True):
            be.copy_(b)


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, val in state.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            out[f"{prefix}.{idx}.{key}"] = t.detach().cpu().contiguous()
    return out


def _restore_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> bool:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if not name.startswith(prefix + "."):
            continue
        idx, key = name[len(prefix) + 1 :].split(".", 1)
        state.setdefault(int(idx), {})[key] = t
    if not state:
        return False
    sd["state"] = state
    opt.load_state_dict(sd)
    return True


class Generator:
    """Base class of every generator family (scikit-learn style).

    ``__init__`` stores hyper-parameters verbatim; ``fit`` builds the networks (learned state ends in ``_``)
    and returns ``self``; ``sample(n, seed)`` returns float32 images in [0, 1], (n, H, W) for grayscale or
    (n, H, W, 3) for RGB.

    Subclasses set ``family`` and ``default_batch_size`` and implement ``_build``, ``_modules`` (name ->
    module saved in the checkpoint), ``_inference_modules`` (the ones ``sample`` needs), ``_optimizers``,
    ``_train_step`` and ``_sample_tensor``.
    """

    family: str = "base"
    default_batch_size: int = 32
    default_steps: int = 1000

    def __init__(
        self,
        resolution: int = 64,
        channels: int = 1,
        modality: str | None = None,
        batch_size: int | None = None,
        lr: float = 2e-4,
        output_resolution: int | None = None,
        **_ignored: Any,
    ):
        self.resolution = resolution
        self.output_resolution = output_resolution
        self.channels = channels
        self.modality = modality
        self.batch_size = batch_size
        self.lr = lr
        if _ignored:
            warnings.warn(f"{type(self).__name__}: ignoring unknown arguments {sorted(_ignored)}", stacklevel=2)

    # ------------------------------------------------------------------ config
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (the scikit-learn ``get_params`` idea), JSON-serialisable."""
        import inspect

        names = []
        for cls in type(self).__mro__:
            if cls is object:
                continue
            for p in inspect.signature(cls.__init__).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
        return {n: _jsonable(getattr(self, n)) for n in names if hasattr(self, n)}

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "steps_")

    @property
    def device(self) -> torch.device:
        return getattr(self, "device_", torch.device("cpu"))

    def _ensure_built(self, device: torch.device) -> None:
        if not self.is_fitted:
            self._build()
            self.steps_ = 0
            self.train_seconds_ = 0.0
            self.data_ = {}
        self.device_ = device
        for m in self._modules().values():
            m.to(device)
        if not self._optimizers():
            self._reset_optimizers()

    # ------------------------------------------------------------------ to implement
    def _build(self) -> None:
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def _inference_modules(self) -> dict[str, torch.nn.Module]:
        return self._modules()

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def _train_step(self, batch: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def _sample_tensor(self, noise_gen: torch.Generator, n: int, **condition: Any) -> torch.Tensor:
        """Return (n, C, H, W) in [0, 1] on ``self.device``; ``condition`` is what a conditional ``sample`` takes."""
        raise NotImplementedError

    def _before_sampling(self) -> None:
        """Hook (e.g. BatchNorm recalibration) run before sample grids and saves."""

    def _training_data(self, dataset):
        """Hook: what ``fit`` draws batches from (``sample_batch(batch_size, generator)`` -> a tensor or a tuple
        of tensors, handed to ``_train_step``); the dataset itself by default, pre-encoded latents for latent
        diffusion."""
        return dataset

    # ------------------------------------------------------------------ training
    def fit(
        self,
        dataset,
        max_steps: int | None = None,
        time_budget_s: float | None = None,
        device: str = "auto",
        seed: int = 0,
        progress: bool = True,
        sample_every: int | None = 250,
        out_dir: str | os.PathLike | None = None,
        checkpoint_every_s: float = 120.0,
    ) -> Generator:
        """Train on ``dataset`` (a ``generators.data.ImageDataset``).

        Args:
            dataset: provides ``sample_batch(batch_size, generator) -> float32 (B, C, H, W) in [0, 1]``.
            max_steps: total optimisation steps (counting steps restored from ``out_dir``); ``None`` with no
                ``time_budget_s`` means ``default_steps``.
            time_budget_s: wall-clock seconds for this call.
            device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda:0"``...
            seed: seeds parameter init (fresh runs) and batch order.
            progress: tqdm bar on stderr.
            sample_every: write ``samples_{step:06d}.png`` every so many steps (needs ``out_dir``); None: only
                at the end.
            out_dir: checkpoint dir; when it already holds a checkpoint, training resumes from it (weights,
                EMA, optimizer state, step count).
            checkpoint_every_s: also save the checkpoint at most this often while training.

        Returns:
            self
        """
        dev = resolve_device(device)
        out = Path(out_dir) if out_dir is not None else None
        if out is not None and (out / WEIGHTS_FILE).exists() and (out / CONFIG_FILE).exists():
            self._resume_from(out, dev)
        else:
            if not self.is_fitted:
                trainloop.seed_torch(seed)
            self._ensure_built(dev)
        if dataset.channels != self.channels:
            raise ValueError(f"dataset has {dataset.channels} channel(s) but the generator expects {self.channels}")
        if dataset.resolution != self.resolution:
            raise ValueError(f"dataset resolution {dataset.resolution} != generator resolution {self.resolution}")
        self.data_ = dataset.describe()
        if self.modality is None:
            self.modality = dataset.modality
        if max_steps is None and time_budget_s is None:
            max_steps = self.default_steps
        bs = self.batch_size or self.default_batch_size
        source = self._training_data(dataset)
        # batches continue where a resumed run stopped instead of repeating its first ones
        rng = torch.Generator().manual_seed(seed * 1_000_003 + self.steps_)
        for m in self._modules().values():
            m.train()

        def step(_: int) -> dict[str, float]:
            batch = source.sample_batch(bs, rng)
            batch = tuple(b.to(dev) for b in batch) if isinstance(batch, tuple) else batch.to(dev)
            t0 = time.monotonic()
            logs = self._train_step(batch)
            self.steps_ += 1
            self.train_seconds_ += time.monotonic() - t0
            return logs

        def write_samples(steps: int) -> None:
            self._write_samples(out / f"samples_{steps:06d}.png")

        def checkpoint(_: int) -> None:
            self.save(out)

        saving = out is not None
        res = trainloop.run(step, max_steps=max_steps, time_budget_s=time_budget_s, start_step=self.steps_,
                            every=[(sample_every or 0, write_samples)] if saving else (),
                            checkpoint=checkpoint if saving else None, checkpoint_every_s=checkpoint_every_s,
                            progress=progress, desc=f"{self.family} {self.resolution}px")
        self.last_logs_ = res.logs
        if out is not None:
            self.save(out)
            self._write_samples(out / "samples.png")
        return self

    def _write_samples(self, path: Path, n: int = 36) -> None:
        write_grid(path, self.sample(n, seed=0))
        for m in self._modules().values():
            m.train()

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, **condition: Any) -> np.ndarray:
        """Draw ``n`` images.

        Returns:
            float32 (n, H, W) in [0, 1] for 1 channel, (n, H, W, 3) for RGB. The same ``seed`` gives the same
            images on the same device and weights.
        """
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load()")
        self._before_sampling()
        for m in self._modules().values():
            m.eval()
        g = torch.Generator().manual_seed(int(seed))
        x = self._sample_tensor(g, int(n), **condition).float().clamp(0, 1)
        if self.output_resolution and self.output_resolution != self.resolution:
            # bicubic: a 32 px model still gives images big enough for the watermark and for viewers
            x = torch.nn.functional.interpolate(
                x, size=(self.output_resolution,) * 2, mode="bicubic", align_corners=False
            ).clamp(0, 1)
        x = x.cpu().numpy()
        x = np.transpose(x, (0, 2, 3, 1))
        return np.ascontiguousarray(x[..., 0] if self.channels == 1 else x, dtype=np.float32)

    def parameter_count(self, inference_only: bool = True) -> int:
        mods = self._inference_modules() if inference_only else self._modules()
        return sum(p.numel() for m in mods.values() for p in m.parameters())

    # ------------------------------------------------------------------ checkpoints
    def config(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": self.get_params(),
            "resolution": self.resolution,
            "output_resolution": self.output_resolution or self.resolution,
            "channels": self.channels,
            "modality": self.modality,
            "steps": getattr(self, "steps_", 0),
            "train_seconds": round(getattr(self, "train_seconds_", 0.0), 1),
            "data": getattr(self, "data_", {}),
            "version": tool_version(),
            "format_version": FORMAT_VERSION,
        }

    def save(
        self,
        directory: str | os.PathLike,
        *,
        inference_only: bool = False,
        half: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``weights.safetensors`` + ``config.json`` into ``directory`` (atomically, file by file).

        Args:
            inference_only: keep only what ``sample`` needs (EMA generator / decoder...), no optimizer state:
                the form bundled weights ship in. Training from it restarts optimizers.
            half: store floating tensors as float16 (loaded back as float32).
            extra: more keys for ``config.json`` (e.g. name, licence, wall time).
        """
        if not self.is_fitted:
            raise RuntimeError("nothing to save: the generator is not fitted")
        self._before_sampling()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        mods = self._inference_modules() if inference_only else self._modules()
        for name, m in mods.items():
            for k, v in m.state_dict().items():
                t = v.detach().cpu()
                if half and t.is_floating_point():
                    t = t.half()
                tensors[f"{name}.{k}"] = t.contiguous()
        if not inference_only:
            for name, opt in self._optimizers().items():
                tensors.update(_flatten_optimizer(f"optim.{name}", opt))
        cfg = self.config()
        cfg["inference_only"] = inference_only
        cfg["dtype"] = "float16" if half else "float32"
        if extra:
            cfg.update(extra)
        trainloop.save_tensors(directory / WEIGHTS_FILE, tensors,
                               metadata={"family": self.family, "format_version": str(FORMAT_VERSION)})
        write_bytes(directory / CONFIG_FILE, (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode())
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "auto") -> Generator:
        """Rebuild a generator from a checkpoint dir. Called on the base class, dispatches on ``family``."""
        directory = Path(directory)
        cfg = read_config(directory)
        if cls is Generator or cls.family != cfg["family"]:
            from .registry import _REGISTRY

            gen = _REGISTRY.create(cfg["family"], **cfg["params"])
        else:
            gen = cls(**cfg["params"])
        gen._load_state(directory, cfg, resolve_device(device))
        return gen

    def _load_state(self, directory: Path, cfg: dict[str, Any], dev: torch.device) -> None:
        self._build()
        tensors = load_file(str(directory / WEIGHTS_FILE))
        mods = self._inference_modules() if cfg.get("inference_only") else self._modules()
        for name, m in mods.items():
            sd = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
            ref = m.state_dict()
            sd = {k: v.to(ref[k].dtype) if k in ref else v for k, v in sd.items()}
            m.load_state_dict(sd)
        self._after_load(cfg)
        self.steps_ = int(cfg.get("steps", 0))
        self.train_seconds_ = float(cfg.get("train_seconds", 0.0))
        self.data_ = cfg.get("data", {})
        self.modality = cfg.get("modality", self.modality)
        self.device_ = dev
        for m in self._modules().values():
            m.to(dev)
        self._restored_optim_ = False
        if not cfg.get("inference_only"):
            # optimizers hold references to the parameters, so they are (re)made after .to(dev)
            self._reset_optimizers()
            restored = [_restore_optimizer(f"optim.{n}", o, tensors) for n, o in self._optimizers().items()]
            self._restored_optim_ = bool(restored) and all(restored)

    def _after_load(self, cfg: dict[str, Any]) -> None:
        """Hook: e.g. copy EMA weights into a module the checkpoint did not hold."""

    def _reset_optimizers(self) -> None:
        """Re-create optimizers for the current parameters (subclasses with optimizers override)."""

    def _resume_from(self, directory: Path, dev: torch.device) -> None:
        self._load_state(directory, read_config(directory), dev)
        if not self._restored_optim_:
            self._reset_optimizers()
            warnings.warn(f"{directory}: no optimizer state in the checkpoint; optimizers restart", stacklevel=3)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{directory} is not a checkpoint dir (needs {WEIGHTS_FILE} and {CONFIG_FILE})")
    return json.loads(path.read_text())


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    return v
