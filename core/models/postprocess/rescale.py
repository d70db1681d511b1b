"""Map detections from the network input back to the original image."""

from __future__ import annotations

import torch

from core.structures import DetSample, Instances


def rescale_to_original(instances: Instances, sample: DetSample) -> Instances:
    """Subtract ``sample.pad_offset`` (letterbox padding), divide boxes by
    ``sample.scale_factor`` and clip them to ``sample.ori_shape``.

    :param instances: detections with ``(N, 4)`` boxes in ``img_shape`` coordinates.
    :param sample: the sample they belong to (gives ``pad_offset`` ``(dx, dy)``,
        ``scale_factor`` ``(sx, sy)`` and ``ori_shape`` ``(h, w)``).
    :returns: detections with boxes in ``ori_shape`` coordinates.
    """
    boxes = instances.boxes
    dx, dy = sample.pad_offset
    scale_x, scale_y = sample.scale_factor
    boxes = (boxes - boxes.new_tensor([dx, dy, dx, dy])) / boxes.new_tensor(
        [scale_x, scale_y, scale_x, scale_y])
    height, width = sample.ori_shape
    boxes = torch.minimum(boxes.clamp(min=0), boxes.new_tensor([width, height, width, height]))
    return Instances(boxes, instances.labels, instances.scores)
