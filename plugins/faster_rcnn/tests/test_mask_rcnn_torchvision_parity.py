"""Our Mask R-CNN against torchvision's ``maskrcnn_resnet50_fpn`` with the same weights
(torchvision's random initialisation, 91 classes, saved as torchvision saves its files and
converted by the ``torchvision/maskrcnn_resnet50_fpn`` converter) on the same input tensors
(torchvision's resize/normalise transform bypassed: ``TorchvisionRunner``).

The FPN's output layers are scaled to unit-variance levels, the objectness logits spread and
the class weights scaled up, as in the Faster R-CNN comparison (``test_zoo_torchvision.py``), so
that proposals have no near-ties and the 91-class softmax passes the score threshold.

Mask targets differ by design: torchvision samples a full-image bitmap with RoIAlign (soft
values), ours rasterise the gt polygon on the RoI's grid (exact, {0, 1}). The losses are
compared with torchvision's targets given to both; the targets themselves are compared
separately, with a tolerance.
"""

from pathlib import Path

import pytest
import torch
from plugdet_faster_rcnn.mask_paste import paste_masks
from plugdet_faster_rcnn.torchvision_compat import TorchvisionRunner, torchvision_like_config
from torch import nn
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import paste_masks_in_image, project_masks_on_boxes

from core.api import (
    COCO_CLASSES,
    TORCHVISION_COCO_CATEGORIES,
    PolygonMasks,
    fit_to_model,
    load_config,
    read_checkpoint,
)
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances
from core.weights.loading import convert_checkpoint

CONFIG = (Path(__file__).resolve().parents[1] / "plugdet_faster_rcnn" / "configs" / "pretrained"
          / "mask_rcnn_r50_fpn_torchvision_coco.toml")
CONVERTER = "torchvision/maskrcnn_resnet50_fpn"
TV_CLASSES = len(TORCHVISION_COCO_CATEGORIES)  # 91, background first
PADDED = (256, 384)  # a multiple of the largest stride (64)
IMAGE_SIZES = [(256, 320), (224, 300)]
OBJECTNESS_STD = 0.1
CLS_SCALE = 10.0
BOX_TOL = 1e-3
SCORE_TOL = 1e-4
MASK_TOL = 1e-4
MASK_SIZE = 28
#: A sampler quota above any anchor or proposal count with only positives capped by it:
#: every assigned prior is sampled, so both implementations use the same set.
SAMPLE_ALL = 10**6
LOSS_IMAGE = 256
GT_BOXES = torch.tensor([[10.0, 12.0, 120.0, 150.0], [130.0, 60.0, 250.0, 128.0],
                         [40.0, 180.0, 90.0, 230.0]])
GT_LABELS = torch.tensor([1, 3, 0])
#: A triangle, a rectangle and a quadrilateral inside the gt boxes.
GT_POLYGONS = [[[10.0, 12.0, 120.0, 12.0, 65.0, 150.0]],
               [[130.0, 60.0, 250.0, 60.0, 250.0, 128.0, 130.0, 128.0]],
               [[40.0, 180.0, 90.0, 190.0, 70.0, 230.0, 45.0, 215.0]]]
#: Polygon targets against torchvision's RoIAlign of the full bitmap: they differ only along
#: the mask's edges (measured: 0.022 mean absolute difference, 1.2 % of the pixels on the
#: other side of 0.5).
TARGET_MEAN_TOL = 0.05
TARGET_FLIPPED_PIXELS = 0.03


def torchvision_model(seed: int, probe_size: tuple[int, int]) -> MaskRCNN:
    torch.manual_seed(seed)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=TV_CLASSES)
    probe = torch.randn(1, 3, *probe_size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        levels = list(model.eval().backbone(probe).values())
        for block, level in zip(model.backbone.fpn.layer_blocks, levels, strict=False):
            block[-1].weight /= level.std()
            block[-1].bias /= level.std()
        objectness = model.rpn.head.cls_logits.weight
        objectness.copy_(torch.randn(objectness.shape,
                                     generator=torch.Generator().manual_seed(seed + 2))
                         * OBJECTNESS_STD)
        model.roi_heads.box_predictor.cls_score.weight *= CLS_SCALE
    return model


def converted_into(ours: nn.Module, tv_model: MaskRCNN, tmp_path: Path) -> None:
    """``tv_model``'s weights saved as torchvision saves them, read and converted into
    ``ours`` by the converter ``load_from`` would pick."""
    path = tmp_path / "maskrcnn.pth"
    torch.save(tv_model.state_dict(), path)
    converted, converter = convert_checkpoint(read_checkpoint(path), ours)
    assert converter == CONVERTER
    ours.load_state_dict(converted.state, strict=True)


def build(config):
    # torchvision's memory format (NCHW): the same float operations, so tight tolerances
    return get_registries().build("detector", {**config, "channels_last": False}, path="model")


def shipped_model(num_classes: int) -> nn.Module:
    cfg = load_config(str(CONFIG))["model"]
    cfg["roi_head"]["num_classes"] = num_classes
    return build(cfg).eval()


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """Both models' proposals, detections and mask probabilities on two images."""
    tv_model = torchvision_model(0, PADDED).eval()
    ours = shipped_model(TV_CLASSES - 1)
    converted_into(ours, tv_model, tmp_path_factory.mktemp("weights"))
    runner = TorchvisionRunner(tv_model)
    images = torch.randn(len(IMAGE_SIZES), 3, *PADDED,
                         generator=torch.Generator().manual_seed(3))
    samples = [DetSample(img_shape=size, ori_shape=size, pad_shape=PADDED)
               for size in IMAGE_SIZES]
    with torch.no_grad():
        tv_feats = runner.features(images)
        feats = ours.extract_feat(images)
        expected = {"proposals": runner.proposals(images, IMAGE_SIZES, tv_feats),
                    "detections": runner.predict(images, IMAGE_SIZES, tv_feats)}
        detections = ours.predict(DetBatch(images, samples))  # original = input pixels
        theirs_as_ours = [Instances(d["boxes"], d["labels"]) for d in expected["detections"]]
        got = {"proposals": ours.rpn_head.predict(feats, samples), "detections": detections,
               "probs_on_their_boxes": ours.roi_head.mask_probs(feats, theirs_as_ours),
               "probs": ours.roi_head.mask_probs(feats, detections)}
    return expected, got


def test_same_proposals_and_detections(predictions):
    expected, got = predictions
    for theirs, mine in zip(expected["proposals"], got["proposals"], strict=True):
        assert len(theirs) > 300, "the test needs long proposal lists"
        torch.testing.assert_close(mine.boxes, theirs, rtol=0, atol=BOX_TOL)
    for theirs, mine in zip(expected["detections"], got["detections"], strict=True):
        assert len(theirs["boxes"]) == 100, "the test needs full detection lists"
        torch.testing.assert_close(mine.labels, theirs["labels"], rtol=0, atol=0)
        torch.testing.assert_close(mine.scores, theirs["scores"], rtol=0, atol=SCORE_TOL)
        torch.testing.assert_close(mine.boxes, theirs["boxes"], rtol=0, atol=BOX_TOL)


def test_same_mask_probabilities(predictions):
    """The mask branch on the same boxes, and on each model's own detections."""
    expected, got = predictions
    for theirs, on_theirs, own in zip(expected["detections"], got["probs_on_their_boxes"],
                                      got["probs"], strict=True):
        probs = theirs["masks"][:, 0]
        assert probs.shape == (100, MASK_SIZE, MASK_SIZE)
        assert probs.std() > 0.1, "the test needs spread probabilities"
        torch.testing.assert_close(on_theirs, probs, rtol=0, atol=MASK_TOL)
        torch.testing.assert_close(own, probs, rtol=0, atol=MASK_TOL)


def test_same_pasted_masks(predictions):
    """torchvision's soft masks pasted into the image, thresholded at 0.5, against our
    detector's bool masks; and both paste functions on the same probabilities."""
    expected, got = predictions
    for theirs, probs, final, size in zip(expected["detections"], got["probs"],
                                          got["detections"], IMAGE_SIZES, strict=True):
        soft = paste_masks_in_image(theirs["masks"], theirs["boxes"], size)[:, 0]
        torch.testing.assert_close(paste_masks(probs, theirs["boxes"], size), soft, rtol=0,
                                   atol=MASK_TOL)
        assert final.masks.shape == (100, *size) and final.masks.dtype == torch.bool
        assert (soft >= 0.5).any()
        assert torch.equal(final.masks, soft >= 0.5)


def test_coco_rows_and_mask_channels_kept_by_name_for_the_80_classes(tmp_path):
    """Fitted to COCO's 80 classes, each class takes its torchvision mask channel bit for
    bit; the N/A channels and the background's are dropped."""
    tv_model = torchvision_model(0, PADDED)
    path = tmp_path / "maskrcnn.pth"
    torch.save(tv_model.state_dict(), path)
    ours = shipped_model(len(COCO_CLASSES))
    converted, _ = convert_checkpoint(read_checkpoint(path), ours)
    report = fit_to_model(converted, ours, COCO_CLASSES)
    assert len(report.kept) == len(COCO_CLASSES) and not report.reinitialised
    channels = [TORCHVISION_COCO_CATEGORIES.index(name) for name in COCO_CLASSES]
    theirs = tv_model.roi_heads.mask_predictor.mask_fcn_logits
    assert torch.equal(ours.roi_head.mask_head.conv_logits.weight, theirs.weight[channels])
    assert torch.equal(ours.roi_head.mask_head.conv_logits.bias, theirs.bias[channels])
    upsample = tv_model.roi_heads.mask_predictor.conv5_mask
    assert torch.equal(ours.roi_head.mask_head.upsample.weight, upsample.weight)
    assert torch.equal(ours.roi_head.mask_head.convs[3].weight,
                       tv_model.roi_heads.mask_head[3][0].weight)


def test_same_losses_when_everything_is_sampled(tmp_path, monkeypatch):
    """Samplers that take every assigned prior make sampling deterministic in both models;
    with torchvision's mask targets given to ours, all five losses agree. Our own polygon
    targets of the same positives are then compared with torchvision's."""
    tv_model = torchvision_model(4, (LOSS_IMAGE, LOSS_IMAGE))
    for sampler in (tv_model.rpn.fg_bg_sampler, tv_model.roi_heads.fg_bg_sampler):
        sampler.batch_size_per_image, sampler.positive_fraction = SAMPLE_ALL, 1.0
    config = torchvision_like_config(TV_CLASSES - 1, masks=True)
    config["rpn_head"]["sampler"] = {"type": "RandomSampler", "num": SAMPLE_ALL,
                                     "pos_fraction": 1.0}
    config["roi_head"]["sampler"] = {"type": "RandomSampler", "num": SAMPLE_ALL,
                                     "pos_fraction": 1.0, "add_gt_as_proposals": True}
    ours = build(config)
    converted_into(ours, tv_model, tmp_path)
    ours.eval()
    runner = TorchvisionRunner(tv_model.eval())

    masks = PolygonMasks.from_coco(GT_POLYGONS, (LOSS_IMAGE, LOSS_IMAGE))
    bitmaps = masks.to_tensor()
    head = ours.roi_head
    seen = {}

    def torchvision_targets(targets, samples):
        seen["ours"] = type(head).mask_targets(head, targets, samples)
        seen["theirs"] = project_masks_on_boxes(bitmaps.float(), targets.pos_rois[:, 1:],
                                                targets.pos_gt_inds, MASK_SIZE)
        return seen["theirs"]

    monkeypatch.setattr(head, "mask_targets", torchvision_targets)
    images = torch.randn(1, 3, LOSS_IMAGE, LOSS_IMAGE,
                         generator=torch.Generator().manual_seed(6))
    sample = DetSample(img_shape=(LOSS_IMAGE, LOSS_IMAGE), ori_shape=(LOSS_IMAGE, LOSS_IMAGE),
                       pad_shape=(LOSS_IMAGE, LOSS_IMAGE),
                       gt=Instances(GT_BOXES, GT_LABELS, masks=masks))
    with torch.no_grad():
        expected = runner.loss(images, [{"boxes": GT_BOXES, "labels": GT_LABELS,
                                         "masks": bitmaps}])
        got = ours.loss(DetBatch(images, [sample]))
    pairs = {"loss_rpn_cls": "loss_objectness", "loss_rpn_bbox": "loss_rpn_box_reg",
             "loss_cls": "loss_classifier", "loss_bbox": "loss_box_reg",
             "loss_mask": "loss_mask"}
    for mine, theirs in pairs.items():
        assert float(expected[theirs]) > 0, theirs
        torch.testing.assert_close(got[mine], expected[theirs], rtol=1e-4, atol=1e-6,
                                   msg=lambda m, k=mine: f"{k}: {m}")
    assert float(got["roi_num_pos"]) >= len(GT_BOXES)

    ours_targets, theirs_targets = seen["ours"], seen["theirs"]
    assert len(ours_targets) == float(got["roi_num_pos"])
    assert set(ours_targets.unique().tolist()) == {0.0, 1.0}
    assert (ours_targets - theirs_targets).abs().mean() < TARGET_MEAN_TOL
    flipped = (ours_targets > 0.5) != (theirs_targets >= 0.5)
    assert flipped.float().mean() < TARGET_FLIPPED_PIXELS
