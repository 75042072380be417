"""Pixel-space diffusion: ``TinyUNet`` (network) + ``DDPMScheduler`` (training noise) + ``ddim_sample`` (loop).

Trained with the DDPM ε-prediction objective, sampled with DDIM (100 steps, eta = 1 by default), EMA weights for
sampling. On 2 CPU cores, 32 px and ``block_out_channels=(32, 64, 64)`` give clean images in ~2k steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import EMA, Generator
from .registry import register_generator
from .schedulers import DDIMScheduler, DDPMScheduler, ddim_sample
from .unet import TinyUNet


@register_generator("ddpm")
class DDPMGenerator(Generator):
    """DDPM-trained, DDIM-sampled pixel diffusion model.

    Args:
        block_out_channels, layers_per_block, norm_num_groups, attention_levels: ``TinyUNet`` shape.
        num_train_timesteps, beta_schedule: the noise schedule.
        num_inference_steps, eta: DDIM sampling; eta = 1 (stochastic, DDPM-like) gives visibly cleaner samples
            than the deterministic eta = 0 for these small, briefly trained models.
        ema_decay: EMA of the UNet used for sampling (0 disables).
        weight_decay: AdamW weight decay.
    """

    family = "ddpm"
    default_batch_size = 32
    default_steps = 2000

    def __init__(
        self,
        resolution: int = 32,
        channels: int = 1,
        modality: str | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        attention_levels: tuple[int, ...] = (),
        num_train_timesteps: int = 1000,
        beta_schedule: str = "cosine",
        num_inference_steps: int = 100,
        eta: float = 1.0,
        ema_decay: float = 0.999,
        weight_decay: float = 0.0,
        **kw,
    ):
        super().__init__(
            resolution=resolution, channels=channels, modality=modality, batch_size=batch_size, lr=lr, **kw
        )
        self.block_out_channels = block_out_channels
        self.layers_per_block = layers_per_block
        self.norm_num_groups = norm_num_groups
        self.attention_levels = attention_levels
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.num_inference_steps = num_inference_steps
        self.eta = eta
        self.ema_decay = ema_decay
        self.weight_decay = weight_decay

    def _build(self) -> None:
        div = 2 ** (len(self.block_out_channels) - 1)
        if self.resolution % div:
            raise ValueError(f"resolution {self.resolution} must be divisible by {div} for {self.block_out_channels}")
        self.unet_ = TinyUNet(
            self.channels,
            tuple(self.block_out_channels),
            self.layers_per_block,
            self.norm_num_groups,
            tuple(self.attention_levels),
        )
        self.ema_ = EMA(self.unet_, self.ema_decay or 0.0)
        self.noise_scheduler_ = DDPMScheduler(self.num_train_timesteps, self.beta_schedule)

    def _modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet_, "unet_ema": self.ema_.model}

    def _inference_modules(self) -> dict[str, nn.Module]:
        return {"unet_ema": self.ema_.model}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opt = getattr(self, "opt_", None)
        return {"unet": opt} if opt is not None else {}

    def _reset_optimizers(self) -> None:
        self.opt_ = torch.optim.AdamW(self.unet_.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def _after_load(self, cfg) -> None:
        if cfg.get("inference_only"):
            self.unet_.load_state_dict(self.ema_.model.state_dict())

    def _train_step(self, x: torch.Tensor) -> dict[str, float]:
        x0 = x * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.num_train_timesteps, (x0.shape[0],), device=x0.device)
        loss = F.mse_loss(self.unet_(self.noise_scheduler_.add_noise(x0, noise, t), t), noise)
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet_.parameters(), 1.0)
        self.opt_.step()
        if self.ema_decay:
            self.ema_.update(self.unet_, self.steps_)
        else:
            self.ema_.model.load_state_dict(self.unet_.state_dict())
        return {"loss": loss.item()}

    @torch.no_grad()
    def _sample_tensor(self, noise_gen: torch.Generator, n: int) -> torch.Tensor:
        sched = DDIMScheduler(self.num_train_timesteps, self.beta_schedule, eta=self.eta)
        shape = (n, self.channels, self.resolution, self.resolution)
        x = ddim_sample(
            self.ema_.model.eval(),
            sched,
            shape,
            num_inference_steps=self.num_inference_steps,
            generator=noise_gen,
            device=self.device,
        )
        return (x + 1) / 2
