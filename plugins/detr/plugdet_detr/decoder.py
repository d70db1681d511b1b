"""RT-DETR's decoder: query selection from the encoder memory (IoU-aware top-k over anchors),
deformable-attention decoder layers refining the boxes layer by layer, and the class and box
heads of every layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.api import ConfigError
from plugdet_detr.deformable_attention import MSDeformableAttention
from plugdet_detr.denoising import DenoisingQueries, inverse_sigmoid
from plugdet_detr.outputs import DetrOutputs

#: Half-range of fp16, the bound of the last residual before its norm (as the reference).
FP16_MAX = 65504.0


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them. ``(..., in_dim) -> (..., out_dim)``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(d_in, d_out) for d_in, d_out in zip(dims, [*dims[1:], out_dim], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DecoderLayer(nn.Module):
    """Self-attention among the queries -> deformable cross-attention into the memory ->
    FFN, each followed by a residual and a LayerNorm (post-norm). ``(B, Q, C) -> (B, Q, C)``."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, num_levels: int,
                 num_points: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MSDeformableAttention(dim, num_heads, num_levels, num_points)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, target: Tensor, reference: Tensor, memory: Tensor,
                spatial_shapes: Sequence[tuple[int, int]], query_pos: Tensor,
                attn_mask: Tensor | None = None) -> Tensor:
        """:param target: ``(B, Q, C)`` query contents. :param reference: ``(B, Q, 4)`` boxes.
        :param memory: ``(B, N, C)``. :param query_pos: ``(B, Q, C)``.
        :param attn_mask: ``(Q, Q)`` bool, True = blocked."""
        q = k = target + query_pos
        attended, _ = self.self_attn(q, k, value=target, attn_mask=attn_mask, need_weights=False)
        target = self.norm1(target + self.dropout1(attended))
        sampled = self.cross_attn(target + query_pos, reference, memory, spatial_shapes)
        target = self.norm2(target + self.dropout2(sampled))
        ffn = self.linear2(self.dropout3(F.relu(self.linear1(target))))
        out: Tensor = self.norm3((target + self.dropout4(ffn)).clamp(-FP16_MAX, FP16_MAX))
        return out


def anchor_boxes(spatial_shapes: Sequence[tuple[int, int]], grid_size: float = 0.05,
                 device: torch.device | None = None) -> Tensor:
    """One anchor per cell of every level, normalised by the padded input.

    Level ``l``'s anchors are centred on the cells, ``(x + 0.5) / W_l, (y + 0.5) / H_l``, with
    width and height ``grid_size * 2 ** l``.

    :returns: ``(1, N, 4)`` ``cx, cy, w, h``, ``N = sum H_l W_l``, levels in order, cells
        row-major (the order of the flattened memory).
    """
    anchors = []
    for level, (height, width) in enumerate(spatial_shapes):
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
        centres = (torch.stack([xs, ys], -1) + 0.5) / torch.tensor([width, height],
                                                                   dtype=torch.float32)
        sizes = torch.full_like(centres, grid_size * 2.0 ** level)
        anchors.append(torch.cat([centres, sizes], -1).reshape(1, height * width, 4))
    return torch.cat(anchors, 1).to(device)


def make_anchors(spatial_shapes: Sequence[tuple[int, int]], grid_size: float = 0.05,
                 eps: float = 0.01, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """The anchors of :func:`anchor_boxes` in logit space. An anchor with a coordinate outside
    ``(eps, 1 - eps)`` is invalid: its logit anchor is ``inf``.

    :returns: ``(1, N, 4)`` anchors ``inverse_sigmoid(cx, cy, w, h)`` and ``(1, N, 1)`` bool
        valid mask, ``N = sum H_l W_l``, levels in order, cells row-major.
    """
    boxes = anchor_boxes(spatial_shapes, grid_size, device)
    valid = ((boxes > eps) & (boxes < 1 - eps)).all(-1, keepdim=True)
    logits = torch.log(boxes / (1 - boxes))
    return torch.where(valid, logits, torch.inf), valid


class RTDETRDecoder(nn.Module):
    """Input projection, query selection, decoder layers and heads of RT-DETR.

    :param num_classes: ``C``.
    :param in_channels: channels of the encoder levels (finest first).
    :param hidden_dim: width of queries and memory.
    :param num_queries: ``Q``, queries selected from the encoder memory.
    :param num_layers: decoder layers ``L``.
    :param num_heads: attention heads.
    :param num_points: deformable sampling points per head and level.
    :param ffn_dim: hidden width of each layer's FFN.
    :param dropout: dropout of the decoder layers.
    :param num_denoising: denoising queries per batch (0: no denoising, no label embedding).
    :param eval_idx: the layer whose output is the prediction at test time (-1: last).
    :param anchor_eps: anchors with a coordinate outside ``(eps, 1 - eps)`` are invalid.
    """

    def __init__(self, num_classes: int, in_channels: Sequence[int] = (256, 256, 256),
                 hidden_dim: int = 256, num_queries: int = 300, num_layers: int = 6,
                 num_heads: int = 8, num_points: int = 4, ffn_dim: int = 1024,
                 dropout: float = 0.0, num_denoising: int = 100, eval_idx: int = -1,
                 anchor_eps: float = 0.01) -> None:
        super().__init__()
        if not -num_layers <= eval_idx < num_layers:
            raise ConfigError(f"eval_idx: expected -{num_layers}..{num_layers - 1}, got {eval_idx}")
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.num_levels = len(in_channels)
        self.eval_idx = eval_idx % num_layers
        self.anchor_eps = anchor_eps
        self.input_proj = nn.ModuleList()
        for channels in in_channels:
            proj = nn.Sequential()
            proj.add_module("conv", nn.Conv2d(channels, hidden_dim, 1, bias=False))
            proj.add_module("norm", nn.BatchNorm2d(hidden_dim))
            self.input_proj.append(proj)
        self.layers = nn.ModuleList(
            DecoderLayer(hidden_dim, num_heads, ffn_dim, self.num_levels, num_points, dropout)
            for _ in range(num_layers))
        self.denoising_class_embed = (nn.Embedding(num_classes + 1, hidden_dim,
                                                   padding_idx=num_classes)
                                      if num_denoising > 0 else None)
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, num_layers=2)
        self.enc_output = nn.Sequential(nn.Linear(hidden_dim, hidden_dim),
                                        nn.LayerNorm(hidden_dim))
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, num_layers=3)
        self.dec_score_head = nn.ModuleList(nn.Linear(hidden_dim, num_classes)
                                            for _ in range(num_layers))
        self.dec_bbox_head = nn.ModuleList(MLP(hidden_dim, hidden_dim, 4, num_layers=3)
                                           for _ in range(num_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Class biases at prior probability 0.01, box deltas starting at zero, Xavier for the
        encoder output and the query position embedding."""
        prior_bias = -math.log((1 - 0.01) / 0.01)
        for score in [self.enc_score_head, *self.dec_score_head]:
            nn.init.constant_(cast(nn.Linear, score).bias, prior_bias)
        for box in [self.enc_bbox_head, *self.dec_bbox_head]:
            last = cast(nn.Linear, cast(MLP, box).layers[-1])
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        for linear in [self.enc_output[0], *self.query_pos_head.layers]:
            nn.init.xavier_uniform_(cast(nn.Linear, linear).weight)

    def flatten_memory(self, feats: tuple[Tensor, ...]) -> tuple[Tensor, list[tuple[int, int]]]:
        """Project every level and concatenate them: ``(B, N, C)`` and the ``(H_l, W_l)``."""
        if len(feats) != self.num_levels:
            raise ValueError(f"RTDETRDecoder: expected {self.num_levels} levels, got {len(feats)}")
        flat, shapes = [], []
        for proj, feat in zip(self.input_proj, feats, strict=True):
            level = proj(feat)
            shapes.append((level.shape[2], level.shape[3]))
            flat.append(level.flatten(2).transpose(1, 2))
        return torch.cat(flat, 1), shapes

    def select_queries(self, memory: Tensor, shapes: list[tuple[int, int]]
                       ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Top-``Q`` memory positions by their best class logit.

        :returns: detached query contents ``(B, Q, C)`` and reference boxes in logit space
            ``(B, Q, 4)``, the proposals' logits ``(B, Q, num_classes)`` and boxes
            ``(B, Q, 4)`` (with gradients, for their own loss), and ``(B, Q)`` int64 the
            selected positions, indices into the ``N`` flattened memory positions (anchors)."""
        anchors, valid = make_anchors(shapes, eps=self.anchor_eps, device=memory.device)
        output = self.enc_output(valid.to(memory.dtype) * memory)
        logits = self.enc_score_head(output)
        boxes_unact = self.enc_bbox_head(output) + anchors
        top = logits.max(-1).values.topk(self.num_queries, dim=1).indices

        def gather(x: Tensor) -> Tensor:
            return x.gather(1, top[..., None].expand(-1, -1, x.shape[-1]))

        ref_unact = gather(boxes_unact)
        return (gather(output).detach(), ref_unact.detach(), gather(logits), ref_unact.sigmoid(),
                top)

    def forward(self, feats: tuple[Tensor, ...], denoising: DenoisingQueries | None = None
                ) -> DetrOutputs:
        """:param feats: the encoder levels ``(B, C_l, H_l, W_l)``, finest first.
        :param denoising: the denoising queries (training only), put before the matching ones.
        :returns: every layer's outputs in training; in eval mode only the ``eval_idx``
            layer's (``L = 1``)."""
        memory, shapes = self.flatten_memory(feats)
        target, ref_unact, enc_logits, enc_boxes, selected = self.select_queries(memory, shapes)
        attn_mask = None
        if denoising is not None:
            target = torch.cat([denoising.content, target], 1)
            ref_unact = torch.cat([denoising.boxes_unact, ref_unact], 1)
            attn_mask = denoising.attn_mask
        ref_detached = ref_unact.sigmoid()
        ref = ref_detached
        all_logits, all_boxes = [], []
        for index, layer in enumerate(self.layers):
            target = layer(target, ref_detached, memory, shapes,
                           self.query_pos_head(ref_detached), attn_mask)
            delta = self.dec_bbox_head[index](target)
            refined = (delta + inverse_sigmoid(ref_detached)).sigmoid()
            if self.training:
                all_logits.append(self.dec_score_head[index](target))
                # the loss of layer i > 0 reaches the previous layer's boxes (not detached)
                all_boxes.append(refined if index == 0
                                 else (delta + inverse_sigmoid(ref)).sigmoid())
            elif index == self.eval_idx:
                all_logits.append(self.dec_score_head[index](target))
                all_boxes.append(refined)
                break
            ref = refined
            ref_detached = refined.detach() if self.training else refined
        logits, boxes = torch.stack(all_logits), torch.stack(all_boxes)
        if denoising is None:
            return DetrOutputs(logits, boxes, enc_logits, enc_boxes, query_inds=selected)
        num_dn = denoising.groups.num_queries
        return DetrOutputs(logits[:, :, num_dn:], boxes[:, :, num_dn:], enc_logits, enc_boxes,
                           dn_logits=logits[:, :, :num_dn], dn_boxes=boxes[:, :, :num_dn],
                           dn=denoising.groups, query_inds=selected)
