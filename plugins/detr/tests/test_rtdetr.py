"""The RT-DETR detector on tiny inputs: training losses and gradients (an image without boxes
included), test-time top-k in original image pixels without NMS, and the parts' shapes."""

import pytest
import torch
from plugdet_detr.decoder import make_anchors
from plugdet_detr.outputs import DetrOutputs
from plugdet_detr.rtdetr import detr_targets
from torch import nn

from core.data.transforms.tta import TTA_GROUP_KEY
from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_CLASSES, SIZE, QUERIES = 3, 64, 20


def tiny_model(**head):
    torch.manual_seed(0)
    cfg = {
        "type": "RTDETR",
        "backbone": {"type": "ResNetVd", "depth": 18, "base_channels": 8},
        "neck": {"type": "HybridEncoder", "in_channels": [16, 32, 64], "hidden_dim": 16,
                 "num_heads": 2, "ffn_dim": 32, "expansion": 0.5},
        "head": {"type": "RTDETRHead", "num_classes": NUM_CLASSES, "in_channels": [16, 16, 16],
                 "hidden_dim": 16, "num_queries": QUERIES, "num_layers": 2, "num_heads": 2,
                 "ffn_dim": 32, "num_denoising": 10, "num_top_queries": 15, **head},
    }
    return get_registries().build("detector", cfg, path="model")


def batch(with_boxes=(True, False), scale=1.0):
    gts = [Instances(torch.tensor([[8.0, 10, 40, 50], [30, 20, 60, 62]]), torch.tensor([0, 2])),
           Instances(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long))]
    original = round(SIZE / scale)
    samples = [DetSample(ori_shape=(original, original), img_shape=(SIZE, SIZE),
                         pad_shape=(SIZE, SIZE), scale_factor=(scale, scale),
                         gt=gts[0] if keep else gts[1]) for keep in with_boxes]
    images = torch.rand(len(samples), 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return DetBatch(images, samples)


def test_loss_is_finite_and_reaches_the_backbone_with_an_image_without_boxes():
    model = tiny_model().train()
    losses = model.loss(batch())
    # last layer, one auxiliary layer, the encoder proposals, two denoising layers
    for suffix in ("", ".d0", ".enc", ".dn0", ".dn1"):
        for name in ("loss_vfl", "loss_bbox", "loss_giou"):
            assert torch.isfinite(losses[name + suffix]), name + suffix
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    total.backward()
    grad = model.backbone.conv1.conv1_1.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.head.decoder.denoising_class_embed.weight.grad.abs().sum() > 0


def test_a_batch_without_any_box_keeps_every_loss_and_the_denoising_path():
    """The same loss keys and parameters in use as with boxes (a rank of a distributed run
    whose images have no boxes must not diverge from the others)."""
    model = tiny_model().train()
    with_boxes = set(model.loss(batch()))
    losses = model.loss(batch(with_boxes=(False, False)))
    assert set(losses) == with_boxes
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.conv1.conv1_1.conv.weight.grad is not None
    assert model.head.decoder.denoising_class_embed.weight.grad is not None


def test_targets_are_normalised_by_the_padded_input():
    sample = DetSample(img_shape=(50, 60), pad_shape=(64, 96),
                       gt=Instances(torch.tensor([[0.0, 16, 48, 64]]), torch.tensor([1])))
    targets = detr_targets([sample], torch.device("cpu"))
    torch.testing.assert_close(targets.boxes[0], torch.tensor([[0.25, 0.625, 0.5, 0.75]]))
    assert targets.labels[0].tolist() == [1]


class FixedDecoder(nn.Module):
    """Two identical confident queries (class 1) and low scores elsewhere."""

    def forward(self, feats, denoising=None):
        logits = torch.full((1, 2, QUERIES, NUM_CLASSES), -8.0)
        logits[:, :, :2, 1] = 6.0
        boxes = torch.full((1, 2, QUERIES, 4), 0.5)
        boxes[:, :, :2] = torch.tensor([0.25, 0.5, 0.25, 0.5])  # xyxy (8, 16, 24, 48) at 64 px
        return DetrOutputs(logits, boxes, logits[0], boxes[0])


def test_predict_keeps_top_k_in_original_pixels_without_nms():
    model = tiny_model().eval()
    results = model.predict(batch(scale=0.5))
    assert len(results) == 2 and all(len(r) == 15 for r in results)  # num_top_queries
    assert all((r.scores[:-1] >= r.scores[1:]).all() for r in results)

    model.head.decoder = FixedDecoder()
    results = model.predict(batch(scale=0.5))
    top = results[0][:2]
    # both duplicates are kept (no NMS) and mapped back to the 128 px original image
    assert top.labels.tolist() == [1, 1]
    torch.testing.assert_close(top.boxes, torch.tensor([[16.0, 32, 48, 96]] * 2))
    assert (top.scores > 0.99).all() and (results[0].scores[2:] < 0.01).all()


def test_predict_refuses_test_time_augmentation_views():
    """The kernel merges TTA views with NMS, which RT-DETR's test path does not have."""
    model = tiny_model().eval()
    views = batch()
    for group, sample in enumerate(views.samples):
        sample.meta[TTA_GROUP_KEY] = group
    with pytest.raises(ConfigError, match="test-time augmentation"):
        model.predict(views)


def test_eval_outputs_only_the_last_layer():
    model = tiny_model().eval()
    with torch.no_grad():
        outputs = model.head(model.extract_feat(batch().images))
    assert outputs.logits.shape == (1, 2, QUERIES, NUM_CLASSES)
    assert outputs.boxes.shape == (1, 2, QUERIES, 4) and outputs.dn_logits is None


def test_anchors_cover_cells_and_mark_the_border_invalid():
    anchors, valid = make_anchors([(4, 4), (2, 2)], eps=0.01)
    assert anchors.shape == (1, 20, 4) and valid.shape == (1, 20, 1)
    boxes = anchors[valid[..., 0]].sigmoid()
    torch.testing.assert_close(boxes[0], torch.tensor([0.125, 0.125, 0.05, 0.05]))
    assert torch.isinf(anchors[~valid[..., 0]]).all()


@pytest.mark.parametrize(("depth", "channels"), [(18, [128, 256, 512]),
                                                 (50, [512, 1024, 2048])])
def test_backbone_and_encoder_shapes(depth, channels):
    registries = get_registries()
    backbone = registries.build("backbone", {"type": "ResNetVd", "depth": depth,
                                             "frozen_stages": 0, "frozen_bn": True})
    assert backbone.out_channels == channels
    assert not any(p.requires_grad for p in backbone.conv1.parameters())
    assert all(p.requires_grad for p in backbone.res_layers[0].parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    neck = registries.build("neck", {"type": "HybridEncoder", "in_channels": channels,
                                     "hidden_dim": 32, "num_heads": 2, "ffn_dim": 64})
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 64, 96))
        outs = neck(feats)
    assert [tuple(f.shape) for f in feats] == [(1, c, 64 // s, 96 // s)
                                               for c, s in zip(channels, (8, 16, 32), strict=True)]
    assert [tuple(f.shape) for f in outs] == [(1, 32, 64 // s, 96 // s) for s in (8, 16, 32)]
