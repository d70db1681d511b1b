"""The seeded random ground truth the benchmarks train on."""

from __future__ import annotations

import torch

MAX_GT_PER_IMAGE = 8
MIN_BOX_SIDE = 16


def random_gt(
    size: int, num_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """1 to ``MAX_GT_PER_IMAGE`` boxes in a ``size`` x ``size`` image and their labels:
    ``(xyxy boxes (G, 4) in pixels, labels (G,))``; a box's sides are ``MIN_BOX_SIDE`` to
    ``MIN_BOX_SIDE + size / 2`` before clipping to the image."""
    count = int(torch.randint(1, MAX_GT_PER_IMAGE + 1, (1,), generator=generator))
    xy = torch.rand(count, 2, generator=generator) * (size - MIN_BOX_SIDE)
    wh = MIN_BOX_SIDE + torch.rand(count, 2, generator=generator) * size / 2
    boxes = torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)
    return boxes, torch.randint(0, num_classes, (count,), generator=generator)


def random_batch(batch: int, size: int, num_classes: int
                 ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """``(images (B, 3, S, S) in 0..1, [(xyxy boxes (G, 4) in pixels, labels (G,))])``, the
    same tensors for every framework of a comparison (seed 2)."""
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(batch, 3, size, size, generator=generator)
    return images, [random_gt(size, num_classes, generator) for _ in range(batch)]
