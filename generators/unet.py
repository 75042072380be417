"""A small 2D UNet for ε-prediction (diffusers ``UNet2DModel``-like, no attention by default).

``TinyUNet(in_channels=1, block_out_channels=(32, 64, 64), layers_per_block=1)`` is ~1M parameters; test
configs use ``block_out_channels=(4, 8), norm_num_groups=4`` on 8x8 inputs. With ``num_classes`` > 0 a class
embedding is added to the time embedding; index ``num_classes`` is the null class of classifier-free guidance.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.temb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class TinyUNet(nn.Module):
    """ε-prediction UNet: (x_t (B, C, H, W), t (B,)) -> ε (B, C, H, W). H and W divisible by 2**(levels-1).

    Args:
        in_channels: image channels (out = in).
        block_out_channels: width per level; one 2x downsample between levels.
        layers_per_block: residual blocks per level on the way down (one more on the way up).
        norm_num_groups: GroupNorm groups (capped by the width).
        attention_levels: indices of levels with self-attention after each block (none by default: CPU).
        num_classes: class labels 0..num_classes-1 (+ the null label ``num_classes``); 0: unconditional.
    """

    def __init__(
        self,
        in_channels: int = 1,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        attention_levels: tuple[int, ...] = (),
        num_classes: int = 0,
    ):
        super().__init__()
        ch = list(block_out_channels)
        g = norm_num_groups
        temb = ch[0] * 4
        self.temb_dim = ch[0]
        self.time_mlp = nn.Sequential(nn.Linear(ch[0], temb), nn.SiLU(), nn.Linear(temb, temb))
        self.num_classes = num_classes
        self.class_emb = nn.Embedding(num_classes + 1, temb) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, ch[0], 3, 1, 1)
        self.down = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [ch[0]]
        cin = ch[0]
        for i, c in enumerate(ch):
            for _ in range(layers_per_block):
                self.down.append(ResBlock(cin, c, temb, g))
                self.down_attn.append(SelfAttention(c, g) if i in attention_levels else nn.Identity())
                cin = c
                skips.append(c)
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, 2, 1))
                skips.append(c)
        self.mid1 = ResBlock(cin, cin, temb, g)
        self.mid_attn = SelfAttention(cin, g) if attention_levels else nn.Identity()
        self.mid2 = ResBlock(cin, cin, temb, g)
        self.up = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, c in reversed(list(enumerate(ch))):
            for _ in range(layers_per_block + 1):
                self.up.append(ResBlock(cin + skips.pop(), c, temb, g))
                self.up_attn.append(SelfAttention(c, g) if i in attention_levels else nn.Identity())
                cin = c
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, 1, 1))
        self.norm_out = nn.GroupNorm(min(g, ch[0]), ch[0])
        self.conv_out = nn.Conv2d(ch[0], in_channels, 3, 1, 1)
        self.levels = len(ch)
        self.layers_per_block = layers_per_block

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``y`` (B,) class indices (``num_classes`` = null); None: the null class (or no class embedding)."""
        emb = self.time_mlp(timestep_embedding(t, self.temb_dim))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
            emb = emb + self.class_emb(y)
        h = self.conv_in(x)
        hs = [h]
        k = 0
        for i in range(self.levels):
            for _ in range(self.layers_per_block):
                h = self.down_attn[k](self.down[k](h, emb))
                hs.append(h)
                k += 1
            if i < self.levels - 1:
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        k = 0
        for j, i in enumerate(reversed(range(self.levels))):
            for _ in range(self.layers_per_block + 1):
                h = self.up_attn[k](self.up[k](torch.cat([h, hs.pop()], dim=1), emb))
                k += 1
            if i > 0:
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))
