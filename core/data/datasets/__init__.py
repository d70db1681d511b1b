"""Detection datasets: COCO JSON, Pascal VOC XML and the generated shapes set."""
