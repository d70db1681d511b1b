"""Ground truth of a batch padded to dense tensors, so that stages work on all images at once."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from core.structures import DetSample


def _pad(tensors: Sequence[Tensor], pad_value: float | int = 0) -> Tensor:
    return pad_sequence(list(tensors), batch_first=True, padding_value=pad_value)


@attrs.frozen
class GTBatch:
    """Ground-truth and ignore boxes of B images padded to the largest count.

    :ivar boxes: ``(B, M, 4)`` float xyxy pixels (padding rows are zero).
    :ivar labels: ``(B, M)`` int64 class indices (padding is 0).
    :ivar valid: ``(B, M)`` bool, True for real boxes.
    :ivar ignore_boxes: ``(B, K, 4)`` float xyxy ignore regions (iscrowd / difficult).
    :ivar ignore_valid: ``(B, K)`` bool, True for real ignore regions.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    ignore_boxes: Tensor
    ignore_valid: Tensor

    @property
    def num_gts(self) -> Tensor:
        """``(B,)`` int64 number of real boxes per image."""
        return self.valid.sum(dim=1)

    @classmethod
    def from_lists(
        cls,
        boxes: Sequence[Tensor],
        labels: Sequence[Tensor],
        ignore_boxes: Sequence[Tensor] | None = None,
    ) -> GTBatch:
        """Pad per-image ``(M_i, 4)`` boxes, ``(M_i,)`` labels and ``(K_i, 4)`` ignore boxes."""
        device = boxes[0].device
        lengths = torch.tensor([len(b) for b in boxes], device=device)
        max_len = int(lengths.max()) if len(boxes) else 0
        valid = torch.arange(max_len, device=device)[None, :] < lengths[:, None]
        padded_boxes = _pad([b.float().reshape(-1, 4) for b in boxes])
        padded_labels = _pad([lab.long().reshape(-1) for lab in labels])
        if ignore_boxes is None:
            ignore_boxes = [torch.zeros((0, 4), device=device) for _ in boxes]
        ignore_lengths = torch.tensor([len(b) for b in ignore_boxes], device=device)
        max_ignore = int(ignore_lengths.max()) if len(ignore_boxes) else 0
        ignore_valid = torch.arange(max_ignore, device=device)[None, :] < ignore_lengths[:, None]
        padded_ignore = _pad([b.float().reshape(-1, 4) for b in ignore_boxes])
        return cls(padded_boxes, padded_labels, valid, padded_ignore, ignore_valid)

    @classmethod
    def from_samples(cls, samples: Sequence[DetSample], device: torch.device | str) -> GTBatch:
        """Pad the ``gt`` and ``ignore`` instances of ``samples`` (``img_shape`` coordinates)."""
        return cls.from_lists(
            [s.gt.boxes.to(device) for s in samples],
            [s.gt.labels.to(device) for s in samples],
            [s.ignore.boxes.to(device) for s in samples],
        )
