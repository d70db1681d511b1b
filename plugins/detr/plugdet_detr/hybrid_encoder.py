"""RT-DETR's hybrid encoder (a neck): every level projected to ``hidden_dim``, an intra-scale
transformer layer (AIFI) on the coarsest level, and cross-scale fusion (CCFM: a top-down then a
bottom-up path of RepC3 blocks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.api import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``silu``, ``gelu``)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class ConvNormAct(nn.Module):
    """``k x k`` conv (no bias) -> BatchNorm -> activation (none when ``act`` is empty).
    ``(B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 act: str = "") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=(kernel_size - 1) // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = activation(act) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.act(self.norm(self.conv(x)))
        return out


class RepVggBlock(nn.Module):
    """``act(BN(conv3x3(x)) + BN(conv1x1(x)))``, the training form of a RepVGG block.
    ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, channels: int, act: str = "silu") -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, 3)
        self.conv2 = ConvNormAct(channels, channels, 1)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.act(self.conv1(x) + self.conv2(x))
        return out


class RepC3(nn.Module):
    """CSP block of RepVGG blocks (``CSPRepLayer``): two ``1x1`` branches of
    ``out_channels * expansion`` channels, ``num_blocks`` RepVGG blocks on the first, their sum,
    and a ``1x1`` conv to ``out_channels`` when the widths differ.
    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 3,
                 expansion: float = 1.0, act: str = "silu") -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvNormAct(in_channels, hidden, 1, act=act)
        self.conv2 = ConvNormAct(in_channels, hidden, 1, act=act)
        self.bottlenecks = nn.Sequential(*(RepVggBlock(hidden, act) for _ in range(num_blocks)))
        self.conv3: nn.Module = (ConvNormAct(hidden, out_channels, 1, act=act)
                                 if hidden != out_channels else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))
        return out


def sincos_position_embedding(height: int, width: int, dim: int, temperature: float = 10000.0
                              ) -> Tensor:
    """2-D sine-cosine position embedding of a ``height x width`` map, ``(1, H * W, dim)``
    row-major: ``[sin(y w), cos(y w), sin(x w), cos(x w)]`` with ``dim / 4`` frequencies
    ``w_k = temperature ** (-k / (dim / 4))`` of the row ``y`` and column ``x``."""
    if dim % 4:
        raise ConfigError(f"hidden_dim: the 2-D sin-cos embedding needs a multiple of 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
    y = rows.flatten()[:, None] * omega[None]
    x = cols.flatten()[:, None] * omega[None]
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1)[None]


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer encoder layer; the position embedding is added to queries and
    keys only. ``(B, N, C) -> (B, N, C)``."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0,
                 act: str = "gelu") -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = activation(act)

    def forward(self, src: Tensor, pos_embed: Tensor) -> Tensor:
        q = k = src + pos_embed
        attended, _ = self.self_attn(q, k, value=src, need_weights=False)
        src = self.norm1(src + self.dropout1(attended))
        ffn = self.linear2(self.dropout(self.activation(self.linear1(src))))
        out: Tensor = self.norm2(src + self.dropout2(ffn))
        return out


class TransformerEncoder(nn.Module):
    """``num_layers`` :class:`TransformerEncoderLayer` in sequence. ``(B, N, C) -> (B, N, C)``."""

    def __init__(self, num_layers: int, dim: int, num_heads: int, ffn_dim: int,
                 dropout: float, act: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerEncoderLayer(dim, num_heads, ffn_dim, dropout, act)
                                    for _ in range(num_layers))

    def forward(self, src: Tensor, pos_embed: Tensor) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos_embed)
        return src


class HybridEncoder(nn.Module):
    """Projection, AIFI and CCFM of RT-DETR.

    Input: ``len(in_channels)`` maps ``(B, C_i, H_i, W_i)``, finest first, each level half the
    size of the previous; output: as many maps ``(B, hidden_dim, H_i, W_i)``.

    :param in_channels: channels of the backbone levels.
    :param hidden_dim: channels of every output (and of the transformer).
    :param num_heads: attention heads of the intra-scale layer.
    :param ffn_dim: hidden width of its feed-forward network.
    :param dropout: dropout of the intra-scale layer.
    :param enc_act: its feed-forward activation.
    :param encoder_levels: levels the intra-scale transformer runs on (RT-DETR: the last).
    :param num_encoder_layers: transformer layers per such level.
    :param pe_temperature: temperature of the sin-cos position embedding.
    :param expansion: hidden width of the RepC3 blocks relative to ``hidden_dim``.
    :param depth_mult: RepVGG blocks per RepC3 block: ``round(3 * depth_mult)``.
    :param act: activation of the fusion convs.
    """

    def __init__(self, in_channels: tuple[int, ...] = (512, 1024, 2048), hidden_dim: int = 256,
                 num_heads: int = 8, ffn_dim: int = 1024, dropout: float = 0.0,
                 enc_act: str = "gelu", encoder_levels: tuple[int, ...] = (2,),
                 num_encoder_layers: int = 1, pe_temperature: float = 10000.0,
                 expansion: float = 1.0, depth_mult: float = 1.0, act: str = "silu") -> None:
        super().__init__()
        num_levels = len(in_channels)
        if num_levels < 2:
            raise ConfigError(f"in_channels: expected at least 2 levels, got {list(in_channels)}")
        if any(level not in range(num_levels) for level in encoder_levels):
            raise ConfigError(f"encoder_levels: expected indices in 0..{num_levels - 1}, "
                              f"got {list(encoder_levels)}")
        if hidden_dim % 4:
            raise ConfigError(f"hidden_dim: expected a multiple of 4, got {hidden_dim}")
        self.hidden_dim = hidden_dim
        self.encoder_levels = tuple(encoder_levels)
        self.pe_temperature = pe_temperature
        self.out_channels = [hidden_dim] * num_levels
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, hidden_dim, 1, bias=False), nn.BatchNorm2d(hidden_dim))
            for c in in_channels)
        self.encoder = nn.ModuleList(
            TransformerEncoder(num_encoder_layers, hidden_dim, num_heads, ffn_dim, dropout,
                               enc_act)
            for _ in self.encoder_levels)
        num_blocks = round(3 * depth_mult)
        self.lateral_convs = nn.ModuleList(
            ConvNormAct(hidden_dim, hidden_dim, 1, act=act) for _ in range(num_levels - 1))
        self.fpn_blocks = nn.ModuleList(
            RepC3(2 * hidden_dim, hidden_dim, num_blocks, expansion, act)
            for _ in range(num_levels - 1))
        self.downsample_convs = nn.ModuleList(
            ConvNormAct(hidden_dim, hidden_dim, 3, 2, act=act) for _ in range(num_levels - 1))
        self.pan_blocks = nn.ModuleList(
            RepC3(2 * hidden_dim, hidden_dim, num_blocks, expansion, act)
            for _ in range(num_levels - 1))

    def forward(self, feats: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """:param feats: the backbone levels, finest first. :returns: the fused levels."""
        if len(feats) != len(self.input_proj):
            raise ValueError(f"HybridEncoder: expected {len(self.input_proj)} levels, "
                             f"got {len(feats)}")
        proj = [layer(x) for layer, x in zip(self.input_proj, feats, strict=True)]
        for encoder, level in zip(self.encoder, self.encoder_levels, strict=True):
            batch, _, height, width = proj[level].shape
            tokens = proj[level].flatten(2).transpose(1, 2)
            pos = sincos_position_embedding(height, width, self.hidden_dim, self.pe_temperature)
            memory = encoder(tokens, pos.to(tokens))
            proj[level] = memory.transpose(1, 2).reshape(batch, self.hidden_dim, height, width)
        # top-down: coarsest to finest
        inner = [proj[-1]]
        for step, level in enumerate(range(len(proj) - 1, 0, -1)):
            high = self.lateral_convs[step](inner[0])
            inner[0] = high
            upsampled = F.interpolate(high, scale_factor=2.0, mode="nearest")
            inner.insert(0, self.fpn_blocks[step](torch.cat([upsampled, proj[level - 1]], 1)))
        # bottom-up: finest to coarsest
        outs = [inner[0]]
        for step in range(len(proj) - 1):
            down = self.downsample_convs[step](outs[-1])
            outs.append(self.pan_blocks[step](torch.cat([down, inner[step + 1]], 1)))
        return tuple(outs)
