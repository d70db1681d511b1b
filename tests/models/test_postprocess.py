import torch
from torchvision.ops import batched_nms

from core.models.postprocess import MultiClassNMS
from core.structures import DetSample, Instances

NUM_CLASSES = 3


def per_image_reference(level_scores, level_boxes, nms: MultiClassNMS, image):
    """Straightforward per-image, per-level selection as torchvision's RetinaNet does it."""
    boxes, scores, labels = [], [], []
    for s, b in zip(level_scores, level_boxes, strict=True):
        flat = s[image].flatten()
        keep = torch.where(flat > nms.score_thr)[0]
        top, order = flat[keep].topk(min(nms.nms_pre, len(keep)))
        idx = keep[order]
        boxes.append(b[image][idx // NUM_CLASSES])
        scores.append(top)
        labels.append(idx % NUM_CLASSES)
    boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
    keep = batched_nms(boxes, scores, labels, nms.iou_threshold)[: nms.max_per_img]
    return boxes[keep], scores[keep], labels[keep]


def test_batched_selection_equals_per_image_loop():
    generator = torch.Generator().manual_seed(0)
    sizes = [300, 60]
    level_scores = [torch.rand(3, n, NUM_CLASSES, generator=generator) for n in sizes]
    level_boxes = []
    for n in sizes:
        xy = torch.rand(3, n, 2, generator=generator) * 100
        level_boxes.append(
            torch.cat([xy, xy + 5 + torch.rand(3, n, 2, generator=generator) * 40], -1)
        )
    nms = MultiClassNMS(score_thr=0.3, nms_pre=100, iou_threshold=0.5, max_per_img=40)
    candidates = nms.select(level_scores)
    all_boxes = torch.cat(level_boxes, dim=1)
    boxes = all_boxes.gather(1, candidates.prior_inds[..., None].expand(-1, -1, 4))
    results = nms(boxes, candidates)
    assert len(results) == 3
    for image, result in enumerate(results):
        want_boxes, want_scores, want_labels = per_image_reference(
            level_scores, level_boxes, nms, image
        )
        assert len(result) == len(want_boxes) == 40
        assert torch.equal(result.boxes, want_boxes)
        assert torch.equal(result.scores, want_scores)
        assert torch.equal(result.labels, want_labels)


def test_images_without_candidates_get_empty_results():
    scores = [torch.zeros(2, 10, NUM_CLASSES)]
    scores[0][1, 3, 2] = 0.9
    nms = MultiClassNMS(score_thr=0.05)
    candidates = nms.select(scores)
    results = nms(
        torch.tensor([[0.0, 0.0, 4.0, 4.0]]).expand(2, candidates.scores.shape[1], 4), candidates
    )
    assert len(results[0]) == 0 and results[1].labels.tolist() == [2]


def test_detections_rescaled_to_original():
    sample = DetSample(ori_shape=(50, 100), img_shape=(100, 150), scale_factor=(1.5, 2.0))
    instances = Instances(
        torch.tensor([[15.0, 20.0, 150.0, 99.0]]), torch.tensor([0]), torch.tensor([0.5])
    )
    out = sample.instances_to_original(instances, clip=True)
    torch.testing.assert_close(out.boxes, torch.tensor([[10.0, 10.0, 100.0, 49.5]]))


def test_nms_with_indices_names_the_kept_candidates():
    """Each detection is the candidate its index names (box, score, label); an image without
    detections gets an empty index; the detections equal ``__call__``'s."""
    generator = torch.Generator().manual_seed(1)
    scores = [torch.rand(3, 200, NUM_CLASSES, generator=generator)]
    scores[0][2] = 0.0
    xy = torch.rand(3, 200, 2, generator=generator) * 100
    all_boxes = torch.cat([xy, xy + 5 + torch.rand(3, 200, 2, generator=generator) * 40], -1)
    nms = MultiClassNMS(score_thr=0.3, nms_pre=100, iou_threshold=0.5, max_per_img=30)
    candidates = nms.select(scores)
    boxes = all_boxes.gather(1, candidates.prior_inds[..., None].expand(-1, -1, 4))
    results, indices = nms.nms_with_indices(boxes, candidates)
    assert [len(r) for r in results] == [len(i) for i in indices] == [30, 30, 0]
    for image, (result, index, plain) in enumerate(
        zip(results, indices, nms(boxes, candidates), strict=True)
    ):
        assert bool(candidates.valid[image, index].all())
        assert torch.equal(boxes[image, index], result.boxes)
        assert torch.equal(candidates.scores[image, index], result.scores)
        assert torch.equal(candidates.labels[image, index], result.labels)
        prior_boxes = all_boxes[image, candidates.prior_inds[image, index]]
        assert torch.equal(prior_boxes, result.boxes)
        for field in ("boxes", "scores", "labels"):
            assert torch.equal(getattr(plain, field), getattr(result, field))
