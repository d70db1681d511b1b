"""TensorboardVisBackend: what the Visualizer sends is read back from the event files."""

import numpy as np
import pytest
import torch
from plugdet_tensorboard import TensorboardVisBackend
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from core.visualization import Visualizer


def read_events(log_dir) -> EventAccumulator:
    size_guidance = {"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}
    accumulator = EventAccumulator(str(log_dir), size_guidance=size_guidance)
    accumulator.Reload()
    return accumulator


@pytest.fixture
def visualizer(tmp_path):
    vis = Visualizer(
        vis_backends=[{"type": "TensorboardVisBackend", "name": "tb"}, {"type": "LocalVisBackend"}],
        save_dir=str(tmp_path),
    )
    yield vis
    vis.close()


def test_backend_is_built_from_a_table_and_exposes_the_summary_writer(visualizer, tmp_path):
    backend = visualizer.get_backend("tb")
    assert isinstance(backend, TensorboardVisBackend)
    assert not (tmp_path / "vis_data").exists()  # nothing written before the first record
    assert isinstance(backend.experiment, SummaryWriter)


def test_scalars_images_histograms_and_config_are_read_back(visualizer, tmp_path):
    visualizer.add_scalars({"train/loss": 2.0, "train/lr": 0.1}, step=1)
    visualizer.add_scalars({"train/loss": 1.0, "train/lr": 0.1}, step=2)
    visualizer.add_scalar("coco/bbox_mAP", 0.25, step=12)
    image = np.zeros((8, 10, 3), np.uint8)
    image[:, :5, 0] = 255
    visualizer.add_image("val/img_3", image, step=4)
    visualizer.add_histogram("grads/conv.weight", torch.arange(100.0), step=5)
    visualizer.add_config({"seed": 3, "model": {"type": "RetinaNet"}})
    visualizer.add_text("env", "torch 2.x", step=0)
    visualizer.close()

    local_lines = (tmp_path / "vis_data" / "scalars.json").read_text().splitlines()
    assert len(local_lines) == 3  # the local backend got the same records
    events = read_events(tmp_path / "vis_data" / "tensorboard")
    loss = events.Scalars("train/loss")
    assert [(e.step, e.value) for e in loss] == [(1, 2.0), (2, 1.0)]
    assert [(e.step, e.value) for e in events.Scalars("coco/bbox_mAP")] == [(12, 0.25)]

    (img_event,) = events.Images("val/img_3")
    assert (img_event.step, img_event.width, img_event.height) == (4, 10, 8)

    (hist_event,) = events.Histograms("grads/conv.weight")
    hist = hist_event.histogram_value
    assert hist_event.step == 5
    assert (hist.min, hist.max, hist.num, hist.sum) == (0.0, 99.0, 100, 4950.0)

    (config_event,) = events.Tensors("config/text_summary")
    text = config_event.tensor_proto.string_val[0].decode()
    assert config_event.step == 0
    assert "seed = 3" in text and 'type = "RetinaNet"' in text
    (env_event,) = events.Tensors("env/text_summary")
    assert "torch 2.x" in env_event.tensor_proto.string_val[0].decode()


def test_model_graph_is_written(visualizer, tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    visualizer.add_graph(model, torch.zeros(1, 3, 8, 8))
    visualizer.close()
    graph = read_events(tmp_path / "vis_data" / "tensorboard").Graph()
    ops = {node.op for node in graph.node}
    assert "aten::_convolution" in ops or "aten::conv2d" in ops
