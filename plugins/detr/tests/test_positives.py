"""RT-DETR's positives for the positive-samples hook and ``assigner_vis``: the anchors the
Hungarian-matched queries were selected from, one per gt box, on the encoder levels' grids."""

import json
from importlib import resources

import torch
from assigner_vis.cli import SUMMARY_FILE, main

from core.contracts import GTBatch
from core.data.datasets.shapes import CACHE_ENV
from core.models.heads.assign_stats import GT_WITHOUT_POS, POS_PER_GT_MEAN, assignment_stats
from core.plugins import get_registries
from core.structures import DetSample, Instances
from core.visualization.positives import collect_positives

NUM_CLASSES, SIZE = 3, 64
STRIDES = (8, 16, 32)
GT_BOXES = [
    torch.tensor([[8.0, 10, 40, 50], [30, 20, 60, 62]]),
    torch.tensor([[2.0, 2, 20, 18], [24, 30, 50, 60], [40, 4, 62, 28]]),
]


def tiny_model(num_queries=20):
    torch.manual_seed(0)
    cfg = {
        "type": "RTDETR",
        "backbone": {"type": "ResNetVd", "depth": 18, "base_channels": 8},
        "neck": {"type": "HybridEncoder", "in_channels": [16, 32, 64], "hidden_dim": 16,
                 "num_heads": 2, "ffn_dim": 32, "expansion": 0.5},
        "head": {"type": "RTDETRHead", "num_classes": NUM_CLASSES, "in_channels": [16, 16, 16],
                 "hidden_dim": 16, "num_queries": num_queries, "num_layers": 2,
                 "num_heads": 2, "ffn_dim": 32, "num_denoising": 10},
    }
    return get_registries().build("detector", cfg, path="model")


def samples_and_images():
    samples = [DetSample(ori_shape=(SIZE, SIZE), img_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                         scale_factor=(1.0, 1.0),
                         gt=Instances(boxes, torch.arange(len(boxes)) % NUM_CLASSES))
               for boxes in GT_BOXES]
    images = torch.rand(len(samples), 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return samples, images


def test_one_positive_per_gt_box_on_the_selection_anchors():
    model = tiny_model().train()
    samples, images = samples_and_images()
    positives = collect_positives(model, images, samples)
    assert model.head.decoder.training  # the mode is restored
    assert len(positives) == len(samples)
    for image, sample in zip(positives, samples, strict=True):
        gt_inds = torch.cat([level.gt_inds for level in image.levels])
        assert sorted(gt_inds.tolist()) == list(range(len(sample.gt)))
        for level in image.levels:
            stride = STRIDES[level.level]
            assert level.stride == (stride, stride)
            assert level.priors_per_cell == 1 and not level.point_priors
            cols = SIZE // stride
            cells = torch.stack([level.prior_inds % cols, level.prior_inds // cols], -1)
            torch.testing.assert_close(level.points, (cells.float() + 0.5) * stride)
            side = 0.05 * 2 ** level.level * SIZE
            torch.testing.assert_close(level.boxes[:, 2:] - level.boxes[:, :2],
                                       torch.full((len(cells), 2), side))


def test_positives_are_the_anchors_of_the_matched_queries():
    model = tiny_model().eval()
    samples, images = samples_and_images()
    feats = model.extract_feat(images)
    with torch.no_grad():
        assignments = model.head.get_assignments(feats, samples)
        outputs = model.head.decoder(feats)
    assert [len(p) for p in assignments.priors] == [(SIZE // s) ** 2 for s in STRIDES]
    sampling = assignments.sample_result
    assert sampling.pos_mask.shape == (2, sum(len(p) for p in assignments.priors))
    assert sampling.pos_mask.sum(1).tolist() == [len(s.gt) for s in samples]
    assert not (sampling.pos_mask & sampling.neg_mask).any()
    for image in range(len(samples)):
        selected = set(outputs.query_inds[image].tolist())
        positives = sampling.pos_mask[image].nonzero().flatten().tolist()
        assert set(positives) <= selected
        labels = sampling.assign_result.labels[image, positives]
        gt = sampling.assign_result.gt_inds[image, positives] - 1
        assert torch.equal(labels, samples[image].gt.labels[gt])
    stats = assignment_stats(sampling, GTBatch.from_samples(samples, "cpu"),
                             sampling.priors.level_sizes)
    assert stats[POS_PER_GT_MEAN] == 1 and stats[GT_WITHOUT_POS] == 0


def test_fewer_queries_than_gt_boxes_give_one_positive_per_query():
    model = tiny_model(num_queries=2).eval()
    samples, images = samples_and_images()
    positives = collect_positives(model, images, samples)
    for image, sample in zip(positives, samples, strict=True):
        gt_inds = torch.cat([level.gt_inds for level in image.levels]).tolist()
        assert len(gt_inds) == min(2, len(sample.gt)) == len(set(gt_inds))
        assert all(0 <= index < len(sample.gt) for index in gt_inds)


def test_assigner_vis_writes_the_positives_of_the_demo(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shapes"))
    config = resources.files("plugdet_detr") / "configs" / "rtdetr_r18vd_demo_shapes.toml"
    out = tmp_path / "out"
    assert main([str(config), "--out", str(out), "--n", "2",
                 "--set", "train_dataloader.dataset.num_images=2"]) == 0
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert len(summary) == 2
    for image in summary:
        gt_inds = [i for level in image["levels"] for i in level["gt_inds"]]
        assert sorted(gt_inds) == list(range(image["num_gt"])) and gt_inds
