"""CNNDetection-style detector, after Wang, Wang, Zhang, Owens, Efros, "CNN-generated images are surprisingly easy
to spot... for now", CVPR 2020 (code: PeterWang512/CNNDetection).

Re-implemented: a ResNet-50 binary classifier (``timm.create_model("resnet50", pretrained=False)``) trained with the
paper's "Blur+JPEG (0.5)" augmentation (Gaussian blur sigma ~ U[0, 3] with probability 0.5, JPEG quality ~ U{30..100}
with probability 0.5) on our real / synthetic training split.

Honest deviations: the paper fine-tunes an ImageNet-pretrained ResNet-50 on 720 k ProGAN images at 224 px for days on
GPUs. Here nothing is downloaded, so the network starts from random weights, sees grayscale 64 x 64 standardized
images (random 56 px crops) and trains for a CPU budget of about a minute on 2 shared cores - a few hundred
steps. Expect it to be far weaker than the published model; it is here to show how the architecture behaves on
this data at this budget, not to reproduce the paper's numbers.
"""

from __future__ import annotations

import numpy as np

from benchmarks.baselines._common import gray_stack, state_arrays, torch_predict, train_torch
from benchmarks.detectors import BaseDetector, register_detector


def blur_jpeg(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The Blur+JPEG (0.5) augmentation on a batch (n, S, S) float32 in [0, 1]."""
    import cv2

    from forensics.formatpath import jpeg_roundtrip

    out = []
    for x in batch:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if rng.random() < 0.5:
            sigma = float(rng.uniform(0.0, 3.0))
            if sigma > 0.05:
                x = cv2.GaussianBlur(x, (0, 0), sigma)
        if rng.random() < 0.5:
            x = jpeg_roundtrip(x, int(rng.integers(30, 101)))
        out.append(x)
    return np.stack(out)


def _build():
    import timm
    from torch import nn

    class Normalized(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = timm.create_model("resnet50", pretrained=False, in_chans=1, num_classes=1)

        def forward(self, x):
            return self.net((x - 0.5) / 0.25)

    return Normalized()


@register_detector("cnndetection")
class CNNDetectionDetector(BaseDetector):
    """timm ResNet-50 from scratch with Blur+JPEG augmentation (CNNDetection-style, Wang et al., CVPR 2020)."""

    name = "cnndetection"
    version = "1.0"

    def __init__(self, size: int = 64, crop: int = 56, steps: int = 400, time_budget_s: float | None = 60.0,
                 batch: int = 16, lr: float = 1e-3, seed: int = 0):
        self.size = size
        self.crop = crop
        self.steps = steps
        self.time_budget_s = time_budget_s
        self.batch = batch
        self.lr = lr
        self.seed = seed

    def fit(self, images, labels) -> CNNDetectionDetector:
        import torch

        torch.manual_seed(self.seed)
        self.model_ = _build()
        self.log_ = train_torch(self.model_, gray_stack(images, self.size), np.asarray(labels).astype(int),
                                steps=self.steps, time_budget_s=self.time_budget_s, batch=self.batch, lr=self.lr,
                                seed=self.seed, augment=blur_jpeg, crop=min(self.crop, self.size))
        return self

    def predict_proba(self, images) -> np.ndarray:
        return torch_predict(self.model_, gray_stack(images, self.size))

    def _state(self) -> list:
        return state_arrays(self.model_) if hasattr(self, "model_") else []
