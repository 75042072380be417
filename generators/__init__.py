"""Synthetic medical image generators (GAN, VAE, diffusion) whose every output carries provenance.

Public API::

    from generators import train_generator, generate, list_generators, list_bundled, load_generator
    from generators import create_generator, register_generator, ImageDataset

Families: ``gan`` (DCGAN), ``vae`` (convolutional VAE), ``ddpm`` (small UNet, DDPM training, DDIM sampling), ``ldm``
(latent diffusion with class conditioning and classifier-free guidance).
Bundled checkpoints live in ``generators/weights/<name>/`` (``list_bundled()``).
"""

from __future__ import annotations

from .api import generate, list_bundled, load_generator, train_generator  # noqa: E402  (needs the families)
from .base import Generator, resolve_device
from .data import EmptyDatasetError, ImageDataset
from .ddpm import DDPMGenerator
from .gan import GANGenerator
from .ldm import LDMGenerator
from .registry import create_generator, list_generators, register_generator
from .vae import VAEGenerator

__all__ = [
    "DDPMGenerator",
    "EmptyDatasetError",
    "GANGenerator",
    "Generator",
    "ImageDataset",
    "LDMGenerator",
    "VAEGenerator",
    "create_generator",
    "generate",
    "list_bundled",
    "list_generators",
    "load_generator",
    "register_generator",
    "resolve_device",
    "train_generator",
]
