"""torchvision's COCO Faster R-CNNs, saved by torchvision and loaded through their weight
converters into the models the shipped configs build, give torchvision's outputs.

Each model is torchvision's own (``weights=None, weights_backbone=None``: torchvision's random
initialisation, 91 class rows with the background first as the COCO models), its
``state_dict`` saved with ``torch.save`` as torchvision's files are, read with
:func:`core.api.read_checkpoint` and converted by the converter ``load_from`` picks. Both
models then get the same batched tensors (torchvision's resize/normalise transform bypassed:
``TorchvisionRunner``) and are compared stage by stage: the RPN's raw outputs, the proposals,
the box head's raw outputs on the same proposals (background moved last, its box dropped) and
the detections after post-processing.

Three changes to torchvision's random weights make the comparison meaningful: the FPN's output
layers are scaled to unit-variance levels (a ResNet at its initial BatchNorm statistics
amplifies its input a hundredfold, which would saturate the objectness), the objectness logits
are spread (no near-ties among proposals) and the class weights scaled up (with 91 classes the
initial softmax is about 0.011 everywhere, under the 0.05 threshold).
"""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from plugdet_faster_rcnn.key_maps import TORCHVISION_LEGACY_KEYS
from plugdet_faster_rcnn.roi_extractor import rois_from_boxes
from plugdet_faster_rcnn.torchvision_compat import TorchvisionRunner
from torch import nn
from torchvision.models.detection import (
    FasterRCNN,
    fasterrcnn_resnet50_fpn,
    fasterrcnn_resnet50_fpn_v2,
)

from core.api import (
    COCO_CLASSES,
    TORCHVISION_COCO_CATEGORIES,
    fit_to_model,
    load_config,
    read_checkpoint,
)
from core.plugins import get_registries
from core.structures import DetSample
from core.weights.loading import convert_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pretrained"
TV_CLASSES = len(TORCHVISION_COCO_CATEGORIES)  # 91, background first
PADDED = (256, 384)  # a multiple of the largest stride (64)
IMAGE_SIZES = [(256, 320), (224, 300)]
OBJECTNESS_STD = 0.1
CLS_SCALE = 10.0
OUTPUT_TOL = 1e-4
BOX_TOL = 1e-3
SCORE_TOL = 1e-4
#: Proposals per image whose box head outputs are compared (the detections use all).
COMPARED_ROIS = 200

MODELS: dict[str, tuple[Callable[..., FasterRCNN], str]] = {
    "fasterrcnn_resnet50_fpn": (fasterrcnn_resnet50_fpn, "faster_rcnn_r50_fpn_torchvision_coco"),
    "fasterrcnn_resnet50_fpn_v2": (fasterrcnn_resnet50_fpn_v2,
                                   "faster_rcnn_r50_fpn_v2_torchvision_coco"),
}


def torchvision_model(name: str) -> FasterRCNN:
    torch.manual_seed(0)
    model = MODELS[name][0](weights=None, weights_backbone=None).eval()
    probe = torch.randn(1, 3, *PADDED, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        levels = list(model.backbone(probe).values())
        for block, level in zip(model.backbone.fpn.layer_blocks, levels, strict=False):
            block[-1].weight /= level.std()  # the conv (v1) or its BatchNorm (v2)
            block[-1].bias /= level.std()
        objectness = model.rpn.head.cls_logits.weight
        objectness.copy_(torch.randn(objectness.shape, generator=torch.Generator().manual_seed(2))
                         * OBJECTNESS_STD)
        model.roi_heads.box_predictor.cls_score.weight *= CLS_SCALE
    return model


def published_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layout of torchvision's published v1 file: FrozenBatchNorm2d (no
    ``num_batches_tracked``) and the torchvision < 0.13 RPN conv name."""
    old_names = {new: old for old, new in TORCHVISION_LEGACY_KEYS.items()}
    return {old_names.get(key, key): value for key, value in state.items()
            if not key.endswith("num_batches_tracked")}


def plugdet_model(config: str, num_classes: int) -> nn.Module:
    cfg = load_config(str(CONFIGS / f"{config}.toml"))["model"]
    cfg["roi_head"]["num_classes"] = num_classes
    # torchvision's memory format (NCHW): the same float operations, so tight tolerances
    cfg["channels_last"] = False
    return get_registries().build("detector", cfg, path="model").eval()


def saved_checkpoint(tmp_path: Path, state: dict[str, torch.Tensor]):
    path = tmp_path / "faster_rcnn.pth"
    torch.save(state, path)
    return read_checkpoint(path)


@pytest.mark.parametrize("name, layout", [
    ("fasterrcnn_resnet50_fpn", "current"),
    ("fasterrcnn_resnet50_fpn", "published"),
    ("fasterrcnn_resnet50_fpn_v2", "current"),
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
    images = torch.randn(len(IMAGE_SIZES), 3, *PADDED, generator=torch.Generator().manual_seed(3))
    samples = [DetSample(img_shape=size, ori_shape=size, pad_shape=PADDED)
               for size in IMAGE_SIZES]
    with torch.no_grad():
        tv_feats = runner.features(images)
        feats = ours.extract_feat(images)
        # RPN outputs
        for expected, got in zip(runner.rpn_outputs(tv_feats), ours.rpn_head(feats),
                                 strict=True):
            for theirs, mine in zip(expected, got, strict=True):
                torch.testing.assert_close(mine, theirs, rtol=0, atol=OUTPUT_TOL)
        # proposals
        expected_proposals = runner.proposals(images, IMAGE_SIZES, tv_feats)
        proposals = ours.rpn_head.predict(feats, samples)
        for theirs, mine in zip(expected_proposals, proposals, strict=True):
            assert len(theirs) > 300, "the test needs long proposal lists"
            torch.testing.assert_close(mine.boxes, theirs, rtol=0, atol=BOX_TOL)
        # box head outputs on the same (best) proposals
        rois = [boxes[:COMPARED_ROIS] for boxes in expected_proposals]
        tv_logits, tv_deltas = runner.box_outputs(tv_feats, rois, IMAGE_SIZES)
        logits, deltas = ours.roi_head(feats, rois_from_boxes(rois))
        torch.testing.assert_close(logits, tv_logits[:, [*range(1, TV_CLASSES), 0]], rtol=0,
                                   atol=OUTPUT_TOL)
        torch.testing.assert_close(deltas, tv_deltas[:, 4:].reshape(deltas.shape), rtol=0,
                                   atol=OUTPUT_TOL)
        # detections
        expected_dets = runner.predict(images, IMAGE_SIZES, tv_feats)
        got_dets = ours.roi_head.predict(feats, proposals, samples)
    for theirs, mine in zip(expected_dets, got_dets, strict=True):
        assert len(theirs["boxes"]) == 100, "the test needs full detection lists"
        assert len(mine) == len(theirs["boxes"])
        torch.testing.assert_close(mine.labels, theirs["labels"], rtol=0, atol=0)
        torch.testing.assert_close(mine.scores, theirs["scores"], rtol=0, atol=SCORE_TOL)
        torch.testing.assert_close(mine.boxes, theirs["boxes"], rtol=0, atol=BOX_TOL)


def test_coco_rows_kept_by_name_for_the_80_classes(tmp_path):
    """Fitted to COCO's 80 classes, each class takes its torchvision class row and its block
    of 4 box rows bit for bit and the background row follows last; the N/A rows and the
    background's box rows are dropped."""
    tv_model = torchvision_model("fasterrcnn_resnet50_fpn")
    checkpoint = saved_checkpoint(tmp_path, tv_model.state_dict())
    ours = plugdet_model("faster_rcnn_r50_fpn_torchvision_coco", len(COCO_CLASSES))
    converted, _ = convert_checkpoint(checkpoint, ours)
    report = fit_to_model(converted, ours, COCO_CLASSES)
    assert len(report.kept) == len(COCO_CLASSES) and not report.reinitialised
    rows = [TORCHVISION_COCO_CATEGORIES.index(name) for name in COCO_CLASSES] + [0]
    theirs = tv_model.roi_heads.box_predictor.cls_score
    assert torch.equal(ours.roi_head.bbox_head.fc_cls.weight, theirs.weight[rows])
    assert torch.equal(ours.roi_head.bbox_head.fc_cls.bias, theirs.bias[rows])
    box_rows = [4 * row + delta for row in rows[:-1] for delta in range(4)]
    deltas = tv_model.roi_heads.box_predictor.bbox_pred
    assert torch.equal(ours.roi_head.bbox_head.fc_reg.weight, deltas.weight[box_rows])
    assert torch.equal(ours.roi_head.bbox_head.fc_reg.bias, deltas.bias[box_rows])
