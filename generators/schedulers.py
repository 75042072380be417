"""Noise schedules and samplers (diffusers-style method names so a later swap is mechanical).

``DDPMScheduler`` owns β/ᾱ and ``add_noise`` for training; ``DDIMScheduler`` shares the schedule and does
deterministic (η = 0) or stochastic sampling with ``set_timesteps(n)`` + ``step(eps, t, x_t)``.
Images live in [-1, 1] inside the diffusion process.
"""

from __future__ import annotations

import math

import torch


def betas_for(schedule: str, num_train_timesteps: int) -> torch.Tensor:
    """β_t for ``"linear"`` (1e-4 .. 0.02), ``"scaled_linear"`` (linear in sqrt β, 0.00085 .. 0.012: latent
    diffusion's, whose last ᾱ stays near 0.005 so the first DDIM step does not divide by ~0) or ``"cosine"``
    (Nichol & Dhariwal 2021, clipped at 0.999)."""
    if schedule == "linear":
        return torch.linspace(1e-4, 0.02, num_train_timesteps, dtype=torch.float64)
    if schedule == "scaled_linear":
        return torch.linspace(0.00085**0.5, 0.012**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {schedule!r}; use 'linear', 'scaled_linear' or 'cosine'")


class DDPMScheduler:
    """The forward (noising) process q(x_t | x_0)."""

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "cosine"):
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.betas = betas_for(beta_schedule, num_train_timesteps)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, for integer t (B,)."""
        a = self.alphas_cumprod.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise


class DDIMScheduler(DDPMScheduler):
    """DDIM sampler (Song et al. 2021) over the DDPM schedule."""

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "cosine",
        eta: float = 0.0,
        clip_sample: bool = True,
        clip_range: float = 1.0,
    ):
        super().__init__(num_train_timesteps, beta_schedule)
        self.eta = eta
        self.clip_sample = clip_sample
        self.clip_range = clip_range  # |x_0| bound: 1 for pixels in [-1, 1], a few std for normalised latents
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Evenly spaced (``leading``-style) timesteps, descending."""
        step = self.num_train_timesteps // num_inference_steps
        self.step_ratio = step
        self.timesteps = (torch.arange(num_inference_steps) * step).flip(0) + (
            self.num_train_timesteps - 1 - (num_inference_steps - 1) * step
        )

    def step(
        self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One reverse step from timestep ``t`` to the previous one in ``self.timesteps``."""
        ac = self.alphas_cumprod
        prev = int(t) - self.step_ratio
        a_t = float(ac[int(t)])
        a_prev = float(ac[prev]) if prev >= 0 else 1.0
        x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_range, self.clip_range)
            eps = (x_t - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = self.eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x_prev = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            noise = torch.randn(x_t.shape, generator=generator).to(x_t.device)
            x_prev = x_prev + sigma * noise
        return x_prev


@torch.no_grad()
def ddim_sample(
    model: torch.nn.Module,
    scheduler: DDIMScheduler,
    shape: tuple[int, ...],
    *,
    num_inference_steps: int = 50,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """The sampling loop: x_T ~ N(0, I) on CPU (reproducible across devices) -> x_0 in [-1, 1]."""
    from tqdm.auto import tqdm

    scheduler.set_timesteps(num_inference_steps)
    x = torch.randn(shape, generator=generator).to(device)
    for t in tqdm(scheduler.timesteps.tolist(), disable=not progress, desc="ddim", leave=False):
        tt = torch.full((shape[0],), t, device=device, dtype=torch.long)
        x = scheduler.step(model(x, tt), t, x, generator=generator)
    return x


@torch.no_grad()
def ddim_inpaint(
    model: torch.nn.Module,
    scheduler: DDIMScheduler,
    known: torch.Tensor,
    keep: torch.Tensor,
    *,
    strength: float = 1.0,
    num_inference_steps: int = 50,
    resample: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blended sampling (Avrahami et al., Blended Latent Diffusion, 2023): regenerate where ``keep`` is 0 and keep
    ``known`` (x_0, same shape) where it is 1. After every step the kept part is replaced by ``known`` noised to the
    step's timestep with the same noise, so the new part is sampled in the context of the old. ``strength`` in (0, 1]
    is the share of the schedule run (SDEdit): 1 starts from pure noise, less keeps the coarse content of ``known``
    inside the region too. ``resample`` > 1 (RePaint, Lugmayr et al. 2022): each step is undone by re-noising and run
    again that many times, so the new part settles into its surroundings instead of only being pasted beside them."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    scheduler.set_timesteps(num_inference_steps)
    ts = scheduler.timesteps.tolist()
    ts = ts[len(ts) - max(1, round(strength * len(ts))):]
    noise = torch.randn(known.shape, generator=generator).to(known.device)

    def noised(t: int) -> torch.Tensor:
        return scheduler.add_noise(known, noise, torch.full((known.shape[0],), t, device=known.device))

    ac = scheduler.alphas_cumprod
    x = noised(ts[0])
    for i, t in enumerate(ts):
        tt = torch.full((known.shape[0],), t, device=known.device, dtype=torch.long)
        for u in range(resample):
            if u:  # back from the previous timestep to t: q(x_t | x_prev)
                a = float(ac[t]) / (float(ac[ts[i + 1]]) if i + 1 < len(ts) else 1.0)
                x = math.sqrt(a) * x + math.sqrt(1 - a) * torch.randn(x.shape, generator=generator).to(x.device)
            x = scheduler.step(model(x, tt), t, x, generator=generator)
            x = keep * (noised(ts[i + 1]) if i + 1 < len(ts) else known) + (1 - keep) * x
    return x
