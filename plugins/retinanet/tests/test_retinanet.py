from importlib import resources

import pytest
import torch

from core.config import load_config
from core.engine.class_count import resolve_num_classes
from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

NUM_CLASSES = 3
SMALL_MODEL = {
    "type": "RetinaNet",
    "backbone": {"type": "ResNet", "depth": 18, "base_channels": 8, "out_indices": [1, 2, 3]},
    "neck": {
        "type": "FPN",
        "in_channels": [16, 32, 64],
        "out_channels": 16,
        "num_outs": 4,
        "add_extra_convs": "on_input",
    },
    "head": {
        "type": "RetinaHead",
        "num_classes": NUM_CLASSES,
        "in_channels": 16,
        "feat_channels": 16,
        "stacked_convs": 1,
        "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16, 32, 64]},
    },
}


def build(cfg=SMALL_MODEL):
    torch.manual_seed(0)
    return get_registries().build("detector", cfg, path="model")


def batch():
    gts = [
        Instances(
            torch.tensor([[10.0, 10.0, 60.0, 70.0], [50.0, 40.0, 120.0, 100.0]]),
            torch.tensor([0, 2]),
        ),
        Instances(torch.tensor([[30.0, 20.0, 90.0, 110.0]]), torch.tensor([1])),
    ]
    samples = [
        DetSample(
            ori_shape=(64, 80),
            img_shape=(128, 160),
            pad_shape=(128, 160),
            scale_factor=(2.0, 2.0),
            gt=gts[0],
        ),
        DetSample(ori_shape=(120, 150), img_shape=(120, 150), pad_shape=(128, 160), gt=gts[1]),
    ]
    return DetBatch(
        torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(1)), samples
    )


def test_loss_reports_num_pos_and_backpropagates():
    model = build().train()
    losses = model.loss(batch())
    stats = {"assign/pos_per_gt_mean", "assign/pos_per_gt_min", "assign/gt_without_pos",
             *(f"assign/num_pos_level{level}" for level in range(4))}
    assert set(losses) == {"loss_cls", "loss_bbox", "num_pos", *stats}
    levels = sum(losses[f"assign/num_pos_level{level}"] for level in range(4))
    assert levels == losses["num_pos"]
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    (losses["loss_cls"] + losses["loss_bbox"]).backward()
    assert model.head.retina_cls.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    assert losses["num_pos"] > 3  # at least one prior per gt


def test_predict_returns_instances_in_original_coordinates():
    model = build().eval()
    with torch.no_grad():  # a low threshold so that the untrained model returns boxes
        model.head.postprocess.score_thr = 0.0
        results = model.predict(batch())
    assert len(results) == 2
    first, second = results
    assert len(first) == model.head.postprocess.max_per_img
    assert first.boxes.dtype == torch.float32 and first.labels.dtype == torch.int64
    assert (first.scores[:-1] >= first.scores[1:]).all()
    assert ((first.labels >= 0) & (first.labels < NUM_CLASSES)).all()
    assert first.boxes[:, 2].max() <= 80 and first.boxes[:, 3].max() <= 64  # ori (64, 80)
    assert second.boxes[:, 2].max() <= 150 and second.boxes[:, 3].max() <= 120


def test_extract_feat_gives_neck_levels():
    feats = build().eval().extract_feat(torch.zeros(1, 3, 128, 160))
    assert [tuple(f.shape) for f in feats] == [
        (1, 16, 16, 20),
        (1, 16, 8, 10),
        (1, 16, 4, 5),
        (1, 16, 2, 3),
    ]


def test_get_assignments_lists_positive_priors_per_level():
    model = build()
    samples = batch().samples
    sizes = [(16, 20), (8, 10), (4, 5), (2, 3)]
    feats = model.extract_feat(torch.zeros(2, 3, 128, 160))
    result = model.head.get_assignments(feats, samples)
    assert [len(p) for p in result.priors] == [h * w * 9 for h, w in sizes]
    assert len(result.pos_inds) == 2 and len(result.pos_inds[0]) == 4
    for image, sample in enumerate(samples):
        matched = torch.cat(result.pos_gt_inds[image])
        assert set(matched.tolist()) == set(range(len(sample.gt)))  # every gt has a positive
        for level, inds in enumerate(result.pos_inds[image]):
            assert (inds < len(result.priors[level])).all()


def test_nested_config_errors_name_the_path():
    bad = {
        **SMALL_MODEL,
        "head": {
            **SMALL_MODEL["head"],
            "assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": "high"},
        },
    }
    with pytest.raises(ConfigError, match=r"model\.head\.assigner\.pos_iou_thr: expected float"):
        build(bad)
    proposals = {
        **SMALL_MODEL,
        "head": {
            **SMALL_MODEL["head"],
            "sampler": {"type": "RandomSampler", "add_gt_as_proposals": True},
        },
    }
    with pytest.raises(ConfigError, match="add_gt_as_proposals"):
        build(proposals)


@pytest.mark.parametrize(
    "name",
    [
        "retinanet_r50_fpn_1x_coco.toml",
        "retinanet_r18_fpn_1x_raccoon.toml",
        "retinanet_tinynet_fpn_scratch_raccoon.toml",
        "retinanet_tinynet_fpn_demo_shapes.toml",
        "retinanet_r50_fpn_atss_1x_coco.toml",
        "retinanet_tinynet_fpn_atss_demo_shapes.toml",
        "retinanet_tinynet_fpn_points_simota_demo_shapes.toml",
        "retinanet_tinynet_fpn_points_dsl_demo_shapes.toml",
    ],
)
def test_shipped_configs_build(name):
    cfg = resolve_num_classes(load_config(str(resources.files("plugdet_retinanet") / "configs"
                                              / name)))  # the count follows the dataset
    cfg["model"]["backbone"].pop("init_cfg", None)  # no weights download in tests
    model = get_registries().build("detector", cfg["model"], path="model")
    assert (
        model.head.num_classes
        == {"coco": 80, "raccoon": 1, "shapes": 5}[name.rsplit("_", 1)[1].removesuffix(".toml")]
    )
    assigner = type(model.head.assigner).__name__
    by_name = {"atss": "ATSSAssigner", "simota": "SimOTAAssigner",
               "dsl": "DynamicSoftLabelAssigner"}
    expected = next((v for k, v in by_name.items() if f"_{k}_" in name), "MaxIoUAssigner")
    assert assigner == expected


def test_decoded_box_regression_with_giou_loss():
    cfg = {
        **SMALL_MODEL,
        "head": {
            **SMALL_MODEL["head"],
            "reg_decoded_bbox": True,
            "loss_bbox": {"type": "GIoULoss", "loss_weight": 2.0},
        },
    }
    model = build(cfg).train()
    losses = model.loss(batch())
    assert 0 < float(losses["loss_bbox"].detach()) <= 2 * 2.0  # GIoU loss is in [0, 2]
    losses["loss_bbox"].backward()
    assert model.head.retina_reg.weight.grad.abs().sum() > 0


def test_coco_1x_config_is_the_classic_recipe():
    cfg = load_config(
        str(resources.files("plugdet_retinanet") / "configs" / "retinanet_r50_fpn_1x_coco.toml")
    )
    assert cfg["optim"]["type"] == "SGD"
    assert (cfg["optim"]["lr"], cfg["optim"]["momentum"], cfg["optim"]["weight_decay"]) == (
        0.01,
        0.9,
        0.0001,
    )
    warmup, steps = cfg["param_schedulers"]
    assert (warmup["type"], warmup["by_epoch"], warmup["end"]) == ("LinearWarmup", False, 500)
    assert (steps["type"], steps["milestones"]) == ("MultiStep", [8, 11])
    assert cfg["train"]["max_epochs"] == 12
    resize = cfg["train_dataloader"]["dataset"]["pipeline"][1]
    assert (resize["type"], sorted(resize["scale"])) == ("Resize", [800, 1333])
    assert cfg["model"]["backbone"]["init_cfg"]["checkpoint"] == "torchvision://resnet50"


def test_channels_last_gives_the_same_results():
    default = build().train()
    fast = build({**SMALL_MODEL, "channels_last": True}).train()
    fast.load_state_dict(default.state_dict())
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    data = batch()
    expected, got = default.loss(data), fast.loss(data)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("min_bbox_size, empty_kept", [(None, True), (0.0, False)])
def test_min_bbox_size_drops_boxes_emptied_by_clipping(min_bbox_size, empty_kept):
    """A 64 x 64 image padded to 128 x 160: anchors far beyond it are clipped to empty boxes,
    which only ``min_bbox_size`` drops (MMDetection's 0)."""
    keep_all = {"type": "MultiClassNMS", "nms_pre": 10**5, "max_per_img": 10**5}
    cfg = {**SMALL_MODEL, "head": {**SMALL_MODEL["head"], "min_bbox_size": min_bbox_size,
                                   "postprocess": keep_all}}
    model = build(cfg).eval()
    with torch.no_grad():
        model.head.retina_cls.bias.fill_(2.0)  # every score above the threshold
        model.head.retina_reg.weight.zero_()
        model.head.retina_reg.bias.zero_()  # the boxes are the anchors
    sample = DetSample(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(128, 160))
    (detections,) = model.head.predict(model.extract_feat(batch().images[:1]), [sample])
    sizes = detections.boxes[:, 2:] - detections.boxes[:, :2]
    assert len(detections) > 0
    assert bool((sizes <= 0).any()) is empty_kept
