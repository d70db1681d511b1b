"""Our RetinaNet against torchvision's with the same weights on the same input tensors.

torchvision's resize/normalise transform is bypassed (``TorchvisionRunner``); both models get
the same ``(B, 3, H, W)`` tensor with H, W multiples of the largest stride so that
torchvision's stride inference (image size // feature size) equals the configured strides.
"""

import pytest
import torch
from plugdet_retinanet.torchvision_compat import (
    TorchvisionRunner,
    load_torchvision_weights,
    torchvision_like_config,
)
from torch import nn
from torchvision.models.detection import retinanet_resnet50_fpn

from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_CLASSES = 5
IMAGE_SIZE = 128  # the largest stride; keeps the R50 forward fast
HEAD_STD = 0.01  # spreads random head scores over about (0.3, 0.7): distinct, above 0.05
BOX_TOL = 1e-3
SCORE_TOL = 1e-5


def randomize_head(model: nn.Module, std: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.head.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * std)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    tv_model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
    randomize_head(tv_model, HEAD_STD, seed=1)
    # torchvision's memory format (NCHW): the same float operations, so tight tolerances
    ours = get_registries().build(
        "detector", {**torchvision_like_config(NUM_CLASSES), "channels_last": False}, path="model")
    load_torchvision_weights(ours, tv_model)
    return TorchvisionRunner(tv_model.eval()), ours.eval()


def _samples(shapes, gts=None):
    gts = gts or [Instances() for _ in shapes]
    return [
        DetSample(img_shape=s, ori_shape=s, pad_shape=(IMAGE_SIZE, IMAGE_SIZE), gt=g)
        for s, g in zip(shapes, gts, strict=True)
    ]


def test_same_features_and_anchors(models):
    runner, ours = models
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        theirs = runner.features(images)
        mine = ours.extract_feat(images)
    assert len(mine) == len(theirs) == 5
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    tv_anchors = runner.anchors(images, theirs)[0]
    our_anchors = ours.head.priors([tuple(f.shape[-2:]) for f in mine], "cpu").boxes
    assert torch.equal(our_anchors, tv_anchors)


def test_same_detections(models):
    runner, ours = models
    torch.manual_seed(2)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    # the second image's valid area is smaller: both models clip boxes to it
    image_sizes = [(IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE - 28, IMAGE_SIZE - 8)]
    with torch.no_grad():
        expected = runner.predict(images, image_sizes)
    got = ours.predict(DetBatch(images, _samples(image_sizes)))
    assert all(len(e["boxes"]) == 300 for e in expected), "the test needs full detection lists"
    for e, g in zip(expected, got, strict=True):
        assert len(g) == len(e["boxes"])
        torch.testing.assert_close(g.labels, e["labels"], rtol=0, atol=0)
        torch.testing.assert_close(g.scores, e["scores"], rtol=0, atol=SCORE_TOL)
        torch.testing.assert_close(g.boxes, e["boxes"], rtol=0, atol=BOX_TOL)


def test_same_loss_for_one_image(models):
    """With one image, torchvision's per-image normalisation equals our per-batch one."""
    runner, ours = models
    torch.manual_seed(3)
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    boxes = torch.tensor([[10.0, 12.0, 70.0, 90.0], [60.0, 30.0, 120.0, 64.0], [5, 5, 20, 14]])
    labels = torch.tensor([1, 3, 0])
    with torch.no_grad():
        expected = runner.loss(images, [{"boxes": boxes, "labels": labels}])
        got = ours.loss(
            DetBatch(images, _samples([(IMAGE_SIZE, IMAGE_SIZE)], [Instances(boxes, labels)]))
        )
    torch.testing.assert_close(got["loss_cls"], expected["classification"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["loss_bbox"], expected["bbox_regression"], rtol=1e-5, atol=1e-6)
