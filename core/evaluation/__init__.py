"""Detection metrics (registered as a built-in plugin): COCO AP and Pascal VOC mAP."""
