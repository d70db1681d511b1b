"""Contrastive denoising: query shapes, the attention mask, the pairs of the positive queries
and the noise bounds of positives and negatives."""

import torch
from plugdet_detr.denoising import contrastive_denoising, denoising_attn_mask, inverse_sigmoid
from plugdet_detr.outputs import DetrTargets
from torch import nn
from torchvision.ops import box_convert

NUM_CLASSES, NUM_QUERIES, DIM = 4, 10, 8


def targets():
    boxes = [torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.6, 0.5, 0.4, 0.2], [0.5, 0.5, 0.3, 0.6]]),
             torch.zeros(0, 4), torch.tensor([[0.2, 0.7, 0.1, 0.2]])]
    labels = [torch.tensor([1, 3, 0]), torch.zeros(0, dtype=torch.long), torch.tensor([2])]
    return DetrTargets(labels=labels, boxes=boxes)


def build(num_denoising=10, **noise):
    torch.manual_seed(0)
    embed = nn.Embedding(NUM_CLASSES + 1, DIM, padding_idx=NUM_CLASSES)
    return contrastive_denoising(targets(), NUM_CLASSES, NUM_QUERIES, embed, num_denoising,
                                 **noise)


def test_queries_and_groups_have_the_documented_shapes():
    dn = build(num_denoising=10)
    groups, most = 10 // 3, 3
    num_dn = groups * 2 * most
    assert dn.groups.num_groups == groups and dn.groups.num_queries == num_dn
    assert dn.content.shape == (3, num_dn, DIM) and dn.boxes_unact.shape == (3, num_dn, 4)
    assert dn.attn_mask.shape == (num_dn + NUM_QUERIES,) * 2
    assert [len(q) for q in dn.groups.positive_queries] == [groups * 3, 0, groups * 1]
    # image 0: positives are the first 3 queries of each group of 6, in group order
    assert dn.groups.positive_queries[0].tolist() == [0, 1, 2, 6, 7, 8, 12, 13, 14]
    assert dn.groups.positive_targets[0].tolist() == [0, 1, 2] * groups
    assert dn.groups.positive_queries[2].tolist() == [0, 6, 12]
    # padding queries (image 1 has no boxes) carry the padding embedding: zeros
    assert torch.equal(dn.content[1], torch.zeros(num_dn, DIM))


def test_attention_mask_separates_groups_and_hides_them_from_matching_queries():
    groups, size, queries = 3, 4, 5
    mask = denoising_attn_mask(groups, size, queries)
    num_dn = groups * size
    for row in range(num_dn + queries):
        for col in range(num_dn + queries):
            if row >= num_dn:  # a matching query sees only matching queries
                blocked = col < num_dn
            elif col >= num_dn:  # a denoising query sees the matching queries
                blocked = False
            else:  # and its own group only
                blocked = row // size != col // size
            assert bool(mask[row, col]) == blocked, (row, col)


def test_a_batch_without_boxes_gets_padding_queries_and_no_pairs():
    embed = nn.Embedding(NUM_CLASSES + 1, DIM, padding_idx=NUM_CLASSES)
    empty = DetrTargets(labels=[torch.zeros(0, dtype=torch.long)] * 2,
                        boxes=[torch.zeros(0, 4)] * 2)
    dn = contrastive_denoising(empty, NUM_CLASSES, NUM_QUERIES, embed)
    assert (dn.groups.num_groups, dn.groups.num_queries) == (1, 2)
    assert [len(q) for q in dn.groups.positive_queries] == [0, 0]
    assert torch.equal(dn.content, torch.zeros(2, 2, DIM))  # the padding row
    assert torch.isfinite(dn.boxes_unact).all()
    assert dn.attn_mask.shape == (2 + NUM_QUERIES,) * 2
    assert contrastive_denoising(targets(), NUM_CLASSES, NUM_QUERIES, embed, 0) is None


def test_positive_boxes_stay_within_the_noise_bound_and_negatives_beyond_it():
    scale = 1.0
    gt = targets()
    checked = 0
    for seed in range(5):
        torch.manual_seed(seed)
        embed = nn.Embedding(NUM_CLASSES + 1, DIM, padding_idx=NUM_CLASSES)
        dn = contrastive_denoising(gt, NUM_CLASSES, NUM_QUERIES, embed, 30,
                                   label_noise_ratio=0.0, box_noise_scale=scale)
        boxes = box_convert(dn.boxes_unact.sigmoid(), "cxcywh", "xyxy")
        most, groups = 3, dn.groups.num_groups
        for image in (0, 2):
            gt_xyxy = box_convert(gt.boxes[image], "cxcywh", "xyxy")
            half = (gt.boxes[image][:, 2:] / 2).tile(1, 2) * scale
            for group in range(groups):
                start = group * 2 * most
                for box in range(len(gt_xyxy)):
                    moved = (boxes[image, start + box] - gt_xyxy[box]).abs()
                    assert (moved <= half[box] + 1e-5).all()  # positive: < half a side
                    negative = boxes[image, start + most + box]
                    # corners clipped to the image, or crossed over (a width or height below
                    # 0 is clamped by the logit), do not keep their noise
                    unclipped = (negative > 1e-4) & (negative < 1 - 1e-4)
                    size = (negative[2:] - negative[:2]).tile(2)
                    kept = unclipped & (size > 1e-3)
                    moved = (negative - gt_xyxy[box]).abs()
                    assert (moved[kept] >= half[box][kept] - 1e-5).all()
                    checked += int(kept.sum())
        # labels are not noised with label_noise_ratio 0: the positives embed their gt class
        expected = embed(gt.labels[0])
        torch.testing.assert_close(dn.content[0, 6:9], expected)
    assert checked > 100  # most negative corners keep their noise


def test_inverse_sigmoid_inverts_the_sigmoid_inside_its_clamp():
    x = torch.tensor([0.01, 0.3, 0.5, 0.9])
    torch.testing.assert_close(inverse_sigmoid(x).sigmoid(), x)
    assert torch.isfinite(inverse_sigmoid(torch.tensor([0.0, 1.0]))).all()
