"""The in-painting network of ``remove``: a small U-Net that fills a disk of a 32 px patch from its surroundings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: Side of the square patch the network sees; crops are scaled to it and back.
PATCH = 32
#: The bundled weights (``weights.safetensors`` + ``config.json``), trained by ``train_inpainter``.
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "tamper_inpaint"

_CACHE: dict[str, Any] = {}


def _net_cls():
    import torch
    from torch import nn

    class InpaintNet(nn.Module):
        """Masked patch (normalized) + mask (B, 2, 32, 32) -> filled patch (B, 1, 32, 32).

        A small U-Net: 32 -> 16 -> 8 px with dilated convolutions at the bottom (the receptive field covers the
        whole patch), two skips; about 0.1 M parameters.
        """

        def __init__(self, width: int = 16):
            super().__init__()
            w = width
            act = nn.SiLU

            def conv(cin, cout, s=1, d=1):
                return nn.Sequential(nn.Conv2d(cin, cout, 3, s, padding=d, dilation=d), act())

            self.enc1 = conv(2, w)
            self.enc2 = nn.Sequential(conv(w, 2 * w, s=2), conv(2 * w, 2 * w))
            self.enc3 = conv(2 * w, 3 * w, s=2)
            self.mid = nn.Sequential(*[conv(3 * w, 3 * w, d=d) for d in (1, 2, 4, 1)])
            self.up3 = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), conv(3 * w, 2 * w)
            )
            self.dec2 = conv(4 * w, 2 * w)
            self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), conv(2 * w, w))
            self.dec1 = nn.Sequential(conv(2 * w, w), nn.Conv2d(w, 1, 3, padding=1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e1 = self.enc1(x)
            e2 = self.enc2(e1)
            m = self.mid(self.enc3(e2))
            d2 = self.dec2(torch.cat([self.up3(m), e2], 1))
            out = self.dec1(torch.cat([self.up2(d2), e1], 1))
            known, mask = x[:, :1], x[:, 1:2]
            return known * (1 - mask) + out * mask

    return InpaintNet


def InpaintNet(width: int = 16):  # noqa: N802 - a factory that reads like the class it builds (torch imported late)
    return _net_cls()(width)


def load_inpainter(weights_dir: str | os.PathLike | None = None):
    """The trained :class:`InpaintNet` (eval mode, CPU) from ``weights_dir``, or None when the weights are missing."""
    d = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    key = str(d)
    if key in _CACHE:
        return _CACHE[key]
    wf, cf = d / "weights.safetensors", d / "config.json"
    if not (wf.is_file() and cf.is_file()):
        return None
    from safetensors.torch import load_file

    cfg = json.loads(cf.read_text())
    net = InpaintNet(**cfg.get("model", {}))
    state = {k: v.float() for k, v in load_file(str(wf)).items()}
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    _CACHE[key] = net
    return net


def forget(weights_dir: str | os.PathLike) -> None:
    """Drop a cached network (after new weights were written to ``weights_dir``)."""
    _CACHE.pop(str(Path(weights_dir)), None)
