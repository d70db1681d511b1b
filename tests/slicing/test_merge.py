"""Merging the detections of overlapping tiles: greedy NMM joins the pieces of a box cut by a
tile edge, NMS keeps the better piece; SAHI's order, metrics and merge rules."""

import pytest
import torch

from core.data.slicing import merge_detections
from core.data.slicing.merge import box_match, greedy_nmm_groups, nms_keep
from core.structures import Instances


def _dets(boxes, scores, labels=None):
    labels = labels if labels is not None else [0] * len(boxes)
    return Instances(torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels),
                     torch.tensor(scores, dtype=torch.float32))


# one object at x 480..540 cut by the right edge (x = 512) of a tile starting at 0: the left
# tile sees its left part, the next tile (starting at 410) the whole of it
PIECE_LEFT = [480.0, 100.0, 512.0, 130.0]
WHOLE = [480.0, 100.0, 540.0, 130.0]
PIECE_RIGHT = [512.0, 100.0, 540.0, 130.0]


def test_greedy_nmm_joins_the_pieces_of_a_box_cut_by_a_tile_edge():
    merged = merge_detections(_dets([PIECE_LEFT, PIECE_RIGHT, WHOLE], [0.6, 0.5, 0.9]))
    assert len(merged) == 1
    assert merged.boxes[0].tolist() == WHOLE and merged.scores.tolist() == pytest.approx([0.9])


def test_greedy_nmm_merged_box_is_the_union_and_the_score_the_maximum():
    # both pieces of a box whose two tiles each saw part of it (an overlap strip in common)
    left, right = [480.0, 100.0, 522.0, 130.0], [500.0, 98.0, 540.0, 131.0]
    merged = merge_detections(_dets([left, right], [0.4, 0.7]))
    assert merged.boxes.tolist() == [[480.0, 98.0, 540.0, 131.0]]
    assert merged.scores.tolist() == pytest.approx([0.7])


def test_nms_keeps_the_better_piece():
    kept = merge_detections(_dets([PIECE_LEFT, WHOLE], [0.6, 0.9]), method="nms")
    assert kept.boxes.tolist() == [WHOLE] and kept.scores.tolist() == pytest.approx([0.9])


def test_class_aware_by_default_and_agnostic_on_request():
    dets = _dets([PIECE_LEFT, WHOLE], [0.6, 0.9], labels=[1, 2])
    assert len(merge_detections(dets)) == 2
    agnostic = merge_detections(dets, class_agnostic=True)
    assert len(agnostic) == 1 and agnostic.labels.tolist() == [2]


def test_ios_and_iou_of_a_box_inside_another():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 5.0, 10.0],
                          [20.0, 20.0, 20.0, 30.0]]).numpy()
    assert box_match(boxes[0], boxes, "ios").tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert box_match(boxes[0], boxes, "iou").tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_threshold_is_inclusive_in_the_grouping_and_strict_in_the_merge():
    # IoS exactly 0.5: the keeper takes the box (>=) but the merge re-check (>) leaves it out
    a, b = [0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]
    dets = _dets([a, b], [0.9, 0.8])
    groups = greedy_nmm_groups(dets.boxes.numpy(), dets.scores.numpy(), "ios", 0.5)
    assert groups == {0: [1]}
    merged = merge_detections(dets)
    assert merged.boxes.tolist() == [a]
    assert nms_keep(dets.boxes.numpy(), dets.scores.numpy(), "ios", 0.5) == [0]


def test_equal_scores_are_visited_left_to_right_then_top_to_bottom():
    dets = _dets([[50.0, 0.0, 60.0, 10.0], [0.0, 5.0, 10.0, 15.0], [0.0, 0.0, 10.0, 10.0]],
                 [0.5, 0.5, 0.5])
    assert nms_keep(dets.boxes.numpy(), dets.scores.numpy(), "iou", 0.5) == [2, 1, 0]


def test_a_taken_box_no_longer_matching_the_grown_box_is_dropped_as_in_sahi():
    # d (IoS 0.6 with a) and b (IoS 0.6 with a) are both taken by a; a grows by d to 140 px2,
    # after which b (IoS 60 / 140 with the grown box) fails the re-check and is dropped
    a, d, b = [0.0, 0.0, 10.0, 10.0], [-4.0, 0.0, 6.0, 10.0], [4.0, 0.0, 24.0, 10.0]
    dets = _dets([a, d, b], [0.9, 0.8, 0.7])
    assert greedy_nmm_groups(dets.boxes.numpy(), dets.scores.numpy(), "ios", 0.5) == {0: [1, 2]}
    merged = merge_detections(dets)
    assert merged.boxes.tolist() == [[-4.0, 0.0, 10.0, 10.0]]
    assert merged.scores.tolist() == pytest.approx([0.9])


def test_empty_and_unknown_method():
    empty = Instances.empty(with_scores=True)
    assert len(merge_detections(empty)) == 0
    with pytest.raises(ValueError, match="merge method"):
        merge_detections(empty, method="wbf")
