"""Fake makers: re-synthesize real images through other decoders, so real and fake share content and differ only in
how the pixels were made (semantically aligned pairs, as in B-Free (CVPR 2025) and DRCT (ICML 2024)).

A detector trained on our few whole-image generators learns those generators; one trained on real images against
their own re-syntheses through many decoders (autoencoders with different upsamplers and latent strides, locally
in-painted regions) learns the traces decoders leave, which third-party generators share. Each maker is one module
that registers itself::

    @register_fake_maker
    class MyMaker(FakeMaker):
        name, family = "my_maker", "my_family"
        def remake(self, gray, rng): ...

``family`` groups makers for calibration: the detector suite holds families out in turn, so ``medium`` and
``high`` mean the same on a decoder it never saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forensics.registry import Registry

_REGISTRY = Registry("fake maker")
#: Where bundled fake-maker weights live (one safetensors file + JSON config per maker).
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "weights" / "fakemakers"


class FakeMaker:
    """Turns a real grayscale image into a synthetic one of the same content.

    ``remake(gray, rng)`` takes float32 (H, W) in [0, 1] and returns float32 of the same shape; makers with weights
    load them from ``weights_dir`` (default: the bundled ones) and report ``available()`` False when there are none.
    """

    name = "base"
    family = "base"

    def __init__(self, weights_dir: str | Path | None = None):
        self.weights_dir = Path(weights_dir) if weights_dir is not None else BUNDLED_DIR

    def available(self) -> bool:
        return True

    def remake(self, gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


def register_fake_maker(cls: type[FakeMaker]) -> type[FakeMaker]:
    _REGISTRY.register(cls.name)(cls)
    return cls


def fake_maker(name: str, weights_dir: str | Path | None = None) -> FakeMaker:
    return _REGISTRY.create(name, weights_dir=weights_dir)


def fake_maker_names(pattern: str = "*") -> list[str]:
    return _REGISTRY.names(pattern)


from generators.fakemakers import autoencoder, inpaint  # noqa: E402,F401  (the bundled makers register themselves)
