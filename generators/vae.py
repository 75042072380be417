"""Convolutional VAE: ``ConvEncoder`` / ``ConvDecoder`` networks and the ``VAEGenerator`` estimator.

Loss = per-image sum of squared errors + ``kl_weight`` x KL(q(z|x) || N(0, I)); ``kl_weight`` < 1 is a
Gaussian decoder with a smaller fixed variance (sharper, slightly less prior-matched samples).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Generator
from .registry import register_generator


def _levels(resolution: int) -> int:
    n = int(round(math.log2(resolution / 4)))
    if 4 * 2**n != resolution or n < 1:
        raise ValueError(f"VAE resolution must be 4 * 2**k (8, 16, 32, 64, 128...), got {resolution}")
    return n


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c // 4) or 1, c)


class ConvEncoder(nn.Module):
    """image (B, C, R, R) in [0, 1] -> (mu, logvar), each (B, z_dim)."""

    def __init__(self, channels: int, resolution: int, base: int = 32, z_dim: int = 64):
        super().__init__()
        n = _levels(resolution)
        widths = [base * min(2**i, 8) for i in range(n)]
        layers: list[nn.Module] = []
        cin = channels
        for w in widths:
            layers += [nn.Conv2d(cin, w, 4, 2, 1), _gn(w), nn.SiLU()]
            cin = w
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(cin * 16, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.head(self.net(x * 2 - 1).flatten(1))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)


class ConvDecoder(nn.Module):
    """z (B, z_dim) -> image (B, C, R, R) in [0, 1]."""

    def __init__(self, channels: int, resolution: int, base: int = 32, z_dim: int = 64):
        super().__init__()
        n = _levels(resolution)
        widths = [base * min(2**i, 8) for i in range(n)][::-1]
        self.w0 = widths[0]
        self.fc = nn.Linear(z_dim, widths[0] * 16)
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:] + [widths[-1]], strict=True):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1), _gn(cout), nn.SiLU()]
        layers.append(nn.Conv2d(widths[-1], channels, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.fc(z).view(-1, self.w0, 4, 4)))


class ConvVAE(nn.Module):
    def __init__(self, channels: int = 1, resolution: int = 64, base: int = 32, z_dim: int = 64):
        super().__init__()
        self.encoder = ConvEncoder(channels, resolution, base, z_dim)
        self.decoder = ConvDecoder(channels, resolution, base, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder(z), mu, logvar


@register_generator("vae")
class VAEGenerator(Generator):
    """Convolutional VAE estimator (samples decode z ~ N(0, I)).

    Args:
        z_dim: latent size; base: width of the first encoder level; kl_weight: see module docstring.
        temperature: scale of the prior noise at sampling time (1.0 = the prior).
    """

    family = "vae"
    default_batch_size = 64
    default_steps = 1000

    def __init__(
        self,
        resolution: int = 64,
        channels: int = 1,
        modality: str | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        z_dim: int = 64,
        base: int = 32,
        kl_weight: float = 0.1,
        temperature: float = 1.0,
        **kw,
    ):
        super().__init__(
            resolution=resolution, channels=channels, modality=modality, batch_size=batch_size, lr=lr, **kw
        )
        self.z_dim = z_dim
        self.base = base
        self.kl_weight = kl_weight
        self.temperature = temperature

    def _build(self) -> None:
        self.vae_ = ConvVAE(self.channels, self.resolution, self.base, self.z_dim)

    def _modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.vae_.encoder, "decoder": self.vae_.decoder}

    def _inference_modules(self) -> dict[str, nn.Module]:
        return {"decoder": self.vae_.decoder}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opt = getattr(self, "opt_", None)
        return {"vae": opt} if opt is not None else {}

    def _reset_optimizers(self) -> None:
        self.opt_ = torch.optim.Adam(self.vae_.parameters(), lr=self.lr)

    def _train_step(self, x: torch.Tensor) -> dict[str, float]:
        recon, mu, logvar = self.vae_(x)
        rec = (recon - x).pow(2).flatten(1).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        loss = rec + self.kl_weight * kl
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_.step()
        return {"rec": rec.item(), "kl": kl.item()}

    @torch.no_grad()
    def _sample_tensor(self, noise_gen: torch.Generator, n: int) -> torch.Tensor:
        z = torch.randn(n, self.z_dim, generator=noise_gen) * self.temperature
        return self.vae_.decoder(z.to(self.device))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior means (B, z_dim) of images (B, C, R, R) in [0, 1]."""
        self.vae_.encoder.eval()
        return self.vae_.encoder(images.to(self.device))[0]
