"""Latent diffusion: ``FirstStage`` (autoencoder) + ``TinyUNet`` with a class embedding (network) + ``DDPMScheduler``
/ ``DDIMScheduler`` (schedule) + ``ddim_sample`` with ``ClassifierFreeGuidance`` (loop), as in diffusers and MONAI
Generative.

The autoencoder brings a 256 px image to a 32 x 32 latent (stride 8), where a small UNet is cheap enough to train and
sample on a CPU; the decoder gives the image back at full resolution (nothing is upsampled after sampling). Training
images are encoded once (with their flips when the dataset allows flips) and the UNet learns ε-prediction on
normalised latents; class labels are dropped to the null class with probability ``label_dropout`` so that one
network gives both terms of classifier-free guidance. On CUDA, training and sampling run under bfloat16 autocast;
the starting noise is always drawn on the CPU, so a seed gives the same images on either device (up to rounding).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import EMA, Generator, write_grid
from .guidance import ClassifierFreeGuidance
from .latent import FirstStage
from .registry import register_generator
from .schedulers import DDIMScheduler, DDPMScheduler, ddim_inpaint, ddim_sample
from .unet import TinyUNet


class LatentSet:
    """A dataset encoded once: normalised latents (N, C', h, w) and class indices (N,) (``null`` = no class)."""

    def __init__(self, latents: torch.Tensor, labels: torch.Tensor):
        self.latents, self.labels = latents, labels

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None):
        idx = torch.randint(len(self.latents), (batch_size,), generator=generator)
        return self.latents[idx], self.labels[idx]


@register_generator("ldm")
class LDMGenerator(Generator):
    """Class-conditional latent diffusion with DDIM sampling and classifier-free guidance.

    Args:
        autoencoder: the bundled fake-maker autoencoder used as first stage (``generators.latent``).
        classes: class names, fixed at the first ``fit`` from the dataset's labels (sorted; unlabelled images
            train the null class); empty: unconditional.
        block_out_channels, layers_per_block, norm_num_groups, attention_levels: ``TinyUNet`` shape (attention
            at the 8 x 8 level by default: cheap, and it gives the latent a global layout).
        num_train_timesteps, beta_schedule: the noise schedule.
        num_inference_steps, eta: DDIM sampling (eta = 0: deterministic given the starting noise).
        guidance: default classifier-free guidance scale when a class is asked for.
        clip_latent: bound on each step's estimate of the clean latent (normalised latents of real images stay
            within about ±3.7); 0 disables. Without it a briefly trained UNet's first estimates blow up.
        label_dropout: share of training labels replaced by the null class.
        ema_decay: EMA of the UNet used for sampling.
    """

    family = "ldm"
    default_batch_size = 32
    default_steps = 3000

    def __init__(
        self,
        resolution: int = 256,
        channels: int = 1,
        modality: str | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        autoencoder: str = "ae_transposed_s8",
        classes: tuple[str, ...] = (),
        block_out_channels: tuple[int, ...] = (32, 48, 64),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        attention_levels: tuple[int, ...] = (2,),
        num_train_timesteps: int = 1000,
        beta_schedule: str = "scaled_linear",
        num_inference_steps: int = 50,
        eta: float = 0.0,
        guidance: float = 3.0,
        clip_latent: float = 4.0,
        label_dropout: float = 0.15,
        ema_decay: float = 0.999,
        **kw,
    ):
        super().__init__(
            resolution=resolution, channels=channels, modality=modality, batch_size=batch_size, lr=lr, **kw
        )
        self.autoencoder = autoencoder
        self.classes = list(classes)
        self.block_out_channels = block_out_channels
        self.layers_per_block = layers_per_block
        self.norm_num_groups = norm_num_groups
        self.attention_levels = attention_levels
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.num_inference_steps = num_inference_steps
        self.eta = eta
        self.guidance = guidance
        self.clip_latent = clip_latent
        self.label_dropout = label_dropout
        self.ema_decay = ema_decay

    # ------------------------------------------------------------------ networks
    def _build(self) -> None:
        self.first_stage_ = FirstStage(self.autoencoder, self.channels)
        self.first_stage_.requires_grad_(False)
        div = self.first_stage_.stride * 2 ** (len(self.block_out_channels) - 1)
        if self.resolution % div:
            raise ValueError(f"resolution {self.resolution} must be divisible by {div} (autoencoder stride "
                             f"{self.first_stage_.stride} x UNet levels {list(self.block_out_channels)})")
        self.unet_ = TinyUNet(self.first_stage_.latent_channels, tuple(self.block_out_channels),
                              self.layers_per_block, self.norm_num_groups, tuple(self.attention_levels),
                              num_classes=len(self.classes))
        self.ema_ = EMA(self.unet_, self.ema_decay or 0.0)
        self.noise_scheduler_ = DDPMScheduler(self.num_train_timesteps, self.beta_schedule)

    def _modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet_, "unet_ema": self.ema_.model, "first_stage": self.first_stage_}

    def _inference_modules(self) -> dict[str, nn.Module]:
        # sampling needs the decoder and the latent statistics, not the encoder
        fs = self.first_stage_
        return {"unet_ema": self.ema_.model, "decoder": fs.decoder, "latent_norm": fs.norm}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opt = getattr(self, "opt_", None)
        return {"unet": opt} if opt is not None else {}

    def _reset_optimizers(self) -> None:
        self.opt_ = torch.optim.AdamW(self.unet_.parameters(), lr=self.lr, weight_decay=0.0)

    def _after_load(self, cfg: dict[str, Any]) -> None:
        if cfg.get("inference_only"):
            self.unet_.load_state_dict(self.ema_.model.state_dict())

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ training
    def fit(self, dataset, **kwargs) -> LDMGenerator:
        """``Generator.fit``; a fresh model first takes its class names from the dataset's labels."""
        if not self.is_fitted and not self.classes and getattr(dataset, "labels", None) is not None:
            self.classes = sorted({c for c in dataset.labels if c})
        return super().fit(dataset, **kwargs)

    @torch.no_grad()
    def _training_data(self, dataset) -> LatentSet:
        """Encode every training image once (plus its flips when the dataset flips), on the training device."""
        images = dataset.images
        views = [images]
        if getattr(dataset, "hflip", False):
            views.append(images.flip(3))
        if getattr(dataset, "vflip", False):
            views += [v.flip(2) for v in list(views)]
        names = dataset.labels if getattr(dataset, "labels", None) is not None else [""] * len(images)
        index = {c: i for i, c in enumerate(self.classes)}
        null = len(self.classes)
        y = torch.tensor([index.get(c, null) for c in names], dtype=torch.long)
        fs = self.first_stage_.eval()
        chunks = []
        for v in views:
            for i in range(0, len(v), 32):
                with self._autocast():
                    chunks.append(fs.encode_raw(v[i : i + 32].to(self.device)).float().cpu())
        raw = torch.cat(chunks)
        if self.steps_ == 0:  # a resumed model keeps the statistics its UNet was trained on
            fs.norm.fit(raw.to(self.device))
        latents = fs.norm(raw.to(self.device)).cpu()
        # per-batch shifts and intensity jitter would need an encoder pass per step: only flips are used
        self.data_ = {**self.data_, "augment": False, "latent_views": len(views)}
        print(f"ldm: {len(latents)} training latents {tuple(latents.shape[1:])} ({len(views)} view(s) of "
              f"{len(images)} images)", file=sys.stderr, flush=True)
        return LatentSet(latents, y.repeat(len(views)))

    def _train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        z0, y = batch
        if self.classes:
            drop = torch.rand(y.shape, device=y.device) < self.label_dropout
            y = torch.where(drop, torch.full_like(y, len(self.classes)), y)
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.num_train_timesteps, (z0.shape[0],), device=z0.device)
        with self._autocast():
            pred = self.unet_(self.noise_scheduler_.add_noise(z0, noise, t), t, y if self.classes else None)
        loss = F.mse_loss(pred.float(), noise)
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet_.parameters(), 1.0)
        self.opt_.step()
        if self.ema_decay:
            self.ema_.update(self.unet_, self.steps_)
        else:
            self.ema_.model.load_state_dict(self.unet_.state_dict())
        return {"loss": loss.item()}

    def _write_samples(self, path, n: int = 6) -> None:
        """The training grid, small (a 256 px sample costs about a second of CPU): ``n`` unconditional draws, or
        one row of ``n // 2`` per class at the default guidance."""
        import numpy as np

        per = max(1, n // 2) if self.classes else n
        rows = [self.sample(per, seed=0, class_label=c) for c in self.classes] or [self.sample(per, seed=0)]
        write_grid(path, np.concatenate(rows), ncol=per)
        for m in self._modules().values():
            m.train()

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int = 0, class_label: str | None = None, guidance: float | None = None):
        """Draw ``n`` images of ``class_label`` (None: unconditional) at guidance scale ``guidance`` (default
        ``self.guidance``; 1 = no guidance). Raises ValueError for a class the model was not trained on."""
        self._class_index(class_label, guidance)  # refuse before any work
        return super().sample(n, seed, class_label=class_label, guidance=guidance)

    def _class_index(self, class_label: str | None, guidance: float | None) -> int | None:
        if guidance is not None and guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {guidance}")
        if class_label is None:
            if guidance is not None:
                raise ValueError("--guidance needs --class: guidance steers towards a class")
            return None
        if not self.classes:
            raise ValueError(f"{getattr(self, 'name_', 'this model')} is an unconditional ldm generator: it takes "
                             f"no --class")
        if class_label not in self.classes:
            raise ValueError(f"unknown class {class_label!r}; this model knows: {', '.join(self.classes)}")
        return self.classes.index(class_label)

    def _sampling(self, n: int, class_label: str | None, guidance: float | None):
        """(guided network, fresh DDIM scheduler) for ``n`` images of ``class_label``."""
        k = self._class_index(class_label, guidance)
        y = None if k is None else torch.full((n,), k, dtype=torch.long, device=self.device)
        scale = self.guidance if guidance is None else float(guidance)
        model = ClassifierFreeGuidance(self.ema_.model.eval(), y, len(self.classes), scale)
        sched = DDIMScheduler(self.num_train_timesteps, self.beta_schedule, eta=self.eta,
                              clip_sample=bool(self.clip_latent), clip_range=self.clip_latent)
        return model, sched

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, hole: torch.Tensor, *, strength: float = 1.0, resample: int = 1,
                seed: int = 0, class_label: str | None = None, guidance: float | None = None) -> torch.Tensor:
        """``images`` (B, C, R, R) in [0, 1] at the model's resolution with the region ``hole`` (B, 1, R, R; 1 =
        regenerate) re-sampled in latent space (``ddim_inpaint``, its ``strength`` and ``resample``), decoded.
        Every latent cell the hole touches is regenerated, and the whole output is decoder-made: callers blend it
        back inside the hole."""
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            raise ValueError(f"inpaint takes {self.resolution} px images, got {tuple(images.shape[-2:])}")
        model, sched = self._sampling(images.shape[0], class_label, guidance)
        fs = self.first_stage_.eval()
        with self._autocast():
            known = fs.encode(images.to(self.device).float())
            keep = 1 - F.max_pool2d(hole.to(self.device).float(), fs.stride)
            z = ddim_inpaint(model, sched, known, keep, strength=strength, resample=resample,
                             num_inference_steps=self.num_inference_steps,
                             generator=torch.Generator().manual_seed(int(seed)))
            return fs.decode(z.float()).float().clamp(0, 1).cpu()

    @torch.no_grad()
    def _sample_tensor(self, noise_gen: torch.Generator, n: int, class_label: str | None = None,
                       guidance: float | None = None) -> torch.Tensor:
        model, sched = self._sampling(n, class_label, guidance)
        side = self.resolution // self.first_stage_.stride
        shape = (n, self.first_stage_.latent_channels, side, side)
        with self._autocast():
            z = ddim_sample(model, sched, shape, num_inference_steps=self.num_inference_steps, generator=noise_gen,
                            device=self.device)
            return self.first_stage_.eval().decode(z.float()).float()
