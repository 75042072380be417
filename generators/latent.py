"""The first stage of latent diffusion: an autoencoder between images in [0, 1] and normalised latents.

It reuses a bundled fake-maker autoencoder (``generators/fakemakers``: grayscale, stride 8, 4 latent channels,
L1 ~0.013 on real crops) instead of training one per model: it is fully convolutional and was trained on chest
X-ray, CT and dermoscopy intensities, so it encodes any grayscale modality at 256 px. Colour images go through it
one plane at a time (3 x 4 = 12 latent channels), so no RGB autoencoder has to be trained on a CPU budget; the
planes are luma and two chroma differences (full-range YCbCr), not R, G and B: the chroma latents have a small
spread, so after normalisation a diffusion error there is a small colour error, where independent errors in R, G
and B latents (the first derm_ldm run) came out as coloured blotches.
The autoencoder has no KL term, so its latents are brought to zero mean and unit variance per channel with
statistics measured on the training set (the role of Stable Diffusion's scale factor).
"""

from __future__ import annotations

import torch
from torch import nn

#: ITU-R BT.601 full range: luma and the two chroma differences (offset by 0.5 to stay in [0, 1]).
_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_CHROMA_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def load_fake_maker_autoencoder(name: str) -> nn.Module:
    """The bundled fake-maker autoencoder ``name`` (e.g. ``ae_transposed_s8``), in float32."""
    from generators.fakemakers import fake_maker, fake_maker_names

    known = [n for n in fake_maker_names("ae_*") if fake_maker(n).available()]
    if name not in known:
        raise FileNotFoundError(f"no bundled autoencoder {name!r} for the first stage (known: "
                                f"{', '.join(known) or 'none'})")
    return fake_maker(name).model()


class LatentNorm(nn.Module):
    """Per-channel mean and standard deviation of the training latents (buffers, saved with the model)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    @torch.no_grad()
    def fit(self, z: torch.Tensor) -> None:
        self.mean.copy_(z.mean(dim=(0, 2, 3)))
        self.std.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-4))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.view(1, -1, 1, 1) + self.mean.view(1, -1, 1, 1)


class FirstStage(nn.Module):
    """Image (B, C, H, W) in [0, 1] <-> normalised latent (B, C * latent, H / stride, W / stride).

    Args:
        autoencoder: a bundled fake-maker autoencoder name.
        channels: image channels (1 or 3); each is encoded on its own.
    """

    def __init__(self, autoencoder: str = "ae_transposed_s8", channels: int = 1):
        super().__init__()
        ae = load_fake_maker_autoencoder(autoencoder)
        self.encoder, self.decoder = ae.encoder, ae.decoder
        self.stride = ae.stride
        self.channels = channels
        self.latent_per_channel = ae.encoder[-1].out_channels
        self.latent_channels = channels * self.latent_per_channel
        self.norm = LatentNorm(self.latent_channels)

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 3:
            x = torch.einsum("oc,bchw->bohw", _RGB_TO_YCBCR.to(x), x) + _CHROMA_OFFSET.to(x).view(1, 3, 1, 1)
        b, c, h, w = x.shape
        z = self.encoder(x.reshape(b * c, 1, h, w))
        return z.reshape(b, c * z.shape[1], *z.shape[2:])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encode_raw(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = self.norm.inverse(z)
        b, _, h, w = z.shape
        x = torch.sigmoid(self.decoder(z.reshape(b * self.channels, self.latent_per_channel, h, w)))
        x = x.reshape(b, self.channels, *x.shape[2:])
        if self.channels == 3:
            x = x - _CHROMA_OFFSET.to(x).view(1, 3, 1, 1)
            x = torch.einsum("oc,bchw->bohw", torch.linalg.inv(_RGB_TO_YCBCR).to(x), x).clamp(0, 1)
        return x
