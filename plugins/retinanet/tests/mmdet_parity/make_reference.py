"""Reference outputs of MMDetection's own RetinaNet R50-FPN and ATSS R50-FPN, for
``test_mmdet_reference.py``.

Run with MMDetection 3.3.0 and mmengine 0.10.7 installed on this torch, which mmcv's compiled
ops do not build against: mmcv 2.0.1's Python code installed without its ops (``pip install
--target DIR --no-deps mmcv-lite==2.0.1 prettytable wcwidth``) and a module
``DIR/mmcv/_ext.py`` whose every attribute is a function that raises, so that mmcv imports;
the one compiled op these models use at test time, NMS, is replaced by torchvision's::

    PYTHONPATH=DIR python make_reference.py OUT_DIR

Each model is built from MMDetection's config with PyTorch's initialisation (its class bias
raised to -2 so that scores spread around the 0.05 threshold) and saved as MMEngine saves a
checkpoint (``OUT_DIR/<name>.pth``); its raw head outputs and detections on fixed tensors go
to ``OUT_DIR/<name>_out.pt``, the tensors to ``OUT_DIR/images.pt``.
"""

import sys
from pathlib import Path

import mmcv.ops  # noqa: F401  (loads mmcv.ops.nms, whose nms is replaced below)
import torch
import torchvision
from mmdet.datasets import CocoDataset
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

CONFIGS = Path(sys.modules["mmdet"].__file__).parent / ".mim" / "configs"
MODELS_BY_NAME = {"retinanet": ("retinanet/retinanet_r50_fpn_1x_coco.py", "retina_cls"),
                  "atss": ("atss/atss_r50_fpn_1x_coco.py", "atss_cls")}
PADDED = (256, 384)
IMAGE_SIZES = [(256, 320), (224, 300)]
CLS_BIAS = -2.0


def torchvision_nms(boxes, scores, iou_threshold, offset=0, score_threshold=0, max_num=-1):
    """mmcv's ``nms`` (dets with scores, kept indices) on torchvision's NMS."""
    assert (offset, score_threshold, max_num) == (0, 0, -1)
    keep = torchvision.ops.nms(boxes.float(), scores.float(), float(iou_threshold))
    return torch.cat([boxes[keep], scores[keep, None]], dim=1), keep


def main(out_dir: Path) -> None:
    sys.modules["mmcv.ops.nms"].nms = torchvision_nms
    register_all_modules()
    out_dir.mkdir(parents=True, exist_ok=True)
    images = torch.randn(len(IMAGE_SIZES), 3, *PADDED, generator=torch.Generator().manual_seed(1))
    torch.save(images, out_dir / "images.pt")
    metas = [dict(img_shape=size, ori_shape=size, pad_shape=PADDED, scale_factor=(1.0, 1.0))
             for size in IMAGE_SIZES]
    for name, (config, cls_layer) in MODELS_BY_NAME.items():
        torch.manual_seed(0)
        cfg = Config.fromfile(CONFIGS / config)
        model = MODELS.build(cfg.model).eval()
        head = model.bbox_head
        with torch.no_grad():
            getattr(head, cls_layer).bias.fill_(CLS_BIAS)
            outputs = head(model.neck(model.backbone(images)))
            detections = head.predict_by_feat(*outputs, batch_img_metas=metas, rescale=False)
        torch.save({"outputs": outputs,
                    "detections": [dict(boxes=d.bboxes, scores=d.scores, labels=d.labels)
                                   for d in detections]}, out_dir / f"{name}_out.pt")
        meta = {"dataset_meta": {"classes": tuple(CocoDataset.METAINFO["classes"])},
                "mmengine_version": "0.10.7", "cfg": cfg.pretty_text}
        torch.save({"meta": meta, "state_dict": model.state_dict()}, out_dir / f"{name}.pth")
        print(name, [len(d.bboxes) for d in detections])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
