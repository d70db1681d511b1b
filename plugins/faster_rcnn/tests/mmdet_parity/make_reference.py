"""Reference outputs of MMDetection's own Faster R-CNN R50-FPN, for ``test_mmdet_reference.py``.

Run with MMDetection 3.3.0 and mmengine 0.10.7 installed on this torch, which mmcv's compiled
ops do not build against: mmcv 2.0.1's Python code installed without its ops (``pip install
--target DIR --no-deps mmcv-lite==2.0.1 prettytable wcwidth``) and a module
``DIR/mmcv/_ext.py`` whose every attribute is a function that raises, so that mmcv imports.
The two compiled ops the model uses at test time are torchvision's: NMS replaced, RoIAlign
through mmcv's own ``use_torchvision`` switch (the same aligned RoIAlign)::

    PYTHONPATH=DIR python make_reference.py OUT_DIR

The model is built from MMDetection's config with PyTorch's initialisation; its FPN outputs
are scaled to unit variance (a ResNet at its initial BatchNorm statistics amplifies its input
a hundredfold, which saturates the objectness), its objectness and class weights spread so
that proposals and scores have no near-ties and detections pass 0.05. It is saved as MMEngine
saves a checkpoint (``OUT_DIR/faster_rcnn.pth``); the RPN's raw outputs, the proposals, the
box head's raw outputs on the best 200 proposals per image and the detections on fixed tensors
go to ``OUT_DIR/faster_rcnn_out.pt``, the tensors to ``OUT_DIR/images.pt``.
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

CONFIG = (Path(sys.modules["mmdet"].__file__).parent / ".mim" / "configs" / "faster_rcnn"
          / "faster-rcnn_r50_fpn_1x_coco.py")
PADDED = (256, 384)
IMAGE_SIZES = [(256, 320), (224, 300)]
OBJECTNESS_STD = 0.1
CLS_STD = 1.0
COMPARED_ROIS = 200


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
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG)
    cfg.model.roi_head.bbox_roi_extractor.roi_layer.use_torchvision = True
    model = MODELS.build(cfg.model).eval()
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        # the fifth level max-pools the fourth
        for conv, level in zip(model.neck.fpn_convs, model.neck(model.backbone(images)),
                               strict=False):
            conv.conv.weight /= level.std()
            conv.conv.bias /= level.std()
        for layer, std in ((model.rpn_head.rpn_cls, OBJECTNESS_STD),
                           (model.roi_head.bbox_head.fc_cls, CLS_STD)):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
        feats = model.neck(model.backbone(images))
        rpn_outputs = model.rpn_head(feats)
        proposals = model.rpn_head.predict_by_feat(*rpn_outputs, batch_img_metas=metas,
                                                   rescale=False)
        rois = torch.cat([torch.cat([torch.full((len(p.bboxes[:COMPARED_ROIS]), 1), float(i)),
                                     p.bboxes[:COMPARED_ROIS]], dim=1)
                          for i, p in enumerate(proposals)])
        box_outputs = model.roi_head._bbox_forward(feats, rois)
        detections = model.roi_head.predict_bbox(feats, metas, proposals,
                                                 model.roi_head.test_cfg, rescale=False)
    torch.save({"rpn_outputs": rpn_outputs, "proposals": [p.bboxes for p in proposals],
                "rois": rois, "box_outputs": (box_outputs["cls_score"], box_outputs["bbox_pred"]),
                "detections": [dict(boxes=d.bboxes, scores=d.scores, labels=d.labels)
                               for d in detections]}, out_dir / "faster_rcnn_out.pt")
    meta = {"dataset_meta": {"classes": tuple(CocoDataset.METAINFO["classes"])},
            "mmengine_version": "0.10.7", "cfg": cfg.pretty_text}
    torch.save({"meta": meta, "state_dict": model.state_dict()}, out_dir / "faster_rcnn.pth")
    print("faster_rcnn", [len(d.bboxes) for d in detections])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
