"""Faster R-CNN's parts on hand-computed cases: RoI sampling, padded proposals, the level
of a box in RoIAlign, proposal NMS per level, losses and contracts."""

import pytest
import torch
from plugdet_faster_rcnn.roi_extractor import MultiLevelRoIAlign
from torchvision.ops import roi_align

from core import contracts
from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

IMAGE = 128
TINY_MODEL = {
    "type": "FasterRCNN",
    "backbone": {"type": "TinyNet", "widths": [8, 16, 32], "depths": [1, 1, 1],
                 "out_indices": [1, 2]},
    "neck": {"type": "FPN", "in_channels": [16, 32], "out_channels": 8, "num_outs": 2},
    "rpn_head": {"type": "RPNHead", "in_channels": 8, "feat_channels": 8,
                 "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16],
                                     "ratios": [1.0], "octave_base_scale": 4.0,
                                     "scales_per_octave": 1}},
    "roi_head": {"type": "StandardRoIHead", "num_classes": 3, "in_channels": 8,
                 "fc_channels": 16,
                 "roi_extractor": {"type": "MultiLevelRoIAlign", "featmap_strides": [8, 16]}},
}


def build(stage, table):
    return get_registries().build(stage, table)


def sample(gt=None, shape=(IMAGE, IMAGE)):
    return DetSample(img_shape=shape, ori_shape=shape, pad_shape=shape,
                     gt=gt if gt is not None else Instances())


def roi_head(num, pos_fraction):
    return build("head", {**TINY_MODEL["roi_head"], "sampler": {
        "type": "RandomSampler", "num": num, "pos_fraction": pos_fraction,
        "add_gt_as_proposals": True}})


def shifted(box, shifts):
    """Copies of ``box`` moved right by each of ``shifts`` pixels."""
    return torch.stack([box + torch.tensor([s, 0.0, s, 0.0]) for s in shifts])


GT = Instances(torch.tensor([[20.0, 20.0, 60.0, 60.0]]), torch.tensor([2]))


def crafted_proposals():
    """Image 0: 40 proposals of IoU >= 0.5 with its gt (shift <= 4 px of 40) and 100 of IoU 0
    (far right); image 1: 2 positives and 3 negatives, padded to image 0's length."""
    box = GT.boxes[0]
    first = torch.cat([shifted(box, torch.linspace(0, 4, 40).tolist()),
                       shifted(box, [70.0] * 100)])
    second = torch.cat([shifted(box, [0.0, 2.0]), shifted(box, [70.0, 68.0, 66.0])])
    return [Instances(first, torch.zeros(140, dtype=torch.long)),
            Instances(second, torch.zeros(5, dtype=torch.long))]


def test_random_sampler_counts_and_positive_fraction_on_proposals():
    torch.manual_seed(0)
    head = roi_head(num=32, pos_fraction=0.25)
    sampling, _ = head.sample(crafted_proposals(), [sample(GT), sample(GT)])
    # the gt is added as a proposal (first column): image 0 has 41 positives, 100 negatives
    assert sampling.pos_mask.shape == (2, 1 + 140)
    pos, neg = sampling.pos_mask.sum(1).tolist(), sampling.neg_mask.sum(1).tolist()
    assert pos[0] == 8 and neg[0] == 32 - 8  # capped at 32 * 0.25, the rest negatives
    assert pos[1] == 3 and neg[1] == 3  # too few of both: everything real is taken
    assert not (sampling.pos_mask & sampling.neg_mask).any()
    positives = sampling.assign_result.gt_inds[sampling.pos_mask]
    assert (positives == 1).all()
    assert (sampling.assign_result.labels[sampling.pos_mask] == 2).all()


def test_padded_proposals_are_never_sampled():
    torch.manual_seed(1)
    head = roi_head(num=1000, pos_fraction=0.25)
    for _ in range(5):
        sampling, _ = head.sample(crafted_proposals(), [sample(GT), sample(GT)])
        padding = ~sampling.priors.valid
        assert padding[1].sum() == 140 - 5
        assert not (sampling.neg_mask & padding).any()
        assert not (sampling.pos_mask & padding).any()
        assert sampling.neg_mask[1].sum() == 3


def test_padded_gt_rows_are_never_sampled():
    """Image 1 has no gt: its gt-proposal column is padding."""
    head = roi_head(num=1000, pos_fraction=0.25)
    sampling, _ = head.sample(crafted_proposals(), [sample(GT), sample()])
    assert not sampling.pos_mask[1, 0] and not sampling.neg_mask[1, 0]
    assert sampling.pos_mask[1].sum() == 0 and sampling.neg_mask[1].sum() == 5


def test_roi_level_follows_box_size():
    extractor = MultiLevelRoIAlign(featmap_strides=(4, 8, 16, 32), finest_scale=56.0)
    sides = [10.0, 55.0, 56.0, 111.0, 112.0, 224.0, 447.0, 448.0, 2000.0, 0.0]
    rois = torch.tensor([[0.0, 0.0, 0.0, s, s] for s in sides])
    assert extractor.levels(rois).tolist() == [0, 0, 0, 0, 1, 2, 2, 3, 3, 0]
    # a 56 x 224 box has scale 112
    assert extractor.levels(torch.tensor([[0.0, 0.0, 0.0, 56.0, 224.0]])).tolist() == [1]


def test_roi_features_come_from_the_chosen_level():
    torch.manual_seed(2)
    extractor = MultiLevelRoIAlign(featmap_strides=(4, 8), out_size=3, sampling_ratio=2,
                                   aligned=False, finest_scale=56.0)
    feats = [torch.randn(2, 4, 32, 32), torch.randn(2, 4, 16, 16)]
    rois = torch.tensor([[0.0, 4.0, 4.0, 40.0, 40.0], [1.0, 0.0, 0.0, 120.0, 120.0],
                         [1.0, 8.0, 16.0, 30.0, 50.0]])
    out = extractor.extract(feats, rois)
    assert out.shape == (3, 4, 3, 3)
    for row, (level, stride) in zip(rois, [(0, 4), (1, 8), (0, 4)], strict=True):
        expected = roi_align(feats[level], row[None], 3, spatial_scale=1 / stride,
                             sampling_ratio=2, aligned=False)
        got = out[(rois == row).all(1)]
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_proposal_nms_suppresses_within_a_level_only():
    nms = build("postprocess", {"type": "ProposalNMS", "nms_pre": 3, "iou_threshold": 0.7,
                                "max_per_img": 10, "min_bbox_size": 1.0})
    # level 0: three anchors, level 1: two; scores per anchor
    scores = [torch.tensor([[[0.9], [0.8], [0.7]]]), torch.tensor([[[0.6], [0.5]]])]
    candidates = nms.select(scores)
    assert candidates.labels.tolist() == [[0, 0, 0, 1, 1]]
    box = [0.0, 0.0, 10.0, 10.0]
    boxes = torch.tensor([[box, [0.0, 0.0, 10.0, 9.5], [20.0, 20.0, 30.0, 30.0], box,
                           [5.0, 5.0, 5.5, 20.0]]])
    (kept,) = nms(boxes, candidates)
    # the 0.95-IoU box of level 0 goes; the same box on level 1 stays; the 0.5-wide box is
    # below min_bbox_size
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert kept.boxes.tolist() == [box, [20.0, 20.0, 30.0, 30.0], box]
    assert kept.labels.tolist() == [0, 0, 0]


def test_detector_losses_backward_and_predictions():
    torch.manual_seed(3)
    detector = build("detector", TINY_MODEL)
    gt = Instances(torch.tensor([[10.0, 10.0, 60.0, 70.0], [70.0, 20.0, 120.0, 60.0]]),
                   torch.tensor([0, 2]))
    images = torch.randn(2, 3, IMAGE, IMAGE)
    losses = detector.loss(DetBatch(images, [sample(gt), sample()]))  # image 1 has no gt
    assert {k for k in losses if not k.startswith("rpn_assign/")} == {
        "loss_rpn_cls", "loss_rpn_bbox", "rpn_num_pos", "loss_cls", "loss_bbox", "roi_num_pos"}
    assert losses["rpn_assign/gt_without_pos"] == 0  # both boxes of image 0 have positives
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    assert losses["rpn_num_pos"] >= 2 and losses["roi_num_pos"] >= 2
    sum(v for k, v in losses.items() if k.startswith("loss")).backward()
    assert detector.rpn_head.rpn_cls.weight.grad.abs().sum() > 0
    assert detector.roi_head.bbox_head.fc_reg.weight.grad.abs().sum() > 0
    results = detector.eval().predict(DetBatch(images, [sample(), sample()]))
    for result in results:
        assert result.scores is not None and ((result.labels >= 0) & (result.labels < 3)).all()
        assert (result.boxes >= 0).all() and (result.boxes <= IMAGE).all()


def test_rpn_loss_is_normalised_by_the_sampled_count():
    """With one image and every anchor sampled, loss_rpn_cls is the mean BCE over the
    assigned (non-ignored) anchors, positives labelled 1 whatever their gt class."""
    torch.manual_seed(4)
    head = build("head", {**TINY_MODEL["rpn_head"],
                          "sampler": {"type": "RandomSampler", "num": 10**6,
                                      "pos_fraction": 1.0}})
    feats = (torch.randn(1, 8, 16, 16), torch.randn(1, 8, 8, 8))
    gt = Instances(torch.tensor([[10.0, 10.0, 60.0, 70.0]]), torch.tensor([2]))
    losses = head.loss(feats, [sample(gt)])
    objectness, _ = head(feats)
    logits = torch.cat([o.permute(0, 2, 3, 1).reshape(-1) for o in objectness])
    assign = head.assigner.assign(head.priors_of(objectness),
                                  contracts.GTBatch.from_samples([sample(gt)], "cpu"))
    counted = assign.gt_inds[0] >= 0
    target = (assign.gt_inds[0] > 0).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[counted],
                                                                    target[counted])
    torch.testing.assert_close(losses["loss_rpn_cls"], expected)
    assert float(losses["rpn_num_pos"]) == float(target.sum()) > 0


def test_contracts_and_config_errors():
    regs = get_registries()
    assert contracts.missing_members(contracts.ProposalHead,
                                     regs["head"].get("RPNHead").factory) == []
    assert contracts.missing_members(contracts.RoIHead,
                                     regs["head"].get("StandardRoIHead").factory) == []
    assert "roi_extractor" in regs.stages
    with pytest.raises(ConfigError, match="out_size"):
        build("roi_extractor", {"type": "MultiLevelRoIAlign", "out_size": 0})
    with pytest.raises(ConfigError, match="same number of anchors"):
        build("head", {"type": "RPNHead", "prior_generator": {
            "type": "AnchorGenerator", "strides": [8, 16], "sizes": [[32], [64, 90]]}})
    with pytest.raises(ConfigError, match="num_classes"):
        build("head", {"type": "StandardRoIHead", "num_classes": 0})


def test_a_soft_target_loss_is_refused_by_the_roi_head_at_build_time():
    """The RoI head's softmax classification takes labels only: a loss that wants soft
    (quality) targets is refused with one line naming both."""
    with pytest.raises(ConfigError, match=r"loss_cls: QualityFocalLoss takes soft \(quality\) "
                       r"targets, but StandardRoIHead gives class labels"):
        build("head", {**TINY_MODEL["roi_head"], "loss_cls": {"type": "QualityFocalLoss"}})
    head = build("head", {**TINY_MODEL["roi_head"], "loss_cls": {"type": "CrossEntropyLoss"}})
    assert type(head.loss_cls).__name__ == "CrossEntropyLoss"
