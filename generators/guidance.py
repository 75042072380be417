"""Classifier-free guidance (Ho & Salimans 2022) as a model wrapper the sampling loop calls like the network.

ε̂ = ε(x_t, ∅) + s · (ε(x_t, y) − ε(x_t, ∅)); s = 1 is the plain conditional model, s > 1 trades diversity for
class fidelity. Conditional and null passes run as one doubled batch.
"""

from __future__ import annotations

import torch


class ClassifierFreeGuidance:
    """``(x_t, t) -> ε̂`` for class indices ``y`` (B,) of a network ``model(x, t, y)`` whose null class is ``null``.

    ``y`` None samples the null (unconditional) class and ignores ``scale``.
    """

    def __init__(self, model: torch.nn.Module, y: torch.Tensor | None, null: int, scale: float = 1.0):
        self.model, self.y, self.null, self.scale = model, y, null, float(scale)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.y is None:
            return self.model(x, t, None).float()
        if self.scale == 1.0:
            return self.model(x, t, self.y).float()
        y = torch.cat([self.y, torch.full_like(self.y, self.null)])
        cond, uncond = self.model(torch.cat([x, x]), torch.cat([t, t]), y).float().chunk(2)
        return uncond + self.scale * (cond - uncond)
