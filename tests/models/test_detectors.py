"""Detectors in core: the single-stage detector under another name, and the two-stage base
wiring a proposal head into an RoI head."""

import pytest
import torch
from torch import nn

from core.models.detectors import SingleStageDetector, TwoStageDetector
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

DEMO_MODEL = {
    "backbone": {"type": "TinyNet", "widths": [8, 16, 32], "depths": [1, 1, 1],
                 "out_indices": [1, 2]},
    "neck": {"type": "FPN", "in_channels": [16, 32], "out_channels": 8, "num_outs": 2},
    "head": {"type": "RetinaHead", "num_classes": 2, "in_channels": 8, "feat_channels": 8,
             "stacked_convs": 1,
             "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16]}},
}


def batch():
    sample = DetSample(img_shape=(64, 64), pad_shape=(64, 64), ori_shape=(32, 32),
                       scale_factor=(2.0, 2.0),
                       gt=Instances(torch.tensor([[8.0, 8, 40, 40]]), torch.tensor([1])))
    return DetBatch(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
                    [sample])


def test_retinanet_is_the_single_stage_detector():
    regs = get_registries()
    torch.manual_seed(0)
    retinanet = regs.build("detector", {"type": "RetinaNet", **DEMO_MODEL})
    torch.manual_seed(0)
    generic = regs.build("detector", {"type": "SingleStageDetector", **DEMO_MODEL})
    assert isinstance(retinanet, SingleStageDetector)
    first, second = retinanet.loss(batch()), generic.loss(batch())
    assert first.keys() == second.keys()
    assert {"loss_cls", "loss_bbox", "num_pos"} <= first.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


class ToyProposalHead(nn.Module):
    """Proposes the whole image with objectness 1; its loss is a learnable scalar."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(2.0))

    def _proposals(self, samples):
        return [Instances(torch.tensor([[0.0, 0, s.img_shape[1], s.img_shape[0]]]),
                          torch.zeros(1, dtype=torch.long), torch.ones(1)) for s in samples]

    def loss_and_proposals(self, feats, samples):
        return {"loss_rpn": self.weight * 1.0}, self._proposals(samples)

    def loss(self, feats, samples):
        return self.loss_and_proposals(feats, samples)[0]

    def predict(self, feats, samples):
        return self._proposals(samples)


class ToyRoIHead(nn.Module):
    """Returns its proposals as detections of class 1; records what it was given."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.seen = []

    def loss(self, feats, proposals, samples):
        self.seen.append(proposals)
        return {"loss_roi": self.scale * len(proposals[0]), "num_rois": torch.tensor(1.0)}

    def predict(self, feats, proposals, samples):
        self.seen.append(proposals)
        return [Instances(p.boxes, torch.ones(len(p), dtype=torch.long), p.scores)
                for p in proposals]


def test_two_stage_detector_passes_proposals_and_merges_losses():
    backbone = get_registries().build("backbone", DEMO_MODEL["backbone"])
    roi = ToyRoIHead()
    detector = TwoStageDetector(backbone=backbone, rpn_head=ToyProposalHead(), roi_head=roi)
    losses = detector.loss(batch())
    assert set(losses) == {"loss_rpn", "loss_roi", "num_rois"}
    assert roi.seen[0][0].boxes.tolist() == [[0.0, 0.0, 64.0, 64.0]]
    (result,) = detector.eval()(batch())
    assert result.boxes.tolist() == [[0.0, 0.0, 32.0, 32.0]]  # back to the original pixels
    assert result.labels.tolist() == [1]


def test_two_stage_detector_refuses_clashing_loss_keys():
    class Clash(ToyRoIHead):
        def loss(self, feats, proposals, samples):
            return {"loss_rpn": self.scale}

    backbone = get_registries().build("backbone", DEMO_MODEL["backbone"])
    detector = TwoStageDetector(backbone=backbone, rpn_head=ToyProposalHead(), roi_head=Clash())
    with pytest.raises(ValueError, match="loss_rpn"):
        detector.loss(batch())


def test_channels_last_is_the_default_and_agrees_with_nchw():
    regs = get_registries()
    torch.manual_seed(0)
    default = regs.build("detector", {"type": "RetinaNet", **DEMO_MODEL})
    torch.manual_seed(0)
    nchw = regs.build("detector", {"type": "RetinaNet", **DEMO_MODEL, "channels_last": False})
    conv = next(m for m in default.modules()
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    feats = default.extract_feat(batch().images)
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in feats)
    for mine, theirs in zip(feats, nchw.extract_feat(batch().images), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    first, second = default.loss(batch()), nchw.loss(batch())
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=1e-4, atol=1e-5)
