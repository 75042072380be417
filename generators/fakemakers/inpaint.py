"""Local in-painting: one region of the real image replaced by a decoder's re-synthesis and blended in, the way a
finding is added to or erased from a real scan. The rest of the image stays real, so the detector must find a local
trace, not a global one."""

from __future__ import annotations

import cv2
import numpy as np

from generators.fakemakers import FakeMaker, fake_maker, fake_maker_names, register_fake_maker


@register_fake_maker
class LocalInpaint(FakeMaker):
    name = "inpaint_local"
    family = "local"

    def _decoders(self) -> list[FakeMaker]:
        makers = [fake_maker(n, self.weights_dir) for n in fake_maker_names("ae_*")]
        return [m for m in makers if m.available()]

    def available(self) -> bool:
        return bool(self._decoders())

    def remake(self, gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        decoders = self._decoders()
        decoder = decoders[int(rng.integers(len(decoders)))]
        h, w = gray.shape
        # an ellipse covering 5-25 % of the image, feathered so there is no seam to find
        ry, rx = (rng.uniform(0.15, 0.35, 2) * (h, w)).astype(int)
        cy, cx = int(rng.integers(ry, max(ry + 1, h - ry))), int(rng.integers(rx, max(rx + 1, w - rx)))
        mask = np.zeros((h, w), np.float32)
        cv2.ellipse(mask, (cx, cy), (max(2, rx), max(2, ry)), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.08 * min(rx, ry)))
        return (gray * (1 - mask) + decoder.remake(gray, rng) * mask).astype(np.float32)
