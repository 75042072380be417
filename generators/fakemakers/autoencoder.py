"""Autoencoder re-synthesis: the real image encoded to a small latent and decoded again, by decoders with four
kinds of upsampler and three latent strides (the first stage of latent diffusion, VAE and VQ models)."""

from __future__ import annotations

import json

import numpy as np

from generators.fakemakers import FakeMaker, register_fake_maker

#: (upsampler, latent stride) of the bundled autoencoders: every upsampler, every stride at least once.
BUNDLED = (("transposed", 8), ("nearest", 4), ("bilinear", 8), ("pixelshuffle", 16), ("transposed", 4),
           ("pixelshuffle", 8))


def maker_name(upsampler: str, stride: int) -> str:
    return f"ae_{upsampler}_s{stride}"


def family_of(upsampler: str) -> str:
    """Calibration family: decoders that learn their upsampling (transposed conv, pixel shuffle) leave periodic
    traces; those that interpolate first leave smooth ones. Each family is held out in turn."""
    return "ae_learned_up" if upsampler in ("transposed", "pixelshuffle") else "ae_interp_up"


class AutoEncoderMaker(FakeMaker):
    upsampler = "transposed"
    stride = 8

    def __init__(self, weights_dir=None):
        super().__init__(weights_dir)
        self._model = None

    @property
    def path(self):
        return self.weights_dir / f"{self.name}.safetensors"

    def available(self) -> bool:
        return self.path.is_file()

    def model(self):
        """The trained network (loaded once; safetensors only, never pickle)."""
        if self._model is None:
            from safetensors import safe_open
            from safetensors.torch import load_file

            from generators.fakemakers.network import AutoEncoder

            with safe_open(str(self.path), "pt") as fh:
                config = json.loads(fh.metadata()["config"])
            model = AutoEncoder(**config)
            model.load_state_dict({k: v.float() for k, v in load_file(str(self.path)).items()})
            self._model = model.eval()
        return self._model

    def remake(self, gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import torch

        h, w = gray.shape
        s = self.stride
        ph, pw = -h % s, -w % s
        x = np.pad(np.asarray(gray, np.float32), ((0, ph), (0, pw)), mode="reflect")
        with torch.inference_mode():
            y = self.model()(torch.from_numpy(x)[None, None])[0, 0].numpy()
        return np.clip(y[:h, :w], 0.0, 1.0).astype(np.float32)


for _up, _stride in BUNDLED:
    register_fake_maker(type(f"AE_{_up}_{_stride}", (AutoEncoderMaker,), {
        "name": maker_name(_up, _stride), "family": family_of(_up), "upsampler": _up, "stride": _stride}))
