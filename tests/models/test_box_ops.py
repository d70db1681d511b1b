import torch
from torchvision.ops import box_iou

from core.models.box_ops import IOU_BLOCK_ELEMENTS, gt_prior_iou


def random_boxes(generator, *shape):
    corner = torch.rand(*shape, 2, generator=generator) * 300
    size = torch.rand(*shape, 2, generator=generator) * 150
    return torch.cat([corner, corner + size], dim=-1)


def test_hand_computed_iou_and_padding_rows():
    gt = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]]])  # a box, a padding row
    priors = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 10.0],
                           [20.0, 20.0, 30.0, 30.0]])
    iou = gt_prior_iou(gt, priors)
    assert iou.shape == (1, 2, 3)
    assert torch.allclose(iou[0, 0], torch.tensor([25 / 175, 1.0, 0.0]))
    assert torch.equal(iou[0, 1], torch.zeros(3))


def test_equals_torchvision_box_iou_exactly_across_blocks():
    generator = torch.Generator().manual_seed(0)
    num_images, max_gts = 2, 5
    # more priors than one block holds, and a partial last block
    num_priors = 3 * IOU_BLOCK_ELEMENTS // (num_images * max_gts) + 7
    gt = random_boxes(generator, num_images, max_gts)
    shared = random_boxes(generator, num_priors)
    expected = box_iou(gt.reshape(-1, 4), shared).view(num_images, max_gts, num_priors)
    assert torch.equal(gt_prior_iou(gt, shared), expected)
    per_image = random_boxes(generator, num_images, num_priors)
    expected = torch.stack([box_iou(g, p) for g, p in zip(gt, per_image, strict=True)])
    assert torch.equal(gt_prior_iou(gt, per_image), expected)
    assert torch.equal(gt_prior_iou(gt.double(), shared.double()),
                       box_iou(gt.reshape(-1, 4).double(), shared.double()).view(expected.shape))


def test_empty_gts_and_priors():
    generator = torch.Generator().manual_seed(1)
    assert gt_prior_iou(torch.zeros(3, 0, 4), random_boxes(generator, 9)).shape == (3, 0, 9)
    assert gt_prior_iou(random_boxes(generator, 2, 4), torch.zeros(0, 4)).shape == (2, 4, 0)
