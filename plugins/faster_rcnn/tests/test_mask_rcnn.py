"""Mask R-CNN's parts on hand-computed cases: mask targets from polygons, the mask loss,
pasting into the image, the mask head's shapes, missing masks, and a tiny model that learns
masks from a fixed batch."""

import pytest
import torch
from plugdet_faster_rcnn.mask_head import FCNMaskHead
from plugdet_faster_rcnn.mask_paste import flip_masks, paste_masks
from plugdet_faster_rcnn.mask_targets import class_channel, polygon_mask_targets
from plugdet_faster_rcnn.roi_path import RoITargets
from torchvision.models.detection.roi_heads import paste_masks_in_image

from core.errors import ConfigError, DataError
from core.masks import PolygonMasks
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

IMAGE = 64
MASK = 28
SQUARE = [[8.0, 8.0, 24.0, 8.0, 24.0, 24.0, 8.0, 24.0]]  # the square (8, 8)-(24, 24)
TRIANGLE = [[40.0, 40.0, 60.0, 40.0, 40.0, 60.0]]  # right angle at (40, 40)
TINY_MASK_RCNN = {
    "type": "MaskRCNN",
    "backbone": {"type": "TinyNet", "widths": [8, 16, 32], "depths": [1, 1, 1],
                 "out_indices": [1, 2]},
    "neck": {"type": "FPN", "in_channels": [16, 32], "out_channels": 8, "num_outs": 2},
    "rpn_head": {"type": "RPNHead", "in_channels": 8, "feat_channels": 8,
                 "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16],
                                     "ratios": [1.0], "octave_base_scale": 4.0,
                                     "scales_per_octave": 1}},
    "roi_head": {"type": "MaskRoIHead", "num_classes": 3, "in_channels": 8,
                 "fc_channels": 16, "mask_channels": 8,
                 "roi_extractor": {"type": "MultiLevelRoIAlign", "featmap_strides": [8, 16]},
                 "mask_roi_extractor": {"type": "MultiLevelRoIAlign",
                                        "featmap_strides": [8, 16], "out_size": 14}},
}


def build(table):
    return get_registries().build("detector", table, path="model")


def masked_sample(shape=(IMAGE, IMAGE), **meta):
    masks = PolygonMasks.from_coco([SQUARE, TRIANGLE], shape)
    gt = Instances(torch.tensor([[8.0, 8.0, 24.0, 24.0], [40.0, 40.0, 60.0, 60.0]]),
                   torch.tensor([2, 0]), masks=masks)
    return DetSample(img_shape=shape, ori_shape=shape, pad_shape=shape, gt=gt, **meta)


def positives(rois, gt_inds, labels):
    """RoITargets of positive RoIs only (image index first in each roi)."""
    rois = torch.tensor(rois)
    return RoITargets(rois=rois, labels=torch.tensor(labels),
                      is_pos=torch.ones(len(rois), dtype=torch.bool),
                      pos_gt_inds=torch.tensor(gt_inds), box_targets=torch.zeros(len(rois), 4))


# ---- targets ---------------------------------------------------------------------------


def test_square_mask_targets_by_hand():
    """The 16 px square seen through four RoIs: itself (all ones), a box twice its size with
    the square in its top-left quadrant (14x14 ones), the box of its right half (all ones: the
    RoI lies inside the mask), and a box half over the square (left 14 columns)."""
    targets = positives([[0, 8.0, 8.0, 24.0, 24.0], [0, 8.0, 8.0, 40.0, 40.0],
                         [0, 16.0, 8.0, 24.0, 24.0], [0, 16.0, 8.0, 32.0, 24.0]],
                        [0, 0, 0, 0], [2, 2, 2, 2])
    got = polygon_mask_targets(targets, [masked_sample()], MASK)
    assert got.shape == (4, MASK, MASK) and got.dtype == torch.float32
    quadrant = torch.zeros(MASK, MASK)
    quadrant[:14, :14] = 1
    left = torch.zeros(MASK, MASK)
    left[:, :14] = 1
    expected = torch.stack([torch.ones(MASK, MASK), quadrant, torch.ones(MASK, MASK), left])
    assert torch.equal(got, expected)


def test_targets_follow_each_positive_to_its_image_and_gt():
    """Positives of two images, interleaved: each takes the mask of its own image's gt."""
    other = masked_sample()
    other.gt.masks = PolygonMasks.from_coco([TRIANGLE, SQUARE], (IMAGE, IMAGE))
    targets = positives([[1, 8.0, 8.0, 24.0, 24.0], [0, 8.0, 8.0, 24.0, 24.0],
                         [1, 40.0, 40.0, 60.0, 60.0]], [1, 0, 0], [0, 2, 1])
    got = polygon_mask_targets(targets, [masked_sample(), other], MASK)
    assert torch.equal(got[0], torch.ones(MASK, MASK)) and torch.equal(got[1], got[0])
    # the right-angle triangle on its own box: the half at and above the anti-diagonal
    rows, cols = torch.meshgrid(torch.arange(MASK), torch.arange(MASK), indexing="ij")
    inside = (rows + cols + 1 < MASK).float()  # pixels whose centre is strictly inside
    on_edge = rows + cols + 1 == MASK
    assert torch.equal(got[2][~on_edge], inside[~on_edge])


def test_missing_gt_masks_are_a_data_error():
    model = build(TINY_MASK_RCNN).train()
    sample = DetSample(img_shape=(IMAGE, IMAGE), ori_shape=(IMAGE, IMAGE),
                       pad_shape=(IMAGE, IMAGE), img_id=7,
                       gt=Instances(torch.tensor([[8.0, 8.0, 24.0, 24.0]]), torch.tensor([1])))
    with pytest.raises(DataError, match=r"img_id=7.*masks"):
        model.loss(DetBatch(torch.randn(1, 3, IMAGE, IMAGE), [sample]))


# ---- loss ------------------------------------------------------------------------------


def test_mask_loss_is_bce_on_the_gt_class_channel():
    head = build(TINY_MASK_RCNN).roi_head
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, MASK, MASK, generator=generator)
    labels = torch.tensor([2, 0])
    targets = (torch.rand(2, MASK, MASK, generator=generator) > 0.5).float()
    chosen = torch.stack([logits[0, 2], logits[1, 0]])
    probs = chosen.sigmoid()
    expected = -(targets * probs.log() + (1 - targets) * (1 - probs).log()).mean()
    got = head.mask_loss(logits, labels, targets)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    other = logits.clone()
    other[0, :2] += 5.0  # the channels of other classes do not count
    other[1, 1:] -= 5.0
    torch.testing.assert_close(head.mask_loss(other, labels, targets), got, rtol=0, atol=0)


def test_mask_loss_without_positives_is_zero_with_a_gradient():
    head = build(TINY_MASK_RCNN).roi_head
    logits = torch.zeros(0, 3, MASK, MASK, requires_grad=True)
    loss = head.mask_loss(logits, torch.zeros(0, dtype=torch.long), torch.zeros(0, MASK, MASK))
    loss.backward()
    assert float(loss.detach()) == 0.0 and logits.grad is not None


def test_class_channel_picks_the_label_of_each_roi():
    logits = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(class_channel(logits, torch.tensor([1, 2])),
                       torch.stack([logits[0, 1], logits[1, 2]]))


# ---- head and pasting ------------------------------------------------------------------


def test_mask_head_shapes_and_parameters():
    head = FCNMaskHead(num_classes=5, in_channels=16, conv_channels=8, num_convs=4)
    out = head(torch.randn(3, 16, 14, 14))
    assert out.shape == (3, 5, MASK, MASK)
    convs = 16 * 8 * 9 + 8 + 3 * (8 * 8 * 9 + 8)
    assert sum(p.numel() for p in head.parameters()) == convs + (8 * 8 * 4 + 8) + (8 * 5 + 5)
    with pytest.raises(ConfigError, match="num_classes"):
        FCNMaskHead(num_classes=0)


def test_paste_of_a_full_mask_covers_its_box_inclusively():
    """A mask of ones pasted on (10, 10, 38, 38): padded to 30 px, widened by 30/28 to
    (9, 9, 39, 39), resized to 31 px: the 0.5 level falls between the border pixels, so
    pixels 10..38 are set (torchvision's inclusive pixel boxes)."""
    pasted = paste_masks(torch.ones(1, MASK, MASK), torch.tensor([[10.0, 10.0, 38.0, 38.0]]),
                         (IMAGE, IMAGE), threshold=0.5)
    expected = torch.zeros(1, IMAGE, IMAGE, dtype=torch.bool)
    expected[0, 10:39, 10:39] = True
    assert torch.equal(pasted, expected)


def test_paste_matches_torchvision_including_boxes_past_the_border():
    generator = torch.Generator().manual_seed(1)
    probs = torch.rand(5, MASK, MASK, generator=generator)
    boxes = torch.tensor([[3.3, 4.7, 30.2, 22.9], [-10.0, -5.5, 20.0, 12.0],
                          [50.5, 40.0, 80.0, 70.0], [0.0, 0.0, 0.4, 0.6],
                          [10.0, 30.0, 63.9, 47.0]])
    shape = (IMAGE - 8, IMAGE)
    expected = paste_masks_in_image(probs[:, None], boxes, shape)[:, 0]
    got = paste_masks(probs, boxes, shape)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert torch.equal(paste_masks(probs, boxes, shape, threshold=0.5), got >= 0.5)


def test_a_box_outside_the_image_pastes_nothing():
    pasted = paste_masks(torch.ones(1, MASK, MASK), torch.tensor([[70.0, 70.0, 90.0, 90.0]]),
                         (IMAGE, IMAGE), threshold=0.5)
    assert pasted.shape == (1, IMAGE, IMAGE) and not pasted.any()


def test_flip_masks_mirrors_the_grid():
    masks = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)
    assert torch.equal(flip_masks(masks, "horizontal"), masks.flip(-1))
    assert torch.equal(flip_masks(masks, "vertical"), masks.flip(-2))
    assert torch.equal(flip_masks(masks, "diagonal"), masks.flip(-1).flip(-2))
    assert flip_masks(masks, None) is masks
    with pytest.raises(ValueError, match="flip direction"):
        flip_masks(masks, "sideways")


# ---- the detector ----------------------------------------------------------------------


def left_halves(feats, detections):
    """Mask probabilities that fill the left half of each box's grid."""
    probs = torch.zeros(sum(len(d) for d in detections), MASK, MASK)
    probs[:, :, :MASK // 2] = 1.0
    return list(probs.split([len(d) for d in detections]))


def test_predicted_masks_are_bool_in_original_pixels(monkeypatch):
    """An input resized x2 from a 64 px image: masks come out 64 x 64 bool, each inside its
    box; the same input marked as horizontally flipped gives the mirrored boxes and masks
    (with the left half of each box's grid predicted: the right half after the flip)."""
    torch.manual_seed(0)
    model = build(TINY_MASK_RCNN).eval()
    monkeypatch.setattr(model.roi_head, "mask_probs", left_halves)
    resized = {"img_shape": (2 * IMAGE, 2 * IMAGE), "ori_shape": (IMAGE, IMAGE),
               "pad_shape": (2 * IMAGE, 2 * IMAGE), "scale_factor": (2.0, 2.0)}
    image = torch.randn(1, 3, 2 * IMAGE, 2 * IMAGE)
    plain, flipped = model.predict(DetBatch(
        torch.cat([image, image]),
        [DetSample(**resized), DetSample(**resized, flip=True, flip_direction="horizontal")]))
    assert len(plain) > 0 and plain.masks.shape == (len(plain), IMAGE, IMAGE)
    assert plain.masks.dtype == torch.bool
    rows, cols = torch.meshgrid(torch.arange(IMAGE), torch.arange(IMAGE), indexing="ij")
    for box, mask in zip(plain.boxes, plain.masks, strict=True):
        middle = (box[0] + box[2]) / 2  # the left half of the box's pixels, one px of slack
        inside = ((cols >= box[0].floor() - 1) & (cols <= middle + 1)
                  & (rows >= box[1].floor() - 1) & (rows <= box[3].ceil() + 1))
        assert not (mask & ~inside).any()
    mirrored = plain.boxes[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1.0, -1.0, 1.0])
    torch.testing.assert_close(flipped.boxes, mirrored + torch.tensor([IMAGE, 0, IMAGE, 0]),
                               rtol=0, atol=1e-4)
    # the same masks mirrored, up to the column the paste's whole-pixel box rounds to
    union = (flipped.masks | plain.masks.flip(-1)).sum((1, 2))
    iou = (flipped.masks & plain.masks.flip(-1)).sum((1, 2)) / union.clamp(min=1)
    large = plain.masks.sum((1, 2)) >= 50
    assert large.any() and (iou[large] >= 0.75).all() and iou[large].mean() > 0.95, iou[large]


def test_tiny_model_learns_masks_of_a_fixed_batch():
    torch.manual_seed(0)
    model = build(TINY_MASK_RCNN).train()
    batch = DetBatch(torch.randn(1, 3, IMAGE, IMAGE), [masked_sample()])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        losses = model.loss(batch)
        history.append(float(losses["loss_mask"]))
        total = sum(value for key, value in losses.items() if key.startswith("loss"))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert history[-1] < 0.5 * history[0], history
