"""YOLOv8: published sizes, head outputs and initialisation, the loss against a direct
computation, and short trainings on random data."""

import math
from importlib import resources

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss

from core.config import load_config
from core.contracts import GTBatch, Predictions
from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances
from core.tools.model_info import format_info, model_info

#: Published parameter counts with 80 classes (ultralytics' summaries count the 16 fixed
#: weights of the DFL integral as parameters: 3,157,200 and 11,166,560).
PUBLISHED = {"n": 3_157_200, "s": 11_166_560}
PUBLISHED_GFLOPS = {"n": 8.7, "s": 28.6}
NUM_CLASSES = 3
TINY = {"deepen_factor": 0.33, "widen_factor": 0.125}


def config_path(name):
    return str(resources.files("plugdet_yolo") / "configs" / name)


def build_detector(cfg):
    torch.manual_seed(0)
    return get_registries().build("detector", cfg, path="model")


def tiny_model(**head):
    return {
        "type": "YOLODetector",
        "backbone": {"type": "YOLOv8CSPDarknet", **TINY},
        "neck": {"type": "YOLOv8PAFPN", **TINY},
        "head": {"type": "YOLOv8Head", "num_classes": NUM_CLASSES, "widen_factor": 0.125,
                 **head},
    }


def samples(size=96):
    gts = [Instances(torch.tensor([[8.0, 10, 50, 60], [40, 30, 90, 88]]), torch.tensor([0, 2])),
           Instances(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long)),
           Instances(torch.tensor([[20.0, 16, 70, 50]]), torch.tensor([1]))]
    return [DetSample(ori_shape=(size, size), img_shape=(size, size), pad_shape=(size, size),
                      gt=gt) for gt in gts]


def random_batch(size=96, seed=1):
    images = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return DetBatch(images, samples(size))


@pytest.mark.parametrize("size", ["n", "s"])
def test_parameters_match_the_published_sizes(size):
    cfg = load_config(config_path(f"yolov8_{size}_500e_coco.toml"))
    params = sum(p.numel() for p in build_detector(cfg["model"]).parameters())
    assert abs(params - PUBLISHED[size]) / PUBLISHED[size] < 0.02
    # the only difference is the DFL integral, a fixed arange here (not a parameter)
    assert params == PUBLISHED[size] - 16


@pytest.mark.parametrize("size", ["n", "s"])
def test_flops_match_the_published_figures(size):
    """ultralytics prints 8.7 / 28.6 GFLOPs at 640 px, counting 2 FLOPs per multiply-add
    like core.tools.model_info."""
    cfg = load_config(config_path(f"yolov8_{size}_500e_coco.toml"))
    info = model_info(cfg, (640, 640), depth=1)
    print(f"\nyolov8_{size} at 640x640 (FLOPs = 2 x multiply-adds):\n" + format_info(info))
    assert info.params == PUBLISHED[size] - 16
    assert abs(info.flops / 1e9 - PUBLISHED_GFLOPS[size]) < 0.05


def test_head_outputs_and_bias_initialisation():
    model = build_detector(tiny_model())
    head = model.head
    feats = model.extract_feat(torch.zeros(2, 3, 64, 96))
    cls_scores, distances, bins = head(feats)
    for level, stride in enumerate((8, 16, 32)):
        shape = (64 // stride, 96 // stride)
        assert cls_scores[level].shape == (2, NUM_CLASSES, *shape)
        assert distances[level].shape == (2, 4, *shape)
        assert bins[level].shape == (2, 4 * 16, *shape)
        expected = math.log(5 / NUM_CLASSES / (640 / stride) ** 2)
        assert torch.allclose(head.cls_branches[level][-1].bias, torch.tensor(expected))
        assert torch.equal(head.reg_branches[level][-1].bias, torch.ones(4 * 16))
    assert all(((d >= 0) & (d <= 15)).all() for d in distances)
    # the integral is the expectation of the softmax over the bins, side by side
    logits = bins[0][0, :, 1, 2].view(4, 16)
    direct = (logits.softmax(dim=1) * torch.arange(16.0)).sum(dim=1)
    assert torch.allclose(distances[0][0, :, 1, 2], direct, atol=1e-6)


def test_loss_equals_a_direct_computation():
    """BCE to onehot * soft target / S, (1 - CIoU) * soft / S, DFL mean over sides * soft / S,
    times the batch size, with S the sum of the soft targets."""
    model = build_detector(tiny_model())
    head = model.head
    batch = random_batch()
    feats = model.extract_feat(batch.images)
    cls_scores, distances, bins = head(feats)
    losses = head.loss_by_feat(cls_scores, distances, batch.samples, bins)

    priors = head.priors_of(cls_scores)
    cls = torch.cat([c.flatten(2).transpose(1, 2) for c in cls_scores], dim=1)
    dist = torch.cat([d.flatten(2).transpose(1, 2) for d in distances], dim=1)
    logits = torch.cat([b.flatten(2).transpose(1, 2) for b in bins], dim=1)
    points, strides = priors.points, priors.strides
    boxes = torch.cat([points - dist[..., :2] * strides[:, None],
                       points + dist[..., 2:] * strides[:, None]], dim=-1)
    gt = GTBatch.from_samples(batch.samples, "cpu")
    result = head.assigner.assign(priors, gt, Predictions(cls.sigmoid().detach(),
                                                          boxes.detach()))
    pos = result.pos_mask
    assert int(pos.sum()) > 0 and float(losses["num_pos"]) == int(pos.sum())
    soft = torch.zeros_like(cls)
    image, prior = pos.nonzero(as_tuple=True)
    soft[image, prior, result.labels[image, prior]] = result.quality[image, prior]
    total = result.quality[pos].sum().clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(cls, soft, reduction="sum") / total
    matched = gt.boxes[image, result.gt_inds[image, prior] - 1]
    weight = result.quality[image, prior]
    ciou = (complete_box_iou_loss(boxes[image, prior], matched) * weight).sum() / total
    targets = torch.cat([points[prior] - matched[:, :2], matched[:, 2:] - points[prior]], dim=1)
    targets = (targets / strides[prior, None]).clamp(0, 16 - 1 - 0.01)
    log_p = F.log_softmax(logits[image, prior].view(-1, 4, 16), dim=-1)
    left = targets.floor().long()
    dfl = -(log_p.gather(-1, left[..., None])[..., 0] * (left + 1 - targets)
            + log_p.gather(-1, left[..., None] + 1)[..., 0] * (targets - left))
    dfl = (dfl.mean(dim=1) * weight).sum() / total
    num_images = len(batch.samples)
    expected = {"loss_cls": 0.5 * bce, "loss_bbox": 7.5 * ciou, "loss_dfl": 1.5 * dfl}
    for key, value in expected.items():
        assert float(losses[key].detach()) == pytest.approx(
            float(value.detach()) * num_images, rel=1e-4)


def test_two_training_iterations_on_random_data():
    model = build_detector(tiny_model())
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = random_batch()
    for _ in range(2):
        losses = model.loss(batch)
        assert float(losses["num_pos"]) > 0
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        assert all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        total.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        optimizer.step()
    model.eval()
    predictions = model.predict(batch)
    assert len(predictions) == 3
    for pred in predictions:
        assert pred.boxes.shape == (len(pred), 4) and pred.scores is not None
        assert ((pred.labels >= 0) & (pred.labels < NUM_CLASSES)).all()


def test_batch_without_boxes_trains_the_classifier_only():
    model = build_detector(tiny_model())
    empty = [DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                       gt=Instances(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long)))] * 2
    losses = model.loss(DetBatch(torch.rand(2, 3, 64, 64), empty))
    assert float(losses["num_pos"]) == 0
    assert float(losses["loss_bbox"].detach()) == 0 and float(losses["loss_dfl"].detach()) == 0
    assert float(losses["loss_cls"].detach()) > 0


@pytest.mark.parametrize(("head", "match"), [
    ({"reg_max": 1}, "reg_max"),
    ({"in_channels": [256, 512]}, "in_channels"),
    ({"num_classes": 0}, "num_classes"),
])
def test_bad_head_config(head, match):
    with pytest.raises(ConfigError, match=match):
        build_detector(tiny_model(**head))


def test_assignments_for_visualisation_follow_the_training_path():
    model = build_detector(tiny_model())
    batch = random_batch()
    feats = model.extract_feat(batch.images)
    assignments = model.head.get_assignments(feats, batch.samples)
    counts = [sum(len(level) for level in image) for image in assignments.pos_inds]
    assert counts[1] == 0 and counts[0] > 0 and counts[2] > 0
    assert sum(counts) == float(model.head.loss(feats, batch.samples)["num_pos"])
    for image, gt in zip(assignments.pos_gt_inds, batch.samples, strict=True):
        assert all(((g >= 0) & (g < len(gt.gt))).all() for g in image)
