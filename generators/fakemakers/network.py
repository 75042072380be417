"""Small convolutional autoencoders whose decoders differ in the way they upsample - the part of a generator that
leaves its fingerprint (checkerboards of transposed convolutions, the smoothness of interpolation, the phase
pattern of pixel shuffle) - and in the latent stride (4, 8 or 16, as in latent diffusion's first stages)."""

from __future__ import annotations

import math

import torch
from torch import nn

UPSAMPLERS = ("transposed", "nearest", "bilinear", "pixelshuffle")


def _up(kind: str, c_in: int, c_out: int) -> nn.Module:
    if kind == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
    if kind in ("nearest", "bilinear"):
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind), nn.Conv2d(c_in, c_out, 3, padding=1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown upsampler {kind!r}; known: {', '.join(UPSAMPLERS)}")


class AutoEncoder(nn.Module):
    """Grayscale image -> ``latent`` channels at 1/``stride`` -> image; fully convolutional (any size divisible by
    ``stride``)."""

    def __init__(self, upsampler: str = "transposed", stride: int = 8, width: int = 16, latent: int = 4):
        super().__init__()
        levels = int(math.log2(stride))
        if 2**levels != stride or levels < 1:
            raise ValueError(f"stride must be a power of two, got {stride}")
        widths = [min(width * 2**i, 96) for i in range(levels + 1)]
        enc: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, padding=1), nn.SiLU()]
        for i in range(levels):
            enc += [nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.SiLU()]
        enc += [nn.Conv2d(widths[-1], latent, 1)]
        dec: list[nn.Module] = [nn.Conv2d(latent, widths[-1], 3, padding=1), nn.SiLU()]
        for i in range(levels, 0, -1):
            dec += [_up(upsampler, widths[i], widths[i - 1]), nn.SiLU(), nn.Conv2d(widths[i - 1], widths[i - 1], 3,
                                                                                     padding=1), nn.SiLU()]
        dec += [nn.Conv2d(widths[0], 1, 3, padding=1)]
        self.encoder, self.decoder, self.stride = nn.Sequential(*enc), nn.Sequential(*dec), stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x)))
