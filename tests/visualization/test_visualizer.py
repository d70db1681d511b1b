"""Visualizer instances, backend dispatch, LocalVisBackend files and add_datasample."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import load_config
from core.errors import ConfigError
from core.structures import DetSample, Instances
from core.visualization import BaseVisBackend, LocalVisBackend, Visualizer
from core.visualization.visualizer import PANEL_GAP_PX


class RecordingBackend(BaseVisBackend):
    """Keeps every call in memory."""

    def __init__(self, save_dir: str = "") -> None:
        super().__init__(save_dir)
        self.calls: list[tuple] = []

    def add_config(self, config):
        self.calls.append(("config", config))

    def add_image(self, name, image, step=0):
        self.calls.append(("image", name, image.shape, step))

    def add_scalars(self, scalars, step=0):
        self.calls.append(("scalars", scalars, step))

    def add_histogram(self, name, values, step=0):
        self.calls.append(("histogram", name, tuple(values.shape), step))


@pytest.fixture
def visualizer(tmp_path):
    vis = Visualizer.get_instance(
        "test_visualizer", vis_backends=[{"type": "LocalVisBackend"}], save_dir=str(tmp_path)
    )
    yield vis
    vis.close()


def test_get_instance_returns_the_same_object_and_sets_current(tmp_path):
    first = Visualizer.get_instance("inst_a")
    second = Visualizer.get_instance("inst_b")
    try:
        assert Visualizer.get_current_instance() is second
        assert Visualizer.get_instance("inst_a") is first
        assert Visualizer.get_current_instance() is first
    finally:
        first.close()
        second.close()
    assert not Visualizer.has_instance("inst_a")


def test_backends_from_config_tables_are_named_and_reachable(visualizer, tmp_path):
    backend = visualizer.get_backend("LocalVisBackend")
    assert isinstance(backend, LocalVisBackend)
    assert backend.experiment is backend
    assert backend.save_dir == str(tmp_path)
    with pytest.raises(KeyError, match="no vis backend named 'Tensorboard'"):
        visualizer.get_backend("Tensorboard")


def test_every_backend_receives_every_record():
    first, second = RecordingBackend(), RecordingBackend()
    vis = Visualizer(vis_backends=[first])
    vis.add_backend("second", second)
    with pytest.raises(ValueError, match="named 'second' exists already"):
        vis.add_backend("second", second)
    vis.add_scalar("lr", torch.tensor(0.5), step=3)
    vis.add_scalars({"loss": np.float32(1.5), "acc": 2}, step=4)
    vis.add_image("img", np.zeros((4, 5, 3), np.uint8), step=5)
    vis.add_histogram("w", torch.ones(2, 3), step=6)
    vis.add_config({"seed": 1})
    expected = [
        ("scalars", {"lr": 0.5}, 3),
        ("scalars", {"loss": 1.5, "acc": 2.0}, 4),
        ("image", "img", (4, 5, 3), 5),
        ("histogram", "w", (2, 3), 6),
        ("config", {"seed": 1}),
    ]
    assert first.calls == expected and second.calls == expected


def test_duplicate_backend_names_and_bad_tables_are_config_errors(tmp_path):
    tables = [{"type": "LocalVisBackend"}, {"type": "LocalVisBackend"}]
    with pytest.raises(ConfigError, match="second backend named 'LocalVisBackend'"):
        Visualizer(vis_backends=tables, save_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"vis_backends\[0\].*did you mean"):
        Visualizer(vis_backends=[{"type": "LocalVisBackends"}], save_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="needs save_dir"):
        Visualizer(vis_backends=[{"type": "LocalVisBackend"}])
    two = Visualizer(
        vis_backends=[tables[0], {"type": "LocalVisBackend", "name": "copy"}],
        save_dir=str(tmp_path),
    )
    assert set(two.backends) == {"LocalVisBackend", "copy"}


def test_local_backend_writes_json_lines_pngs_and_toml(visualizer, tmp_path):
    visualizer.add_scalars({"train/loss": 1.25, "train/lr": 0.01}, step=10)
    visualizer.add_scalar("coco/bbox_mAP", 0.5, step=20)
    lines = (tmp_path / "vis_data" / "scalars.json").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"train/loss": 1.25, "train/lr": 0.01, "step": 10},
        {"coco/bbox_mAP": 0.5, "step": 20},
    ]
    image = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    visualizer.add_image("val/sample", image, step=3)
    saved = np.asarray(Image.open(tmp_path / "vis_data" / "vis_image" / "val_sample_3.png"))
    assert np.array_equal(saved, image)
    config = {"seed": 0, "model": {"type": "RetinaNet", "sizes": [1, 2]}}
    visualizer.add_config(config)
    assert load_config(str(tmp_path / "vis_data" / "config.toml")) == config


def test_gt_is_mapped_back_to_the_original_frame():
    sample = DetSample(
        img_shape=(50, 100),
        ori_shape=(100, 200),
        scale_factor=(0.5, 0.5),
        flip=True,
        flip_direction="horizontal",
        gt=Instances(torch.tensor([[10.0, 5.0, 30.0, 25.0]]), torch.tensor([0])),
    )
    boxes = sample.instances_to_original(sample.gt).boxes
    assert boxes.tolist() == [[140.0, 10.0, 180.0, 50.0]]


def test_add_datasample_draws_gt_left_and_confident_predictions_right(visualizer, tmp_path):
    image = np.zeros((60, 80, 3), np.uint8)
    sample = DetSample(
        img_id=7,
        ori_shape=(60, 80),
        img_shape=(60, 80),
        gt=Instances(torch.tensor([[10.0, 20.0, 40.0, 50.0]]), torch.tensor([1])),
        pred=Instances(
            torch.tensor([[12.0, 22.0, 42.0, 52.0], [50.0, 5.0, 70.0, 15.0]]),
            torch.tensor([1, 0]),
            torch.tensor([0.9, 0.1]),
        ),
    )
    out_file = tmp_path / "drawn.png"
    drawn = visualizer.add_datasample(
        "val_7", image, sample, ("cat", "dog"), step=2, score_thr=0.3, out_file=str(out_file)
    )
    assert drawn.shape == (60, 80 + PANEL_GAP_PX + 80, 3)
    gt_panel, pred_panel = drawn[:, :80], drawn[:, 80 + PANEL_GAP_PX :]
    assert (drawn[:, 80 : 80 + PANEL_GAP_PX] == 255).all()
    assert gt_panel[35, 10].max() > 100  # left edge of the GT box
    assert pred_panel[37, 12].max() > 100  # left edge of the confident prediction
    assert pred_panel[10, 60].max() == 0  # the 0.1 prediction is not drawn
    assert (tmp_path / "vis_data" / "vis_image" / "val_7_2.png").exists()
    assert np.array_equal(np.asarray(Image.open(out_file)), drawn)


def test_add_datasample_rejects_a_resized_image_and_missing_predictions(visualizer):
    sample = DetSample(img_id=3, img_path="a.jpg", ori_shape=(60, 80), img_shape=(30, 40))
    with pytest.raises(ValueError, match=r"img_id=3 \(a.jpg\).*original image"):
        visualizer.add_datasample("x", np.zeros((30, 40, 3), np.uint8), sample, ("a",))
    with pytest.raises(ValueError, match="has no predictions"):
        visualizer.add_datasample("x", np.zeros((60, 80, 3), np.uint8), sample, ("a",))


def test_get_current_instance_without_any_instance_is_a_clear_error():
    saved = dict(Visualizer._instances), Visualizer._current_name
    Visualizer._instances.clear()
    Visualizer._current_name = None
    try:
        with pytest.raises(RuntimeError, match="no Visualizer exists yet"):
            Visualizer.get_current_instance()
    finally:
        Visualizer._instances.update(saved[0])
        Visualizer._current_name = saved[1]


def test_the_most_confident_of_overlapping_predictions_is_drawn_on_top():
    box = [[10.0, 20.0, 50.0, 50.0]] * 2
    preds = Instances(torch.tensor(box), torch.tensor([0, 1]), torch.tensor([0.9, 0.5]))
    drawn = Visualizer().draw_instances(np.zeros((60, 80, 3), np.uint8), preds, ("a", "b"))
    left_edge = drawn[35, 10].astype(int)  # palette: class 0 blue (31, 119, 180), 1 orange
    assert left_edge[2] > 100 and left_edge[0] < 100
