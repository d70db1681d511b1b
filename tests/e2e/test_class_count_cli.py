"""The head's class count against the data, from the command line: checked once on the final
config and against the built datasets, before any training, for every dataset type."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from core.config import load_config
from core.engine.full_config import load_full_config
from core.plugins import get_registries

ROOT = Path(__file__).resolve().parents[2]
YOLO_DEMO = "plugdet_yolo::configs/yolov8_n_demo_shapes.toml"
RETINA_DEMO = "plugdet_retinanet::configs/retinanet_tinynet_fpn_demo_shapes.toml"
RACCOON_CONFIGS = {
    "plugins/yolo/configs/yolov8_n_scratch_raccoon.toml": "head",
    "plugins/yolo/configs/yolov5_n_scratch_raccoon.toml": "head",
    "plugins/retinanet/configs/retinanet_tinynet_fpn_scratch_raccoon.toml": "head",
    "plugins/retinanet/configs/retinanet_r18_fpn_1x_raccoon.toml": "head",
    "plugins/faster_rcnn/configs/faster_rcnn_r18_fpn_1x_raccoon.toml": "roi_head",
}
THREE = ["--set", 'data.classes=["cat", "dog", "bird"]']
ONE_EPOCH = ["--set", "param_schedulers.1.end=1"]
SIZE = 64
PIPELINE = ('[{type = "LoadImage"}, {type = "Normalize", mean = [0.0, 0.0, 0.0], '
            'std = [255.0, 255.0, 255.0]}, {type = "Pad", size_divisor = 32}]')


def cli(*args: str, cwd: Path, module: str = "core.run") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, check=False, cwd=cwd)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints (and nothing that looks like a traceback)."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def make_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (SIZE, SIZE), (120, 160, 200)).save(path)


def make_yolo_set(root: Path, names: list[str], labels: list[int]) -> Path:
    """A YOLO-layout set: one image per label (one box each) in ``train`` and ``val``;
    returns its YAML."""
    for split in ("train", "val"):
        for index, label in enumerate(labels):
            make_image(root / "images" / split / f"{index}.png")
            label_file = root / "labels" / split / f"{index}.txt"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text(f"{label} 0.5 0.5 0.4 0.4\n")
    yaml = root / "data.yaml"
    yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {names}\n")
    return yaml


def make_coco_set(root: Path, names: list[str], images: int = 4) -> Path:
    """A COCO-format set (one box per image, categories ``names``); returns its JSON."""
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(names)]
    entries, annotations = [], []
    for index in range(images):
        make_image(root / "images" / f"{index}.png")
        entries.append({"id": index + 1, "file_name": f"{index}.png", "width": SIZE,
                        "height": SIZE})
        annotations.append({"id": index + 1, "image_id": index + 1, "iscrowd": 0,
                            "category_id": index % len(names) + 1, "area": 24.0 * 24.0,
                            "bbox": [16, 16, 24, 24]})
    ann = root / "instances.json"
    ann.write_text(json.dumps({"images": entries, "annotations": annotations,
                               "categories": categories}))
    return ann


def loaders(dataset: dict[str, str], splits: dict[str, str]) -> str:
    """The three loader tables of a small config, each replacing the base's dataset."""
    text = []
    for key in ("train", "val", "test"):
        extra = "".join(f'{name} = "{value}"\n' for name, value in dataset.items())
        split = f'split = "{splits[key]}"\n' if splits else ""
        text.append(f"[{key}_dataloader]\nbatch_size = 2\nnum_workers = 0\n\n"
                    f"[{key}_dataloader.dataset]\n_delete_ = true\n{extra}{split}"
                    f"pipeline = {PIPELINE}\n")
    return "\n".join(text)


def small_config(path: Path, base: str, head: str, dataset: dict[str, str],
                 splits: dict[str, str] | None = None) -> Path:
    path.write_text(
        f'_base_ = ["{base}"]\n\n[model.head]\n{head}\n\n{loaders(dataset, splits or {})}\n'
        "[train]\nmax_epochs = 1\nval_interval = 1\n\n"
        "[default_hooks]\ncurves = false\n")
    return path


def yolo_config(path: Path, data_yaml: Path, head: str = "") -> Path:
    return small_config(path, YOLO_DEMO, head,
                        {"type": "YoloDataset", "data_yaml": str(data_yaml)},
                        {"train": "train", "val": "val", "test": "val"})


def checkpoints(work: Path) -> list[Path]:
    return list(work.rglob("*.pth")) if work.exists() else []


def test_more_yolo_names_than_the_count_is_refused_before_training(tmp_path):
    data = make_yolo_set(tmp_path / "yolo", ["cat", "dog"], [0, 1, 1, 0])
    config = yolo_config(tmp_path / "two_names.toml", data, "num_classes = 1")
    work = tmp_path / "work"
    result = cli(str(config), *ONE_EPOCH, "--work-dir", str(work), cwd=tmp_path)
    assert error_line(result) == (
        "error: model.head.num_classes = 1 but train_dataloader.dataset has 2 classes (cat, "
        "dog; from its data); --set model.head.num_classes=2 matches it, or leave "
        "model.head.num_classes out to take the count from the dataset")
    assert not checkpoints(work)
    assert "Epoch(train)" not in result.stdout + result.stderr


@pytest.mark.parametrize("written", ["", "num_classes = 1"])
def test_set_count_on_a_one_class_yolo_set_is_refused_before_training(tmp_path, written):
    data = make_yolo_set(tmp_path / "yolo", ["raccoon"], [0, 0])
    config = yolo_config(tmp_path / "one_class.toml", data, written)
    work = tmp_path / "work"
    result = cli(str(config), "--set", "model.head.num_classes=3", *ONE_EPOCH,
                 "--work-dir", str(work), cwd=tmp_path)
    assert error_line(result).startswith(
        "error: model.head.num_classes = 3 but train_dataloader.dataset has 1 class (raccoon; "
        "from its data); --set model.head.num_classes=1 matches it")
    assert not checkpoints(work)


def test_count_left_out_is_taken_from_the_yolo_data(tmp_path):
    data = make_yolo_set(tmp_path / "yolo", ["cat", "dog"], [0, 1])
    config = yolo_config(tmp_path / "from_data.toml", data)
    printed = cli(str(config), "--print-config", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "num_classes" not in load_config_text(tmp_path, printed.stdout)["model"]["head"]
    work = tmp_path / "work"
    result = cli(str(config), *ONE_EPOCH, "--work-dir", str(work), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = work.iterdir()
    assert load_config(run / "config.toml")["model"]["head"]["num_classes"] == 2
    assert (run / "epoch_1.pth").is_file()


def load_config_text(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "printed.toml"
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize("count_first", [True, False])
def test_the_order_of_the_overrides_does_not_matter(tmp_path, count_first):
    count = ["--set", "model.head.num_classes=3"]
    overrides = [*count, *THREE] if count_first else [*THREE, *count]
    result = cli(str(ROOT / "plugins/yolo/configs/yolov8_n_scratch_raccoon.toml"),
                 "--set", f"data.root={tmp_path / 'voc'}", *overrides, "--print-config",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = load_config_text(tmp_path, result.stdout)
    assert cfg["model"]["head"]["num_classes"] == 3
    assert cfg["val_dataloader"]["dataset"]["classes"] == ["cat", "dog", "bird"]


def test_a_wrong_count_is_still_refused_on_the_final_config(tmp_path):
    result = cli(str(ROOT / "plugins/yolo/configs/yolov8_n_scratch_raccoon.toml"), *THREE,
                 "--set", "model.head.num_classes=2", "--print-config", cwd=tmp_path)
    assert error_line(result) == (
        "error: model.head.num_classes = 2 but train_dataloader.dataset has 3 classes (cat, "
        "dog, bird); --set model.head.num_classes=3 matches it, or leave "
        "model.head.num_classes out to take the count from the dataset")


def test_the_count_of_a_roi_head_is_checked_under_its_own_key(tmp_path):
    config = ROOT / "plugins/faster_rcnn/configs/faster_rcnn_tinynet_fpn_demo_shapes.toml"
    result = cli(str(config), "--set", "model.roi_head.num_classes=3", "--print-config",
                 cwd=tmp_path)
    assert error_line(result).startswith(
        "error: model.roi_head.num_classes = 3 but train_dataloader.dataset has 5 classes "
        "(circle, square, triangle, star, cross); --set model.roi_head.num_classes=5 matches")


def test_three_class_voc_switch_of_the_yolo_raccoon_config_from_the_command_line(tmp_path):
    config = ROOT / "plugins/yolo/configs/yolov8_n_scratch_raccoon.toml"
    result = cli(str(config), "--set", f"data.root={tmp_path / 'voc'}", *THREE,
                 "--print-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = load_config_text(tmp_path, result.stdout)
    model = get_registries().build("detector", cfg["model"], path="model")
    assert model.head.num_classes == 3


@pytest.mark.parametrize("name", sorted(RACCOON_CONFIGS))
def test_every_raccoon_config_follows_the_classes_of_another_voc_set(tmp_path, name):
    key = RACCOON_CONFIGS[name]
    cfg = load_full_config(str(ROOT / name), [f"data.root={tmp_path}",
                                              'data.classes=["cat", "dog", "bird"]'])
    assert cfg["model"][key]["num_classes"] == 3
    assert load_full_config(str(ROOT / name))["model"][key]["num_classes"] == 1  # raccoon


def test_the_advice_for_a_coco_set_works_when_followed_literally(tmp_path):
    ann = make_coco_set(tmp_path / "coco", ["cat", "dog", "bird"])
    dataset = {"type": "CocoDataset", "data_root": str(tmp_path / "coco"),
               "ann_file": ann.name, "img_dir": "images"}
    config = small_config(tmp_path / "coco.toml", RETINA_DEMO, "num_classes = 80", dataset)
    work = tmp_path / "work"
    refused = cli(str(config), *ONE_EPOCH, "--work-dir", str(work), cwd=tmp_path)
    line = error_line(refused)
    assert line.startswith("error: model.head.num_classes = 80 but train_dataloader.dataset "
                           "has 3 classes (cat, dog, bird; from its data)")
    assert not checkpoints(work)
    (advice,) = re.findall(r"--set (\S+)", line)
    followed = cli(str(config), *ONE_EPOCH, "--set", advice, "--work-dir", str(work),
                   cwd=tmp_path)
    assert followed.returncode == 0, followed.stderr[-3000:]
    (run,) = work.iterdir()
    assert load_config(run / "config.toml")["model"]["head"]["num_classes"] == 3


def test_a_tool_without_the_data_asks_for_the_count_and_the_advice_works(tmp_path):
    ann = make_coco_set(tmp_path / "coco", ["cat", "dog", "bird"])
    dataset = {"type": "CocoDataset", "data_root": str(tmp_path / "coco"),
               "ann_file": ann.name, "img_dir": "images"}
    config = small_config(tmp_path / "coco.toml", RETINA_DEMO, "", dataset)
    refused = cli(str(config), cwd=tmp_path, module="core.tools.model_info")
    line = error_line(refused)
    assert line.startswith("error: model.head.num_classes: not set, and train_dataloader.dataset "
                           "takes its classes from its data")
    (advice,) = re.findall(r"--set (\S+)", line)
    followed = cli(str(config), "--set", advice.replace("N", "3"), cwd=tmp_path,
                   module="core.tools.model_info")
    assert followed.returncode == 0, followed.stderr[-3000:]
