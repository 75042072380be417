"""NPR-style detector, after Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for
Generalizable Deepfake Detection", CVPR 2024 (code: chuangchuangtan/NPR-DeepfakeDetection).

Re-implemented: the Neighbouring Pixel Relationships residual ``NPR = x - up_nearest(down_nearest(x, 1/2))``, scaled
by 2/3 as in the authors' code, fed into a tiny ResNet trunk (stem + two basic-block stages, global average pool,
one logit). Deviations: grayscale 128 x 128 standardized input (random 96 px crops and flips in training), the trunk
is narrower than NPR's ResNet-50-up-to-layer2 (about 60 k parameters instead of 1.44 M) and it is trained from scratch
on our data for a CPU budget of seconds to minutes, not on ProGAN.
"""

from __future__ import annotations

import numpy as np

from benchmarks.baselines._common import gray_stack, state_arrays, torch_predict, train_torch
from benchmarks.detectors import BaseDetector, register_detector


def _build(width: int):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.skip(x))

    class NPRNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            self.layer1 = Block(width, width, 1)
            self.layer2 = Block(width, 2 * width, 2)
            self.fc = nn.Linear(2 * width, 1)

        @staticmethod
        def npr(x):
            down = F.interpolate(x, scale_factor=0.5, mode="nearest")
            return (x - F.interpolate(down, scale_factor=2.0, mode="nearest")) * (2.0 / 3.0)

        def forward(self, x):
            h = self.layer2(self.layer1(self.stem(self.npr(x) * 4.0)))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    return NPRNet()


@register_detector("npr")
class NPRDetector(BaseDetector):
    """x - up(down(x)) residual into a tiny ResNet trunk (NPR-style, Tan et al., CVPR 2024)."""

    name = "npr"
    version = "1.0"

    def __init__(self, size: int = 128, crop: int = 96, width: int = 24, steps: int = 600,
                 time_budget_s: float | None = 60.0, batch: int = 32, lr: float = 2e-3, seed: int = 0):
        self.size = size
        self.crop = crop
        self.width = width
        self.steps = steps
        self.time_budget_s = time_budget_s
        self.batch = batch
        self.lr = lr
        self.seed = seed

    def fit(self, images, labels) -> NPRDetector:
        import torch

        torch.manual_seed(self.seed)
        self.model_ = _build(self.width)
        self.log_ = train_torch(self.model_, gray_stack(images, self.size), np.asarray(labels).astype(int),
                                steps=self.steps, time_budget_s=self.time_budget_s, batch=self.batch, lr=self.lr,
                                seed=self.seed, crop=min(self.crop, self.size))
        return self

    def predict_proba(self, images) -> np.ndarray:
        return torch_predict(self.model_, gray_stack(images, self.size))

    def _state(self) -> list:
        return state_arrays(self.model_) if hasattr(self, "model_") else []
