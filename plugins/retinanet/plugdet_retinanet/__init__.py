"""RetinaNet for plugdet: a dense single-stage detector trained with focal loss."""

from plugdet_retinanet.atss_head import ATSSHead
from plugdet_retinanet.retina_head import RetinaHead
from plugdet_retinanet.retinanet import RetinaNet

__all__ = ["ATSSHead", "RetinaHead", "RetinaNet"]
