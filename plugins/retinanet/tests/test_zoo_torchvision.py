"""torchvision's COCO RetinaNets, saved by torchvision and loaded through their weight
converters into the models the shipped configs build, give torchvision's outputs.

Each model is torchvision's own (``weights=None, weights_backbone=None``: torchvision's random
initialisation, 91 class rows as the COCO models), its ``state_dict`` saved with
``torch.save`` as torchvision's files are, read with :func:`core.api.read_checkpoint` and
converted by the converter ``load_from`` picks. Both models then get the same batched
tensors (torchvision's resize/normalise transform bypassed: ``TorchvisionRunner``): the raw
head outputs (class logits without torchvision's background column, box deltas) and the
detections after post-processing are compared.

Two changes to torchvision's random weights make the comparison meaningful: its background
row is silenced (in trained weights it is never a target; plugdet has no such row), and the
class bias is raised so that scores spread around the 0.05 threshold (at torchvision's prior
of 0.01 nothing would be detected).
"""

from pathlib import Path

import pytest
import torch
from plugdet_retinanet.key_maps import TORCHVISION_LEGACY_KEYS
from plugdet_retinanet.torchvision_compat import TorchvisionRunner
from torchvision.models.detection import (
    RetinaNet,
    retinanet_resnet50_fpn,
    retinanet_resnet50_fpn_v2,
)

from core.api import (
    COCO_CLASSES,
    TORCHVISION_COCO_CATEGORIES,
    fit_to_model,
    flatten_levels,
    load_config,
    read_checkpoint,
)
from core.plugins import get_registries
from core.structures import DetSample
from core.weights.loading import convert_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pretrained"
TV_CLASSES = len(TORCHVISION_COCO_CATEGORIES)  # 91, background first
PADDED = (256, 384)  # a multiple of the largest stride (128)
IMAGE_SIZES = [(256, 320), (224, 300)]
#: Class bias that puts some hundred scores per image above 0.05 on these features.
CLS_BIAS = -2.0
BACKGROUND_LOGIT = -1e4  # sigmoid 0 in float32
OUTPUT_TOL = 1e-4
BOX_TOL = 1e-3
SCORE_TOL = 1e-4

MODELS = {
    "retinanet_resnet50_fpn": (retinanet_resnet50_fpn, "retinanet_r50_fpn_torchvision_coco"),
    "retinanet_resnet50_fpn_v2": (retinanet_resnet50_fpn_v2,
                                  "retinanet_r50_fpn_v2_torchvision_coco"),
}


def torchvision_model(name: str) -> RetinaNet:
    torch.manual_seed(0)
    model: RetinaNet = MODELS[name][0](weights=None, weights_backbone=None)
    logits = model.head.classification_head.cls_logits
    with torch.no_grad():
        logits.bias.fill_(CLS_BIAS)
        logits.weight[::TV_CLASSES] = 0.0
        logits.bias[::TV_CLASSES] = BACKGROUND_LOGIT
    return model.eval()


def published_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layout of torchvision's published v1 file: FrozenBatchNorm2d (no
    ``num_batches_tracked``) and torchvision < 0.13 subnet names (``conv.{2i}.weight``)."""
    old_names = {new: old for old, new in TORCHVISION_LEGACY_KEYS.items()}
    return {old_names.get(key, key): value for key, value in state.items()
            if not key.endswith("num_batches_tracked")}


def plugdet_model(config: str, num_classes: int):
    cfg = load_config(str(CONFIGS / f"{config}.toml"))["model"]
    cfg["head"]["num_classes"] = num_classes
    # torchvision's memory format (NCHW): the same float operations, so tight tolerances
    cfg["channels_last"] = False
    return get_registries().build("detector", cfg, path="model").eval()


def saved_checkpoint(tmp_path: Path, state: dict[str, torch.Tensor]):
    path = tmp_path / "retinanet.pth"
    torch.save(state, path)
    return read_checkpoint(path)


def batch():
    images = torch.randn(len(IMAGE_SIZES), 3, *PADDED,
                         generator=torch.Generator().manual_seed(1))
    samples = [DetSample(img_shape=size, ori_shape=size, pad_shape=PADDED)
               for size in IMAGE_SIZES]
    return images, samples


@pytest.mark.parametrize("name, layout", [
    ("retinanet_resnet50_fpn", "current"),
    ("retinanet_resnet50_fpn", "published"),
    ("retinanet_resnet50_fpn_v2", "current"),
])
def test_same_outputs_and_detections_as_torchvision(name, layout, tmp_path):
    tv_model = torchvision_model(name)
    state = tv_model.state_dict()
    checkpoint = saved_checkpoint(tmp_path, published_layout(state) if layout == "published"
                                  else state)
    assert (checkpoint.source, checkpoint.architecture) == ("torchvision", name)
    ours = plugdet_model(MODELS[name][1], TV_CLASSES - 1)
    converted, converter = convert_checkpoint(checkpoint, ours)
    assert converter == f"torchvision/{name}"
    ours.load_state_dict(converted.state, strict=True)

    runner = TorchvisionRunner(tv_model)
    images, samples = batch()
    with torch.no_grad():
        tv_feats = runner.features(images)
        expected = runner.head_outputs(tv_feats)
        expected_dets = runner.predict(images, IMAGE_SIZES, tv_feats)
        feats = ours.extract_feat(images)
        cls_scores, bbox_preds = ours.head(feats)
        got_dets = ours.head.predict(feats, samples)
    torch.testing.assert_close(flatten_levels(cls_scores, TV_CLASSES - 1),
                               expected["cls_logits"][..., 1:], rtol=0, atol=OUTPUT_TOL)
    torch.testing.assert_close(flatten_levels(bbox_preds, 4), expected["bbox_regression"],
                               rtol=0, atol=OUTPUT_TOL)
    for theirs, mine in zip(expected_dets, got_dets, strict=True):
        assert 50 < len(theirs["boxes"]) <= 300, "the test needs a long detection list"
        assert len(mine) == len(theirs["boxes"])
        torch.testing.assert_close(mine.labels, theirs["labels"] - 1, rtol=0, atol=0)
        torch.testing.assert_close(mine.scores, theirs["scores"], rtol=0, atol=SCORE_TOL)
        torch.testing.assert_close(mine.boxes, theirs["boxes"], rtol=0, atol=BOX_TOL)


def test_coco_rows_kept_by_name_for_the_80_classes(tmp_path):
    """Fitted to COCO's 80 classes (the shipped config's dataset), each class takes its
    torchvision row bit for bit; the N/A and background rows are dropped."""
    tv_model = torchvision_model("retinanet_resnet50_fpn")
    torch.nn.init.normal_(tv_model.head.classification_head.cls_logits.bias)
    checkpoint = saved_checkpoint(tmp_path, tv_model.state_dict())
    ours = plugdet_model("retinanet_r50_fpn_torchvision_coco", len(COCO_CLASSES))
    converted, _ = convert_checkpoint(checkpoint, ours)
    report = fit_to_model(converted, ours, COCO_CLASSES)
    assert len(report.kept) == len(COCO_CLASSES) and not report.reinitialised
    num_anchors = ours.head.num_base_priors
    theirs = tv_model.head.classification_head.cls_logits
    rows = [TORCHVISION_COCO_CATEGORIES.index(name) for name in COCO_CLASSES]
    for key, tv_value in (("weight", theirs.weight), ("bias", theirs.bias)):
        expected = tv_value.detach().view(num_anchors, TV_CLASSES, *tv_value.shape[1:])
        got = getattr(ours.head.retina_cls, key).detach().view(
            num_anchors, len(COCO_CLASSES), *tv_value.shape[1:])
        assert torch.equal(got, expected[:, rows])


def test_raccoon_fine_tuning_starts_from_the_bear_rows(tmp_path):
    """The fine-tuning config: every layer from the COCO checkpoint, the raccoon rows from
    COCO's "bear" rows (its load_from_class_map)."""
    cfg = load_config(str(CONFIGS / "retinanet_r50_fpn_v2_torchvision_raccoon.toml"))
    assert cfg["load_from"] == "torchvision://retinanet_resnet50_fpn_v2"
    tv_model = torchvision_model("retinanet_resnet50_fpn_v2")
    checkpoint = saved_checkpoint(tmp_path, tv_model.state_dict())
    cfg["model"]["head"]["num_classes"] = 1
    ours = get_registries().build("detector", cfg["model"], path="model")
    converted, _ = convert_checkpoint(checkpoint, ours)
    report = fit_to_model(converted, ours, ("raccoon",), cfg["load_from_class_map"])
    assert report.kept == (("raccoon", "bear"),)
    bear = TORCHVISION_COCO_CATEGORIES.index("bear")
    theirs = tv_model.head.classification_head.cls_logits.weight.detach()
    assert torch.equal(ours.head.retina_cls.weight.detach(), theirs[bear::TV_CLASSES])
    assert torch.equal(ours.backbone.conv1.weight, tv_model.backbone.body.conv1.weight)
