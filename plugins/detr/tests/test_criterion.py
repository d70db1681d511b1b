"""RT-DETR's criterion: per-layer matching, denoising pairs, empty batches and DDP."""

import multiprocessing

import pytest
import torch
from plugdet_detr.criterion import RTDETRCriterion, box_normaliser
from plugdet_detr.outputs import DenoisingGroups, DetrOutputs, DetrTargets

from core.api import ConfigError

NUM_CLASSES = 4
BOX_KEYS = ("loss_bbox", "loss_giou")


def _targets():
    return DetrTargets(
        labels=[torch.tensor([2, 0]), torch.tensor([3])],
        boxes=[torch.tensor([[0.40, 0.50, 0.20, 0.30], [0.60, 0.45, 0.25, 0.20]]),
               torch.tensor([[0.50, 0.50, 0.30, 0.40]])])


def _perfect_set(slots, targets, num_queries, generator):
    """``(B, Q, C)`` logits and ``(B, Q, 4)`` boxes where query ``slots[b][i]`` predicts gt
    ``i`` of image ``b`` exactly with a confident class; the other queries are small boxes in
    a corner, confidently background."""
    num_images = len(targets.labels)
    logits = torch.full((num_images, num_queries, NUM_CLASSES), -12.0)
    boxes = torch.cat([torch.rand(num_images, num_queries, 2, generator=generator) * 0.05 + 0.03,
                       torch.full((num_images, num_queries, 2), 0.04)], dim=-1)
    for image, image_slots in enumerate(slots):
        for gt, query in enumerate(image_slots):
            logits[image, query, targets.labels[image][gt]] = 12.0
            boxes[image, query] = targets.boxes[image][gt]
    return logits, boxes


def test_each_layer_and_the_encoder_are_matched_on_their_own():
    generator = torch.Generator().manual_seed(0)
    targets = _targets()
    layer_slots = [[[1, 4], [2]], [[0, 5], [5]], [[3, 2], [0]]]
    sets = [_perfect_set(slots, targets, 6, generator) for slots in layer_slots]
    enc_logits, enc_boxes = _perfect_set([[5, 0], [3]], targets, 6, generator)
    outputs = DetrOutputs(torch.stack([s[0] for s in sets]), torch.stack([s[1] for s in sets]),
                          enc_logits, enc_boxes)
    losses = RTDETRCriterion(NUM_CLASSES)(outputs, targets)
    assert sorted(losses) == sorted(f"{name}{suffix}" for name in ("loss_vfl", *BOX_KEYS)
                                    for suffix in ("", ".d0", ".d1", ".enc"))
    for key, value in losses.items():
        bound = 1e-4 if key.startswith("loss_vfl") else 1e-6
        assert 0 <= float(value) < bound, key


def test_box_losses_grow_when_the_last_layer_misses():
    generator = torch.Generator().manual_seed(1)
    targets = _targets()
    logits, boxes = _perfect_set([[1, 4], [2]], targets, 6, generator)
    boxes[0, 1, :2] += 0.05
    outputs = DetrOutputs(logits[None], boxes[None], logits, boxes)
    losses = RTDETRCriterion(NUM_CLASSES)(outputs, targets)
    # 5 * |0.05| * 2 coordinates over 3 boxes
    assert float(losses["loss_bbox"]) == pytest.approx(5 * 0.1 / 3, rel=1e-4)
    assert float(losses["loss_giou"]) > 0.01


def _denoising_outputs(targets, generator, num_groups=2, num_layers=2):
    """Denoising queries of 2 groups: per group the positives of the image's boxes first, then
    as many negatives (padded to the batch's largest box count)."""
    max_gt = max(len(labels) for labels in targets.labels)
    num_dn = num_groups * 2 * max_gt
    queries, gts = [], []
    for labels in targets.labels:
        count = len(labels)
        queries.append(torch.cat([torch.arange(count) + group * 2 * max_gt
                                  for group in range(num_groups)]).long())
        gts.append(torch.arange(count).repeat(num_groups))
    dn = DenoisingGroups(num_dn, num_groups, queries, gts)
    num_images = len(targets.labels)
    dn_logits = torch.randn(num_layers, num_images, num_dn, NUM_CLASSES, generator=generator)
    dn_boxes = torch.rand(num_layers, num_images, num_dn, 4, generator=generator) * 0.4 + 0.2
    return dn, dn_logits, dn_boxes


def _outputs(targets, generator, num_layers=2, num_queries=5, requires_grad=False):
    def tensor(*shape, box=False):
        value = torch.rand(*shape, generator=generator) * 0.4 + 0.2 if box else torch.randn(
            *shape, generator=generator)
        return value.requires_grad_(requires_grad)

    num_images = len(targets.labels)
    dn, dn_logits, dn_boxes = _denoising_outputs(targets, generator, num_layers=num_layers)
    return DetrOutputs(
        tensor(num_layers, num_images, num_queries, NUM_CLASSES),
        tensor(num_layers, num_images, num_queries, 4, box=True),
        tensor(num_images, num_queries, NUM_CLASSES), tensor(num_images, num_queries, 4, box=True),
        dn_logits.requires_grad_(requires_grad), dn_boxes.requires_grad_(requires_grad), dn)


def _dn_losses(losses):
    return {key: float(value) for key, value in losses.items() if ".dn" in key}


def test_denoising_losses_use_the_given_pairs():
    generator = torch.Generator().manual_seed(2)
    targets = _targets()
    outputs = _outputs(targets, generator)
    assert outputs.dn is not None and outputs.dn_boxes is not None
    criterion = RTDETRCriterion(NUM_CLASSES)
    losses = criterion(outputs, targets)
    assert sorted(_dn_losses(losses)) == sorted(f"{name}.dn{layer}" for layer in (0, 1)
                                                for name in ("loss_vfl", *BOX_KEYS))
    # the L1 loss of the last layer's pairs, over 3 boxes times 2 groups
    expected = sum(float((outputs.dn_boxes[1, image, query] - targets.boxes[image][gt]).abs()
                         .sum())
                   for image in range(2)
                   for query, gt in zip(outputs.dn.positive_queries[image],
                                        outputs.dn.positive_targets[image], strict=True))
    assert float(losses["loss_bbox.dn1"]) == pytest.approx(5 * expected / 6, rel=1e-5)

    negative = outputs.dn_boxes.clone()
    negative[:, 0, 2] = torch.tensor([0.9, 0.1, 0.05, 0.05])  # a negative query of image 0
    moved = criterion(DetrOutputs(outputs.logits, outputs.boxes, outputs.enc_logits,
                                  outputs.enc_boxes, outputs.dn_logits, negative, outputs.dn),
                      targets)
    assert _dn_losses(moved) == _dn_losses(losses)

    positive = outputs.dn_boxes.clone()
    positive[:, 0, 4] = torch.tensor([0.9, 0.1, 0.05, 0.05])  # group 1's query for gt 0
    moved = criterion(DetrOutputs(outputs.logits, outputs.boxes, outputs.enc_logits,
                                  outputs.enc_boxes, outputs.dn_logits, positive, outputs.dn),
                      targets)
    for layer in (0, 1):
        for name in ("loss_vfl", *BOX_KEYS):
            assert _dn_losses(moved)[f"{name}.dn{layer}"] != _dn_losses(losses)[
                f"{name}.dn{layer}"]


def test_batch_without_boxes_gives_finite_connected_losses():
    generator = torch.Generator().manual_seed(3)
    targets = DetrTargets([torch.zeros(0, dtype=torch.long)] * 2, [torch.zeros(0, 4)] * 2)
    outputs = _outputs(targets, generator, requires_grad=True)
    assert outputs.dn is not None and outputs.dn.num_queries == 0
    losses = RTDETRCriterion(NUM_CLASSES)(outputs, targets)
    assert len(losses) == 5 * 3 and all(value.requires_grad for value in losses.values())
    total = torch.stack(list(losses.values())).sum()
    assert torch.isfinite(total)
    assert all(float(value.detach()) == 0 for key, value in losses.items()
               if key.startswith(BOX_KEYS))
    total.backward()
    for tensor in (outputs.logits, outputs.boxes, outputs.enc_logits, outputs.enc_boxes,
                   outputs.dn_logits, outputs.dn_boxes):
        assert tensor is not None and tensor.grad is not None
        assert torch.isfinite(tensor.grad).all()


def test_normaliser_counts_the_boxes_and_is_at_least_one():
    assert box_normaliser(_targets(), torch.device("cpu")) == 3.0
    empty = DetrTargets([torch.zeros(0, dtype=torch.long)], [torch.zeros(0, 4)])
    assert box_normaliser(empty, torch.device("cpu")) == 1.0


def test_refuses_unknown_weights_and_matcher_keys():
    with pytest.raises(ConfigError, match="unknown RT-DETR loss weights"):
        RTDETRCriterion(NUM_CLASSES, weights={"focal": 1.0})
    with pytest.raises(ConfigError, match="matcher"):
        RTDETRCriterion(NUM_CLASSES, matcher={"cost_class": 2.0})


def _rank_targets(rank):
    if rank == 0:
        return DetrTargets([torch.tensor([1, 2]), torch.tensor([0])],
                           [torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.2]]),
                            torch.tensor([[0.5, 0.5, 0.4, 0.4]])])
    return DetrTargets([torch.zeros(0, dtype=torch.long)] * 2, [torch.zeros(0, 4)] * 2)


def _rank_main(rank, store, queue):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    targets = _rank_targets(rank)
    outputs = _outputs(targets, torch.Generator().manual_seed(rank), requires_grad=True)
    normaliser = box_normaliser(targets, torch.device("cpu"))
    losses = RTDETRCriterion(NUM_CLASSES)(outputs, targets)
    total = torch.stack(list(losses.values())).sum()
    total.backward()
    grads_finite = bool(torch.isfinite(outputs.logits.grad).all())
    queue.put((rank, normaliser, {k: float(v.detach()) for k, v in losses.items()}, grads_finite))
    dist.destroy_process_group()


def test_two_ranks_share_the_normaliser_when_one_has_no_boxes(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    ranks = [context.Process(target=_rank_main, args=(rank, tmp_path / "store", queue))
             for rank in range(2)]
    for process in ranks:
        process.start()
    try:
        results = {rank: rest for rank, *rest in (queue.get(timeout=60) for _ in ranks)}
    finally:
        for process in ranks:
            process.join(30)
            if process.is_alive():
                process.terminate()
    assert [results[rank][0] for rank in (0, 1)] == [1.5, 1.5]  # (3 + 0) / 2 ranks
    assert all(results[rank][2] for rank in (0, 1))
    for rank in (0, 1):
        targets = _rank_targets(rank)
        outputs = _outputs(targets, torch.Generator().manual_seed(rank))
        expected = RTDETRCriterion(NUM_CLASSES).losses(outputs, targets, 1.5)
        assert results[rank][1] == pytest.approx({k: float(v) for k, v in expected.items()},
                                                 rel=1e-6)
