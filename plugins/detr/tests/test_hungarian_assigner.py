"""Hungarian matching against brute force over every permutation, and the assigner's result."""

import itertools
import math

import pytest
import torch
from plugdet_detr.hungarian_assigner import HungarianAssigner, MatchCost, hungarian_match
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from core.api import Assigner, ConfigError, GTBatch, Predictions, Priors, missing_members

WEIGHTS = {"cls": 2.0, "l1": 5.0, "giou": 2.0}
ALPHA, GAMMA = 0.25, 2.0


def _pair_cost(logit, box, label, gt_box):
    """The cost of one query and one gt box, written out."""
    p = 1 / (1 + math.exp(-float(logit[label])))
    pos = ALPHA * (1 - p) ** GAMMA * -math.log(p + 1e-8)
    neg = (1 - ALPHA) * p ** GAMMA * -math.log(1 - p + 1e-8)
    l1 = sum(abs(float(a) - float(b)) for a, b in zip(box, gt_box, strict=True))
    xyxy = box_convert(torch.stack([box, gt_box]).double(), "cxcywh", "xyxy")
    giou = float(generalized_box_iou(xyxy[:1], xyxy[1:])[0, 0])
    return WEIGHTS["cls"] * (pos - neg) + WEIGHTS["l1"] * l1 - WEIGHTS["giou"] * giou


def _cost_matrix(logits, boxes, labels, gt_boxes):
    return [[_pair_cost(logits[q], boxes[q], labels[g], gt_boxes[g])
             for g in range(len(labels))] for q in range(len(logits))]


def _brute_force_min(cost, num_queries, num_gts):
    """The least total cost of a one-to-one matching of min(Q, n) pairs, by enumeration."""
    if num_gts <= num_queries:
        return min(sum(cost[q][g] for g, q in enumerate(queries))
                   for queries in itertools.permutations(range(num_queries), num_gts))
    return min(sum(cost[q][g] for q, g in enumerate(gts))
               for gts in itertools.permutations(range(num_gts), num_queries))


def _random_case(generator, num_queries, num_gts, num_classes=3):
    logits = torch.randn(num_queries, num_classes, generator=generator) * 2
    centres = torch.rand(num_queries + num_gts, 2, generator=generator) * 0.6 + 0.2
    sizes = torch.rand(num_queries + num_gts, 2, generator=generator) * 0.3 + 0.05
    boxes = torch.cat([centres, sizes], dim=1)
    labels = torch.randint(num_classes, (num_gts,), generator=generator)
    return logits, boxes[:num_queries], labels, boxes[num_queries:]


def _check_against_brute_force(logits, boxes, labels, gt_boxes):
    num_queries, num_gts = len(logits), len(labels)
    query_idx, gt_idx = hungarian_match(logits, boxes, labels, gt_boxes)
    assert len(query_idx) == len(gt_idx) == min(num_queries, num_gts)
    assert len(set(query_idx.tolist())) == len(query_idx)
    assert len(set(gt_idx.tolist())) == len(gt_idx)
    cost = _cost_matrix(logits, boxes, labels, gt_boxes)
    total = sum(cost[q][g] for q, g in zip(query_idx.tolist(), gt_idx.tolist(), strict=True))
    assert total == pytest.approx(_brute_force_min(cost, num_queries, num_gts), abs=1e-4)


def test_cost_matrix_is_the_written_out_cost():
    generator = torch.Generator().manual_seed(1)
    logits, boxes, labels, gt_boxes = _random_case(generator, 5, 3)
    cost = MatchCost()(logits.sigmoid(), boxes, labels, gt_boxes)
    expected = torch.tensor(_cost_matrix(logits, boxes, labels, gt_boxes))
    torch.testing.assert_close(cost, expected.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(30))
def test_match_is_the_least_total_cost_of_every_permutation(seed):
    generator = torch.Generator().manual_seed(seed)
    num_queries = int(torch.randint(1, 7, (1,), generator=generator))
    num_gts = int(torch.randint(1, min(num_queries, 4) + 1, (1,), generator=generator))
    _check_against_brute_force(*_random_case(generator, num_queries, num_gts))


def test_more_gt_boxes_than_queries_match_every_query():
    generator = torch.Generator().manual_seed(7)
    _check_against_brute_force(*_random_case(generator, 2, 4))


@pytest.mark.parametrize("seed", range(5))
def test_ties_reach_the_least_total_cost(seed):
    generator = torch.Generator().manual_seed(100 + seed)
    logits, boxes, labels, gt_boxes = _random_case(generator, 3, 2)
    # every query twice and every gt box twice: many matchings share the least cost
    logits, boxes = logits.repeat(2, 1), boxes.repeat(2, 1)
    labels, gt_boxes = labels.repeat(2), gt_boxes.repeat(2, 1)
    _check_against_brute_force(logits, boxes, labels, gt_boxes)


def test_image_without_boxes_matches_nothing():
    query_idx, gt_idx = hungarian_match(torch.randn(4, 3), torch.rand(4, 4),
                                        torch.zeros(0, dtype=torch.long), torch.zeros(0, 4))
    assert query_idx.numel() == gt_idx.numel() == 0


def _queries(num_images, num_queries, valid=None):
    points = torch.zeros(num_images, num_queries, 2)
    return Priors(points=points, strides=torch.zeros(num_images, num_queries),
                  level_sizes=(num_queries,), boxes=torch.zeros(num_images, num_queries, 4),
                  valid=valid)


def test_assigner_follows_the_contract():
    assert missing_members(Assigner, HungarianAssigner) == []
    assert missing_members(Assigner, HungarianAssigner()) == []
    assert HungarianAssigner.uses_predictions


def test_assigner_result_on_pixel_boxes():
    generator = torch.Generator().manual_seed(3)
    height, width = 320, 480
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    logits, boxes, labels, gt_boxes = _random_case(generator, 6, 3)
    pred_xyxy = box_convert(boxes, "cxcywh", "xyxy") * scale
    gt_xyxy = box_convert(gt_boxes, "cxcywh", "xyxy") * scale
    gt = GTBatch.from_lists([gt_xyxy, torch.zeros(0, 4)], [labels, torch.zeros(0)])
    pred = Predictions(scores=torch.stack([logits, logits]).sigmoid(),
                       boxes=torch.stack([pred_xyxy, pred_xyxy]))
    result = HungarianAssigner().assign(_queries(2, 6), gt, pred, image_size=(height, width))

    query_idx, gt_idx = hungarian_match(logits, boxes, labels, gt_boxes)
    expected = torch.zeros(6, dtype=torch.long)
    expected[query_idx] = gt_idx + 1
    assert result.gt_inds[0].tolist() == expected.tolist()
    assert result.labels[0, query_idx].tolist() == labels[gt_idx].tolist()
    assert (result.labels[0][expected == 0] == -1).all()
    iou = box_iou(pred_xyxy[query_idx], gt_xyxy[gt_idx]).diagonal()
    torch.testing.assert_close(result.max_overlaps[0, query_idx], iou)
    assert (result.max_overlaps[0][expected == 0] == 0).all()
    assert result.quality is not None
    torch.testing.assert_close(result.quality, result.max_overlaps)
    assert result.num_gts.tolist() == [3, 0]
    # the image without boxes: every query negative
    assert (result.gt_inds[1] == 0).all() and (result.labels[1] == -1).all()
    assert (result.max_overlaps[1] == 0).all()


def test_assigner_never_matches_padding_queries():
    gt_box = torch.tensor([[0.2, 0.2, 0.6, 0.7]])
    boxes = torch.tensor([[0.0, 0.0, 0.3, 0.3], gt_box[0].tolist(), [0.5, 0.5, 0.9, 0.9]])
    scores = torch.tensor([[0.1], [0.99], [0.2]])
    gt = GTBatch.from_lists([gt_box], [torch.tensor([0])])
    pred = Predictions(scores=scores[None], boxes=boxes[None])
    assigner = HungarianAssigner()
    assert assigner.assign(_queries(1, 3), gt, pred).gt_inds.tolist() == [[0, 1, 0]]
    padded = _queries(1, 3, valid=torch.tensor([[True, False, True]]))
    result = assigner.assign(padded, gt, pred)
    assert result.gt_inds[0, 1] == 0 and int((result.gt_inds > 0).sum()) == 1


def test_assigner_refuses_bad_settings():
    with pytest.raises(ConfigError, match="needs the queries' predictions"):
        HungarianAssigner().assign(_queries(1, 2), GTBatch.from_lists(
            [torch.zeros(0, 4)], [torch.zeros(0)]))
    with pytest.raises(ConfigError, match=">= 0"):
        HungarianAssigner(l1_weight=-1.0)
    with pytest.raises(ConfigError, match="alpha"):
        HungarianAssigner(alpha=1.5)
