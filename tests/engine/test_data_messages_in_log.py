"""Dataset messages reach the run's train.log: build-time skips, and run-time replacements
counted once in the main process whatever the number of loader workers."""

import numpy as np
import pytest
from engine_toy import only_run_dir, toy_config, write_config
from PIL import Image

from core.run import main


def _voc(root):
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for index in range(5):
        name = f"img{index}"
        (root / "annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>16</width>"
            f"<height>16</height></size><object><name>{'ab'[index % 2]}</name><bndbox>"
            f"<xmin>2</xmin><ymin>2</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>"
            f"</annotation>")
        if index < 4:
            Image.fromarray(np.full((16, 16, 3), 40 * index, np.uint8)).save(
                root / "images" / f"{name}.jpg")
    (root / "images" / "img3.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # fails when loaded
    # img4.jpg is missing: left out when the dataset is built
    return {"type": "VocDataset", "data_root": str(root), "ann_dir": "annotations",
            "img_dir": "images", "split_file": "", "classes": ["a", "b"],
            "pipeline": [{"type": "LoadImage"},
                         {"type": "Normalize", "mean": [0, 0, 0], "std": [255, 255, 255]}]}


@pytest.mark.parametrize("workers", [0, 1])
def test_dataset_skips_are_in_train_log_once(tmp_path, workers):
    dataset = _voc(tmp_path / "voc")
    cfg = toy_config(train_dataloader={"batch_size": 2, "num_workers": workers,
                                       "dataset": dataset},
                     train={"max_epochs": 2, "val_interval": 0})
    del cfg["val_dataloader"], cfg["val_evaluator"]
    config = write_config(tmp_path / "toy.toml", cfg)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 0
    log = (only_run_dir(tmp_path / "runs") / "train.log").read_text()
    assert log.count("img4.jpg not found; skipped") == 1
    assert "VocDataset: 4 images, 4 boxes" in log
    replaced = [line for line in log.splitlines() if "img3.jpg" in line and "replaced" in line]
    assert len(replaced) == 1, replaced  # once, not once per epoch or per worker
    assert "bad_image: 1" in log  # the sum the main process keeps
