"""Our Faster R-CNN against torchvision's with the same weights on the same input tensors.

torchvision's resize/normalise transform is bypassed (``TorchvisionRunner``); both models get
the same ``(B, 3, H, W)`` tensor with H, W multiples of the largest stride (64).
"""

import pytest
import torch
from plugdet_faster_rcnn.torchvision_compat import (
    TorchvisionRunner,
    load_torchvision_weights,
    torchvision_like_config,
)
from torch import nn
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_CLASSES = 5
IMAGE_SIZE = 256
OBJECTNESS_STD = 0.1  # objectness logits of std ~1 on unit features: no near-ties
BOX_TOL = 1e-3
SCORE_TOL = 1e-5
#: A sampler quota above any anchor or proposal count with only positives capped by it:
#: every assigned prior is sampled, so both implementations use the same set.
SAMPLE_ALL = 10**6
GT_BOXES = torch.tensor([[10.0, 12.0, 120.0, 150.0], [130.0, 60.0, 250.0, 128.0],
                         [40.0, 180.0, 90.0, 230.0]])
GT_LABELS = torch.tensor([1, 3, 0])


def randomize(module: nn.Module, std: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * std)


def unit_features(model: nn.Module, seed: int) -> None:
    """Scale the FPN output convs so that the pyramid levels have unit standard deviation.

    A ResNet without weights (BatchNorm at its initial statistics) amplifies its input by
    orders of magnitude; on such features the objectness saturates (ties at 1.0) and box
    deltas are clamped, which would hide differences. The backbone is positively homogeneous,
    so one random probe image sets the scale.
    """
    probe = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE,
                        generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        feats = list(model.backbone(probe).values())
        for block, level in zip(model.backbone.fpn.layer_blocks, feats, strict=False):
            block[0].weight /= level.std()
            block[0].bias /= level.std()


def _build(config):
    # torchvision's memory format (NCHW): the same float operations, so tight tolerances
    return get_registries().build("detector", {**config, "channels_last": False}, path="model")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    tv_model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                       num_classes=NUM_CLASSES + 1)
    unit_features(tv_model, seed=1)
    randomize(tv_model.rpn.head.cls_logits, OBJECTNESS_STD, seed=1)
    ours = _build(torchvision_like_config(NUM_CLASSES))
    load_torchvision_weights(ours, tv_model)
    return TorchvisionRunner(tv_model.eval()), ours.eval()


def _samples(shapes, gts=None):
    gts = gts or [Instances() for _ in shapes]
    return [DetSample(img_shape=s, ori_shape=s, pad_shape=(IMAGE_SIZE, IMAGE_SIZE), gt=g)
            for s, g in zip(shapes, gts, strict=True)]


def test_same_features_and_anchors(models):
    runner, ours = models
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        theirs = list(runner.features(images).values())
        mine = ours.extract_feat(images)
    assert len(mine) == len(theirs) == 5
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    our_anchors = ours.rpn_head.priors([tuple(f.shape[-2:]) for f in mine], "cpu").boxes
    assert torch.equal(our_anchors, runner.anchors(images)[0])


def test_same_proposals_for_one_image(models):
    runner, ours = models
    torch.manual_seed(2)
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    size = [(IMAGE_SIZE - 40, IMAGE_SIZE - 8)]  # proposals are clipped to the valid area
    with torch.no_grad():
        (expected,) = runner.proposals(images, size)
        (got,) = ours.rpn_head.predict(ours.extract_feat(images), _samples(size))
    assert len(expected) > 300, "the test needs a long proposal list"
    assert len(got) == len(expected)
    torch.testing.assert_close(got.boxes, expected, rtol=0, atol=BOX_TOL)
    assert (got.scores[:-1] >= got.scores[1:]).all()


def test_same_detections(models):
    runner, ours = models
    torch.manual_seed(3)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    image_sizes = [(IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE - 56, IMAGE_SIZE - 16)]
    with torch.no_grad():
        expected = runner.predict(images, image_sizes)
    got = ours.predict(DetBatch(images, _samples(image_sizes)))
    assert all(len(e["boxes"]) == 100 for e in expected), "the test needs full detection lists"
    for e, g in zip(expected, got, strict=True):
        assert len(g) == len(e["boxes"])
        torch.testing.assert_close(g.labels, e["labels"], rtol=0, atol=0)
        torch.testing.assert_close(g.scores, e["scores"], rtol=0, atol=SCORE_TOL)
        torch.testing.assert_close(g.boxes, e["boxes"], rtol=0, atol=BOX_TOL)


def test_same_losses_for_one_image_when_everything_is_sampled():
    """Samplers that take every assigned prior make sampling deterministic in both models;
    the normalisers (sampled count) and loss forms must then agree exactly."""
    torch.manual_seed(4)
    tv_model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                       num_classes=NUM_CLASSES + 1)
    unit_features(tv_model, seed=5)
    randomize(tv_model.rpn.head.cls_logits, OBJECTNESS_STD, seed=5)
    for sampler in (tv_model.rpn.fg_bg_sampler, tv_model.roi_heads.fg_bg_sampler):
        sampler.batch_size_per_image, sampler.positive_fraction = SAMPLE_ALL, 1.0
    config = torchvision_like_config(NUM_CLASSES)
    config["rpn_head"]["sampler"] = {"type": "RandomSampler", "num": SAMPLE_ALL,
                                     "pos_fraction": 1.0}
    config["roi_head"]["sampler"] = {"type": "RandomSampler", "num": SAMPLE_ALL,
                                     "pos_fraction": 1.0, "add_gt_as_proposals": True}
    ours = _build(config)
    load_torchvision_weights(ours, tv_model)
    runner = TorchvisionRunner(tv_model.eval())
    ours.eval()
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        expected = runner.loss(images, [{"boxes": GT_BOXES, "labels": GT_LABELS}])
        got = ours.loss(DetBatch(images, _samples([(IMAGE_SIZE, IMAGE_SIZE)],
                                                  [Instances(GT_BOXES, GT_LABELS)])))
    pairs = {"loss_rpn_cls": "loss_objectness", "loss_rpn_bbox": "loss_rpn_box_reg",
             "loss_cls": "loss_classifier", "loss_bbox": "loss_box_reg"}
    for mine, theirs in pairs.items():
        assert float(expected[theirs]) > 0, theirs
        torch.testing.assert_close(got[mine], expected[theirs], rtol=1e-4, atol=1e-6,
                                   msg=lambda m, k=mine: f"{k}: {m}")
    assert float(got["rpn_num_pos"]) >= len(GT_BOXES)
    assert float(got["roi_num_pos"]) >= len(GT_BOXES)  # at least the gt added as proposals
