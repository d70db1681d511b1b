"""YOLOv8-seg: published sizes, the mask loss by hand and against a per-positive loop, the
masks assembled at test time on hand cases, and the detection part unchanged."""

import math
from importlib import resources

import pytest
import torch
import torch.nn.functional as F
from plugdet_yolo.proto import mask_loss, paste_masks
from plugdet_yolo.zoo import tables

from core.config import load_config
from core.engine.full_config import load_full_config
from core.masks import PolygonMasks
from core.plugins import get_registries
from core.structures import PAD_OFFSET_KEY, DetBatch, DetSample, Instances
from core.tools.model_info import model_info

#: ultralytics 8.4's ``SegmentationModel("yolov8{n,s}-seg.yaml", nc=80)``: parameters
#: (including the 16 fixed weights of its DFL integral, a buffer here), prototype widths.
ULTRALYTICS = {"n": 3_409_968, "s": 11_821_056}
PROTO_WIDTH = {"n": 64, "s": 128}
PUBLISHED_PARAMS = {"n": 3.4e6, "s": 11.8e6}
PUBLISHED_GFLOPS = {"n": 12.6, "s": 42.6}
NUM_CLASSES = 3
TINY = {"deepen_factor": 0.33, "widen_factor": 0.125}


def config_path(name):
    return str(resources.files("plugdet_yolo") / "configs" / name)


def build_detector(cfg):
    torch.manual_seed(0)
    return get_registries().build("detector", cfg, path="model")


def tiny_model(head_type="YOLOv8SegHead", **head):
    return {
        "type": "YOLODetector",
        "backbone": {"type": "YOLOv8CSPDarknet", **TINY},
        "neck": {"type": "YOLOv8PAFPN", **TINY},
        "head": {"type": head_type, "num_classes": NUM_CLASSES, "widen_factor": 0.125,
                 **head},
    }


def polygons(*shapes):
    return [[[float(v) for v in shape]] for shape in shapes]


def samples(size=96):
    triangle = (8, 60, 29, 10, 50, 60)
    square = (40, 30, 90, 30, 90, 88, 40, 88)
    star = (20, 16, 70, 33, 20, 50, 45, 33)
    gts = [([[8.0, 10, 50, 60], [40, 30, 90, 88]], [0, 2], polygons(triangle, square)),
           ([], [], []),
           ([[20.0, 16, 70, 50]], [1], polygons(star))]
    return [DetSample(ori_shape=(size, size), img_shape=(size, size), pad_shape=(size, size),
                      gt=Instances(torch.tensor(boxes).reshape(-1, 4), torch.tensor(labels),
                                   masks=PolygonMasks.from_coco(masks, (size, size))))
            for boxes, labels, masks in gts]


def random_batch(size=96, seed=1):
    images = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return DetBatch(images, samples(size))


@pytest.mark.parametrize("size", ["n", "s"])
def test_parameters_and_flops_match_the_published_sizes(size):
    """3,409,952 / 11,821,040 parameters: ultralytics' count less its 16 DFL weights.
    ultralytics' 12.6 / 42.6 GFLOPs count the 2x2 stride-2 transposed convolution of the
    prototypes at its output size (4x its multiply-adds); model_info counts it once."""
    cfg = load_config(config_path(f"yolov8_{size}_seg_500e_coco.toml"))
    info = model_info(cfg, (640, 640), depth=1)
    print(f"\nyolov8_{size}_seg at 640x640: {info.params:,} parameters, "
          f"{info.flops / 1e9:.2f} GFLOPs (2 x multiply-adds)")
    assert info.params == ULTRALYTICS[size] - 16
    assert abs(info.params - PUBLISHED_PARAMS[size]) / PUBLISHED_PARAMS[size] < 0.02
    width = PROTO_WIDTH[size]
    transposed_flops = 2 * 80 * 80 * width * width * 4
    assert abs((info.flops + 3 * transposed_flops) / 1e9 - PUBLISHED_GFLOPS[size]) < 0.05


def test_head_outputs():
    model = build_detector(tiny_model())
    head = model.head
    feats = model.extract_feat(torch.zeros(2, 3, 64, 96))
    cls_scores, _, _, coefs, (protos,) = head(feats)
    for level, stride in enumerate((8, 16, 32)):
        shape = (64 // stride, 96 // stride)
        assert cls_scores[level].shape == (2, NUM_CLASSES, *shape)
        assert coefs[level].shape == (2, 32, *shape)
    assert protos.shape == (2, 32, 16, 24)
    assert head.proto.conv1[0].out_channels == 32  # 256 widened by 0.125
    assert head.mask_branches[0][0][0].out_channels == 32  # max(32 / 4, 32)


def test_mask_loss_of_one_prior_by_hand():
    """One positive, two prototypes at 4x4 over a 16x16 input: the gt box (4, 4, 12, 8) is
    the proto pixels x 1..2, y 1; loss = sum of their BCE / (2 * 1 proto pixels), which is
    ultralytics' mean over the 16 pixels / (box area / input area = 32 / 256)."""
    protos = torch.zeros(2, 4, 4)
    protos[0] = torch.arange(16.0).view(4, 4) / 8 - 1
    protos[1, 1] = 1.0
    coefs = torch.tensor([[2.0, -1.0]])
    gt = torch.zeros(1, 4, 4)
    gt[0, 1, 1] = 1.0  # (x 1, y 1) inside, (x 2, y 1) outside the object
    loss = mask_loss(coefs, protos, gt, torch.tensor([[4.0, 4, 12, 8]]), (16, 16))
    x_in, x_out = 2 * (5 / 8 - 1) - 1, 2 * (6 / 8 - 1) - 1
    expected = (math.log(1 + math.exp(-x_in)) + math.log(1 + math.exp(x_out))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_mask_loss_equals_a_per_positive_loop():
    """loss_mask = 7.5 / P * sum over the positives of (BCE summed over the proto pixels
    whose index lies inside the gt box / 4) / (h * w) / (box area / input area)."""
    model = build_detector(tiny_model())
    head = model.head
    batch = random_batch()
    feats = model.extract_feat(batch.images)
    losses = head.loss(feats, batch.samples)
    cls_scores, distances, bins, coef_levels, (protos,) = head(feats)
    inputs = head.loss_inputs(cls_scores, distances, batch.samples, bins)
    targets = inputs.targets
    coefs = torch.cat([c.flatten(2).transpose(1, 2) for c in coef_levels], dim=1)
    gt_inds = targets.sampling.assign_result.gt_inds
    num_pos = targets.num_pos
    assert num_pos > 0 and float(losses["num_pos"]) == num_pos
    _, _, height, width = protos.shape
    total = 0.0
    for image, prior in zip(targets.pos_image.tolist(), targets.pos_prior.tolist(),
                            strict=True):
        sample = batch.samples[image]
        gt = int(gt_inds[image, prior]) - 1
        gt_mask = sample.gt.masks[gt].rescale(0.25, 0.25, (height, width)).to_tensor()[0]
        logits = torch.einsum("m,mhw->hw", coefs[image, prior], protos[image])
        bce = F.binary_cross_entropy_with_logits(logits, gt_mask.float(), reduction="none")
        x0, y0, x1, y1 = (sample.gt.boxes[gt] / 4).tolist()
        inside = sum(float(bce[y, x].detach()) for y in range(height) for x in range(width)
                     if x0 <= x < x1 and y0 <= y < y1)
        box_w, box_h = 4 * (x1 - x0), 4 * (y1 - y0)
        total += inside / (height * width) / (box_w * box_h / 96 ** 2)
    expected = 7.5 * total / num_pos * len(batch.samples)
    assert float(losses["loss_mask"].detach()) == pytest.approx(expected, rel=1e-4)


def test_detection_part_is_yolov8s():
    """Same weights: the same detection losses and detections as YOLOv8Head."""
    det = build_detector(tiny_model("YOLOv8Head"))
    seg = build_detector(tiny_model())
    missing = seg.load_state_dict(det.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("head.mask_branches", "head.proto")) for k in missing)
    batch = random_batch()
    det.train()
    seg.train()
    det_losses, seg_losses = det.loss(batch), seg.loss(batch)
    for key in ("loss_cls", "loss_bbox", "loss_dfl", "num_pos"):
        assert torch.equal(det_losses[key], seg_losses[key])
    assert set(seg_losses) - set(det_losses) == {"loss_mask"}
    det.eval()
    seg.eval()
    for det_pred, seg_pred, sample in zip(det.predict(batch), seg.predict(batch),
                                          batch.samples, strict=True):
        assert len(det_pred) > 0
        for field in ("boxes", "labels", "scores"):
            assert torch.equal(getattr(det_pred, field), getattr(seg_pred, field))
        assert det_pred.masks is None
        assert seg_pred.masks.dtype == torch.bool
        assert seg_pred.masks.shape == (len(seg_pred), *sample.ori_shape)


def test_two_training_iterations_on_random_data():
    model = build_detector(tiny_model())
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = random_batch()
    for _ in range(2):
        losses = model.loss(batch)
        assert float(losses["loss_mask"].detach()) > 0
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        optimizer.zero_grad()
        total.backward()
        for module in (model.head.proto, model.head.mask_branches):
            grads = [p.grad for p in module.parameters()]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            assert any(bool(g.abs().sum() > 0) for g in grads)
        optimizer.step()


def test_batch_without_boxes_has_a_zero_mask_loss():
    model = build_detector(tiny_model())
    empty = [DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                       gt=Instances(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long),
                                    masks=PolygonMasks.empty((64, 64))))] * 2
    losses = model.loss(DetBatch(torch.rand(2, 3, 64, 64), empty))
    assert float(losses["num_pos"]) == 0 and float(losses["loss_mask"].detach()) == 0
    losses["loss_mask"].backward()  # connected to the mask branches: no unused parameters
    assert model.head.proto.conv3[0].weight.grad is not None


def test_ground_truth_without_masks_is_named():
    model = build_detector(tiny_model())
    batch = random_batch()
    batch.samples[0].gt.masks = None
    with pytest.raises(ValueError, match=r"img_id=0 .*polygon masks"):
        model.loss(batch)


def region_logits(height, width, rows=slice(None), cols=slice(None)):
    """``(1, height, width)``: +5 inside ``rows x cols`` (slices), -5 elsewhere. The hand
    cases give a region one edge per axis at most: bilinear reading rounds a region's
    corners off."""
    logits = torch.full((1, height, width), -5.0)
    logits[0, rows, cols] = 5.0
    return logits


def test_paste_masks_without_test_transforms():
    """Proto rows 2..3 of an 8x8 map over a 32x32 input are input rows 8..15 (bilinear:
    the logit crosses 0 on the boundary); the box cuts the columns to 4..11."""
    logits = region_logits(8, 8, rows=slice(2, 4))
    sample = DetSample(ori_shape=(32, 32), img_shape=(32, 32), pad_shape=(32, 32))
    masks = paste_masks(logits, torch.tensor([[4.0, 0, 12, 32]]), sample, (32, 32))
    expected = torch.zeros(1, 32, 32, dtype=torch.bool)
    expected[0, 8:16, 4:12] = True
    assert torch.equal(masks, expected)


@pytest.mark.parametrize("flip", [None, "horizontal", "vertical", "diagonal"])
def test_paste_masks_undo_a_letterbox_and_a_flip(flip):
    """A 40x20 (h x w) original resized by 0.5 to 20x10 and centred in a 32x32 input
    (offset (11, 6)): input rows 8..15 (proto rows 2..3) are original rows 4..19, input
    columns 12..15 (proto column 3) original columns 2..9; a flipped input has the regions
    mirrored inside it (proto rows 4..5, column 4)."""
    rows, cols = slice(2, 4), slice(3, 4)
    if flip in ("horizontal", "diagonal"):
        cols = slice(4, 5)
    if flip in ("vertical", "diagonal"):
        rows = slice(4, 6)
    sample = DetSample(ori_shape=(40, 20), img_shape=(32, 32), pad_shape=(32, 32),
                       scale_factor=(0.5, 0.5), flip=flip is not None, flip_direction=flip,
                       meta={PAD_OFFSET_KEY: (11.0, 6.0)})
    logits = torch.cat([region_logits(8, 8, rows=rows), region_logits(8, 8, cols=cols)])
    masks = paste_masks(logits, torch.tensor([[0.0, 0, 32, 32]] * 2), sample, (32, 32))
    expected = torch.zeros(2, 40, 20, dtype=torch.bool)
    expected[0, 4:20] = True
    expected[1, :, 2:10] = True
    assert torch.equal(masks, expected)


def test_predicted_mask_is_the_prototype_its_coefficients_select():
    """Crafted head outputs on a 32x32 input: one prior (level 0, cell (1, 1), point
    (12, 12)) scores, its box is (4, 4, 20, 20) and its coefficients select prototype 1,
    positive on proto columns 0..3 (input columns 0..15); prototype 0 is positive
    everywhere and selected by no detection."""
    model = build_detector(tiny_model())
    head = model.head.eval()
    sizes = [(4, 4), (2, 2), (1, 1)]
    cls_scores = [torch.full((1, NUM_CLASSES, h, w), -10.0) for h, w in sizes]
    cls_scores[0][0, 2, 1, 1] = 10.0
    distances = [torch.ones(1, 4, h, w) for h, w in sizes]
    bins = [torch.zeros(1, 64, h, w) for h, w in sizes]
    coefs = [torch.zeros(1, 32, h, w) for h, w in sizes]
    coefs[0][0, 0] = 1.0
    coefs[0][0, :, 1, 1] = 0.0
    coefs[0][0, 1, 1, 1] = 1.0
    protos = torch.full((1, 32, 8, 8), -5.0)
    protos[0, 0] = 5.0
    protos[0, 1] = region_logits(8, 8, cols=slice(0, 4))[0]
    head.forward = lambda feats: (cls_scores, distances, bins, coefs, [protos])
    sample = DetSample(ori_shape=(32, 32), img_shape=(32, 32), pad_shape=(32, 32))
    (result,) = head.predict((torch.zeros(1, 8, 4, 4),), [sample])
    assert torch.equal(result.labels, torch.tensor([2]))
    assert torch.allclose(result.boxes, torch.tensor([[4.0, 4, 20, 20]]))
    expected = torch.zeros(1, 32, 32, dtype=torch.bool)
    expected[0, 4:20, 4:16] = True
    assert torch.equal(result.masks, expected)


@pytest.mark.parametrize(("name", "num_classes", "widen", "proto_width"), [
    ("yolov8_n_seg_500e_coco.toml", 80, 0.25, 64),
    ("yolov8_s_seg_500e_coco.toml", 80, 0.5, 128),
    ("yolov8_n_seg_demo_shapes.toml", 5, 0.125, 32),
])
def test_shipped_seg_configs(name, num_classes, widen, proto_width):
    cfg = load_full_config(config_path(name))
    model = get_registries().build("detector", cfg["model"], path="model")
    assert type(model.head).__name__ == "YOLOv8SegHead"
    assert model.head.num_classes == num_classes and model.backbone.widen_factor == widen
    assert model.head.proto.conv1[0].out_channels == proto_width
    for split in ("train", "val", "test"):
        assert cfg[f"{split}_dataloader"]["dataset"]["with_mask"] is True
    for split in ("val", "test"):
        assert cfg[f"{split}_evaluator"]["metric"] == ["bbox", "segm"]


def test_ultralytics_key_map_of_the_mask_parts():
    """ultralytics' yolov8n-seg names (and shapes) of the prototype branch and the
    coefficient branches of detect row 22; the rest is YOLOv8's map."""
    cfg = load_config(config_path("yolov8_n_seg_500e_coco.toml"))
    model = build_detector(cfg["model"])
    names = tables.ULTRALYTICS_YOLOV8_SEG.peer_names(model)
    shapes = {names[key]: tuple(value.shape) for key, value in model.state_dict().items()}
    assert len(set(names.values())) == len(names)
    expected = {
        "model.22.proto.cv1.conv.weight": (64, 64, 3, 3),
        "model.22.proto.cv1.bn.running_var": (64,),
        "model.22.proto.upsample.weight": (64, 64, 2, 2),
        "model.22.proto.upsample.bias": (64,),
        "model.22.proto.cv2.conv.weight": (64, 64, 3, 3),
        "model.22.proto.cv3.conv.weight": (32, 64, 1, 1),
        "model.22.proto.cv3.bn.bias": (32,),
        "model.22.cv4.0.0.conv.weight": (32, 64, 3, 3),
        "model.22.cv4.1.0.conv.weight": (32, 128, 3, 3),
        "model.22.cv4.2.0.conv.weight": (32, 256, 3, 3),
        "model.22.cv4.2.1.bn.weight": (32,),
        "model.22.cv4.2.2.weight": (32, 32, 1, 1),
        "model.22.cv4.2.2.bias": (32,),
    }
    for key, shape in expected.items():
        assert shapes[key] == shape
    mask_keys = [k for k in names if k.startswith(("head.proto.", "head.mask_branches."))]
    assert all(names[k].startswith(("model.22.proto.", "model.22.cv4.")) for k in mask_keys)
    # 3 conv-BN (6 entries each) and the transposed conv; 3 branches of 2 conv-BN and a conv
    assert len(mask_keys) == 3 * 6 + 2 + 3 * (2 * 6 + 2)
