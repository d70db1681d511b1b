"""Prototype masks (YOLACT, YOLOv8-seg): the prototype branch, the mask loss of the positive
priors and the assembly of predicted masks in the original image.

An instance's mask logits are the dot product of its ``M`` coefficients with the ``M``
prototype maps of its image, at a quarter of the network input's resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.api import DetSample
from plugdet_yolo.layers import ConvBNSiLU

PROTO_KERNEL = 3
#: The prototypes have twice the resolution of the level they are computed from.
PROTO_UPSAMPLE = 2
#: Masks pasted into the original image per chunk (bounds the float buffer).
PASTE_CHUNK = 64


class Proto(nn.Module):
    """``(B, C, H, W) -> (B, M, 2H, 2W)``: a 3x3 conv-BN-SiLU to ``width``, a 2x2 stride-2
    transposed convolution, a 3x3 and a 1x1 conv-BN-SiLU to the ``num_masks`` prototypes.

    :param in_channels: C, channels of the finest pyramid level.
    :param width: channels of the hidden layers.
    :param num_masks: M prototypes.
    """

    def __init__(self, in_channels: int, width: int, num_masks: int) -> None:
        super().__init__()
        self.conv1 = ConvBNSiLU(in_channels, width, PROTO_KERNEL)
        self.upsample = nn.ConvTranspose2d(width, width, PROTO_UPSAMPLE, PROTO_UPSAMPLE)
        self.conv2 = ConvBNSiLU(width, width, PROTO_KERNEL)
        self.conv3 = ConvBNSiLU(width, num_masks)

    def forward(self, x: Tensor) -> Tensor:
        prototypes: Tensor = self.conv3(self.conv2(self.upsample(self.conv1(x))))
        return prototypes


def box_region(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(N, height, width)`` bool: the pixels (index ``i`` covering ``[i, i + 1)``) whose
    index lies in ``[x0, x1) x [y0, y1)`` of each of the ``(N, 4)`` xyxy boxes (in that
    grid's pixels)."""
    cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype)
    rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype)
    inside_x = (cols[None] >= boxes[:, 0:1]) & (cols[None] < boxes[:, 2:3])  # (N, W)
    inside_y = (rows[None] >= boxes[:, 1:2]) & (rows[None] < boxes[:, 3:4])  # (N, H)
    return inside_y[:, :, None] & inside_x[:, None, :]


def mask_loss(coefs: Tensor, protos: Tensor, gt_masks: Tensor, boxes: Tensor,
              input_shape: tuple[int, int]) -> Tensor:
    """Summed mask loss of the positive priors of one image (divide by the batch's
    positives): per positive, the per-pixel BCE with logits of ``coefs . protos`` against its
    gt mask, kept inside its gt box, averaged over all ``h * w`` pixels and divided by the
    box's area as a fraction of the input image (ultralytics' normalisation: the sum over the
    box's pixels divided by the box's area in prototype pixels).

    :param coefs: ``(P, M)`` mask coefficients of the positives.
    :param protos: ``(M, h, w)`` prototypes of the image.
    :param gt_masks: ``(P, h, w)`` float {0, 1} mask of each positive's gt at prototype size.
    :param boxes: ``(P, 4)`` xyxy gt box of each positive in input pixels.
    :param input_shape: ``(H, W)`` of the network input (the padded batch).
    :returns: a 0-d tensor.
    """
    num_masks, height, width = protos.shape
    logits = (coefs @ protos.reshape(num_masks, -1)).view(-1, height, width)
    bce = F.binary_cross_entropy_with_logits(logits, gt_masks, reduction="none")
    in_h, in_w = input_shape
    scale = boxes.new_tensor([width / in_w, height / in_h, width / in_w, height / in_h])
    inside = box_region(boxes * scale, height, width)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (in_h * in_w)
    return ((bce * inside).mean(dim=(1, 2)) / area).sum()


def _axis_grid(size: int, scale: float, offset: float, flip_extent: float | None,
               input_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Input-frame coordinates of the ``size`` pixel centres of one original-image axis and
    their ``grid_sample`` positions (``align_corners=False``) in a map spanning the input."""
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * scale + offset
    if flip_extent is not None:
        coords = flip_extent - coords
    return coords, coords * (2.0 / input_size) - 1.0


def paste_masks(logits: Tensor, boxes: Tensor, sample: DetSample,
                input_shape: tuple[int, int]) -> Tensor:
    """Instance masks in the original image from prototype-resolution mask logits.

    Each original pixel centre is mapped into the network input by the sample's test
    transforms (resize by ``scale_factor``, letterbox shift ``pad_offset``, flip inside
    ``img_shape``); there the logits are read bilinearly (the prototypes span the whole
    input), cropped to the detection's box and thresholded at probability 0.5 (logit 0).

    :param logits: ``(N, h, w)`` mask logits over the input ``input_shape``.
    :param boxes: ``(N, 4)`` xyxy detections in input (``img_shape``) pixels.
    :param sample: the image's sample (``ori_shape``, ``img_shape``, scale, offset, flip).
    :param input_shape: ``(H, W)`` of the network input the logits span.
    :returns: ``(N, H_ori, W_ori)`` bool on ``logits``' device.
    """
    ori_h, ori_w = sample.ori_shape
    out = torch.zeros((len(logits), ori_h, ori_w), dtype=torch.bool, device=logits.device)
    if not len(logits):
        return out
    scale_x, scale_y = sample.scale_factor
    dx, dy = sample.pad_offset
    img_h, img_w = sample.img_shape
    direction = sample.flip_direction if sample.flip else None
    flip_x = img_w if direction in ("horizontal", "diagonal") else None
    flip_y = img_h if direction in ("vertical", "diagonal") else None
    xs, grid_x = _axis_grid(ori_w, scale_x, dx, flip_x, input_shape[1], logits.device)
    ys, grid_y = _axis_grid(ori_h, scale_y, dy, flip_y, input_shape[0], logits.device)
    grid = torch.stack((grid_x[None, :].expand(len(grid_y), -1),
                        grid_y[:, None].expand(-1, len(grid_x))), dim=-1)
    boxes = boxes.float()
    for start in range(0, len(logits), PASTE_CHUNK):
        chunk = slice(start, start + PASTE_CHUNK)
        values = F.grid_sample(logits[None, chunk].float(), grid[None], mode="bilinear",
                               padding_mode="border", align_corners=False)[0]
        box = boxes[chunk]
        inside_x = (xs[None] >= box[:, 0:1]) & (xs[None] <= box[:, 2:3])  # (n, W_ori)
        inside_y = (ys[None] >= box[:, 1:2]) & (ys[None] <= box[:, 3:4])  # (n, H_ori)
        out[chunk] = (values > 0) & inside_y[:, :, None] & inside_x[:, None, :]
    return out
