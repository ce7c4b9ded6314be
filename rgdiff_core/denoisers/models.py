"""A small U-Net that knows no diffusion maths (STYLE.md anchor 5: the network is plain, a
wrapper owns scaling, parametrisation and loss; see network.py).

    UNet(config)(x (B, C_in, H, W), cond (B, cond_dim)) -> (B, C_out, H, W)

Layout (ADM-style): a 3x3 input conv; per resolution level `num_res_blocks` ResBlocks, then a
stride-2 downsampling conv (none after the last level); a middle of ResBlock, optional
self-attention, ResBlock at the lowest resolution; the mirror path up with one extra ResBlock per
level, each taking the matching skip connection by concatenation; GroupNorm, SiLU and a 3x3
output conv. Every ResBlock is GroupNorm -> SiLU -> conv -> GroupNorm -> FiLM -> SiLU ->
dropout -> conv, plus a (1x1 if the width changes) skip, where FiLM is h * (1 + scale) + shift
with (scale, shift) = Linear(SiLU(cond)). The last conv of every residual branch and the output
conv start at zero, so a fresh network is the identity on each block and outputs 0.

H and W must be divisible by 2^(len(channel_mult) - 1); the default (1, 2, 2) serves 8, 16, 32,
64 (lowest resolution 2, 4, 8, 16).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UNetConfig", "UNet", "parameter_count"]


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 1  # image channels the network reads
    out_channels: int = 1  # image channels it writes
    channels: int = 32  # width of the first level; level k has channels * channel_mult[k]
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one entry per resolution, halving between them
    num_res_blocks: int = 2  # ResBlocks per level going down (one more per level going up)
    attention: bool = True  # self-attention in the middle, at the lowest resolution
    heads: int = 4  # attention heads (must divide the lowest level's width)
    dropout: float = 0.0  # dropout inside every ResBlock (training only)
    cond_dim: int = 128  # width of the conditioning vector that drives every FiLM layer
    groups: int = 8  # GroupNorm groups (must divide every level's width)

    def __post_init__(self):
        def positive_int(name, value):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        for name in (
            "in_channels",
            "out_channels",
            "channels",
            "num_res_blocks",
            "heads",
            "cond_dim",
            "groups",
        ):
            positive_int(name, getattr(self, name))
        mult = tuple(self.channel_mult)
        if not mult:
            raise ValueError("channel_mult must hold at least one level")
        for m in mult:
            positive_int("channel_mult entries", m)
        object.__setattr__(self, "channel_mult", mult)
        for width in {self.channels * m for m in mult}:
            if width % self.groups:
                raise ValueError(
                    f"groups ({self.groups}) must divide every level width, not {width}"
                )
        if self.attention and (self.channels * mult[-1]) % self.heads:
            raise ValueError(
                f"heads ({self.heads}) must divide the lowest level width "
                f"({self.channels * mult[-1]})"
            )
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        """Plain dict (lists, ints, floats, bools) that `from_dict` rebuilds."""
        out = asdict(self)
        out["channel_mult"] = list(self.channel_mult)
        return out

    @classmethod
    def from_dict(cls, spec: dict) -> UNetConfig:
        if not isinstance(spec, dict):
            raise ValueError(f"model config must be a dict, got {type(spec).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - names)
        if unknown:
            raise ValueError(f"model config has unknown fields {unknown}")
        spec = dict(spec)
        if "channel_mult" in spec:
            spec["channel_mult"] = tuple(spec["channel_mult"])
        return cls(**spec)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # no p=0 kernel
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(cond))[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(self.dropout(h))


class Attention(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = (
            self.qkv(self.norm(x))
            .reshape(b, 3, self.heads, c // self.heads, h * w)
            .transpose(-1, -2)
            .unbind(1)
        )  # each (B, heads, HW, c / heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """(x (B, C_in, H, W), cond (B, cond_dim)) -> (B, C_out, H, W); see the module docstring."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = self.config = config if config is not None else UNetConfig()
        widths = [cfg.channels * m for m in cfg.channel_mult]
        block = dict(cond_dim=cfg.cond_dim, groups=cfg.groups, dropout=cfg.dropout)
        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips, c = [widths[0]], widths[0]
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                self.down.append(ResBlock(c, width, **block))
                c = width
                skips.append(c)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, **block)
        self.mid_attn = Attention(c, cfg.heads, cfg.groups) if cfg.attention else None
        self.mid2 = ResBlock(c, c, **block)
        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), widths[level], **block))
                c = widths[level]
            if level > 0:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)
                    )
                )
        self.norm_out = nn.GroupNorm(cfg.groups, c)
        self.conv_out = _zero(nn.Conv2d(c, cfg.out_channels, 3, padding=1))
        self._factor = 2 ** (len(widths) - 1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"x must have shape (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[-2] % self._factor or x.shape[-1] % self._factor:
            raise ValueError(
                f"H and W must be divisible by {self._factor}, got {tuple(x.shape[-2:])}"
            )
        if cond.shape != (x.shape[0], cfg.cond_dim):
            raise ValueError(
                f"cond must have shape ({x.shape[0]}, {cfg.cond_dim}), got {tuple(cond.shape)}"
            )
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, cond) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid1(h, cond)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, cond)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), cond)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
