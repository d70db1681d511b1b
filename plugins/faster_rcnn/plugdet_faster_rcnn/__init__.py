"""Faster R-CNN and Mask R-CNN for plugdet: a region proposal network and box (and mask) heads
on RoIAlign features."""

from plugdet_faster_rcnn.bbox_head import ConvFCBBoxHead
from plugdet_faster_rcnn.faster_rcnn import FasterRCNN
from plugdet_faster_rcnn.mask_head import FCNMaskHead
from plugdet_faster_rcnn.mask_rcnn import MaskRCNN, MaskRoIHead
from plugdet_faster_rcnn.proposals import ProposalNMS
from plugdet_faster_rcnn.roi_extractor import MultiLevelRoIAlign, RoIExtractor
from plugdet_faster_rcnn.roi_head import StandardRoIHead
from plugdet_faster_rcnn.rpn_head import RPNHead

__all__ = ["ConvFCBBoxHead", "FCNMaskHead", "FasterRCNN", "MaskRCNN", "MaskRoIHead",
           "MultiLevelRoIAlign", "ProposalNMS", "RPNHead", "RoIExtractor", "StandardRoIHead"]
