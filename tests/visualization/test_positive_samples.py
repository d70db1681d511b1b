"""PositiveSamplesHook: the grid it draws, what it leaves untouched, when it sends images."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances
from core.visualization import Visualizer
from core.visualization.backends.base import BaseVisBackend
from core.visualization.colors import class_color
from core.visualization.hooks import PositiveSamplesHook
from core.visualization.positive_grid import PANEL_GAP_PX, draw_positive_grid
from core.visualization.positives import ImagePositives, LevelPositives

TINY_MODEL = {
    "type": "RetinaNet",
    "backbone": {"type": "TinyNet", "widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1],
                 "out_indices": [1, 2, 3]},
    "neck": {"type": "FPN", "in_channels": [8, 16, 16], "out_channels": 8, "num_outs": 3},
    "head": {"type": "RetinaHead", "num_classes": 2, "in_channels": 8, "feat_channels": 8,
             "stacked_convs": 1,
             "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16, 32],
                                 "ratios": [1.0], "scales_per_octave": 1},
             # draws from the global generator: the hook must leave it where it was
             "sampler": {"type": "RandomSampler", "num": 16, "pos_fraction": 0.5}},
}


class RecordingBackend(BaseVisBackend):
    def __init__(self) -> None:
        super().__init__("")
        self.images: list[tuple[str, tuple[int, ...], int]] = []

    def add_scalars(self, scalars, step=0) -> None:
        pass

    def add_image(self, name, image, step=0) -> None:
        self.images.append((name, image.shape, step))


def image_positives(gt_boxes: torch.Tensor, levels: list[tuple[torch.Tensor, torch.Tensor]],
                    ) -> ImagePositives:
    """Point-prior positives ``(points, gt_inds)`` per level (strides 8, 16, ...) of an image
    with ``gt_boxes``."""
    found = []
    for level, (points, gt_inds) in enumerate(levels):
        stride = 8.0 * 2 ** level
        squares = torch.cat([points - stride / 2, points + stride / 2], dim=-1)
        inds = torch.arange(len(points))
        found.append(LevelPositives(
            level=level, stride=(stride, stride), priors_per_cell=1, prior_inds=inds,
            base_inds=inds * 0, gt_inds=gt_inds, points=points, points_original=points,
            boxes=squares, boxes_original=squares, anchor_sizes=torch.zeros(1, 2),
            point_priors=True))
    gt = Instances(gt_boxes, torch.zeros(len(gt_boxes), dtype=torch.int64))
    return ImagePositives(DetSample(gt=gt), found)


def test_grid_has_a_panel_per_image_and_level_with_dots_in_their_box_colour():
    """Two black 32 x 32 images, two levels, panels enlarged x2 to 64 px. Image 0: box 1's
    positive at (8, 8) on level 0 and box 0's at (24, 24) on level 1; image 1: none."""
    images = [np.zeros((32, 32, 3), np.uint8)] * 2
    gt = [torch.tensor([[2.0, 2, 12, 12], [16, 16, 30, 30]]), torch.zeros((0, 4))]
    none = (torch.zeros((0, 2)), torch.zeros(0, dtype=torch.long))
    positives = [
        image_positives(gt[0], [(torch.tensor([[8.0, 8]]), torch.tensor([1])),
                                (torch.tensor([[24.0, 24]]), torch.tensor([0]))]),
        image_positives(gt[1], [none, none]),
    ]
    canvas = Visualizer()
    grid = draw_positive_grid(canvas, images, positives, min_panel=64)
    side = 2 * (64 + PANEL_GAP_PX) - PANEL_GAP_PX
    assert grid.shape == (side, side, 3)
    assert tuple(grid[16, 16]) == class_color(1)  # (8, 8) x 2, level 0 panel
    right = 64 + PANEL_GAP_PX
    assert tuple(grid[48, right + 48]) == class_color(0)  # (24, 24) x 2, level 1 panel
    assert tuple(grid[48, 48]) == (0, 0, 0)  # no level-0 positive there
    assert (grid[20:64, 64:right] == 255).all()  # the gap between the columns (below titles)
    lower = grid[64 + PANEL_GAP_PX + 20:, 10:60]  # image 1 below its title: nothing drawn
    assert (lower == 0).all()
    canvas.close()


def tiny_batch() -> DetBatch:
    generator = torch.Generator().manual_seed(0)
    samples = [DetSample(img_shape=(64, 64), pad_shape=(64, 64),
                         gt=Instances(torch.tensor([[8.0, 8, 40, 40]]), torch.tensor([1])))
               for _ in range(3)]
    return DetBatch(torch.randn(3, 3, 64, 64, generator=generator), samples)


def fake_runner(model, visualizer, iteration=0):
    return SimpleNamespace(model=model, visualizer=visualizer, iter=iteration, rank=0,
                           device=torch.device("cpu"), train_loader=None,
                           logger=SimpleNamespace(info=lambda message: None))


def test_hook_draws_every_interval_without_changing_training_state():
    torch.manual_seed(0)
    model = get_registries().build("detector", TINY_MODEL, "model").train()
    backend = RecordingBackend()
    visualizer = Visualizer(vis_backends=[backend])
    hook = PositiveSamplesHook(interval=2, num_images=2, min_panel=64)
    runner = fake_runner(model, visualizer)
    hook.before_train(runner)
    buffers = [b.clone() for b in model.buffers()]
    rng = torch.get_rng_state()
    for iteration in range(5):
        runner.iter = iteration
        hook.before_train_iter(runner, iteration, tiny_batch())
    assert [(name, step) for name, _, step in backend.images] == [
        ("train/positive_samples", 2), ("train/positive_samples", 4)]
    _, shape, _ = backend.images[0]
    assert shape == (2 * 64 + PANEL_GAP_PX, 3 * 64 + 2 * PANEL_GAP_PX, 3)  # 2 images x 3 levels
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers(), strict=True))
    assert torch.equal(rng, torch.get_rng_state())
    assert model.training and hook.drawings == 2
    visualizer.close()


def test_disabled_hook_does_nothing_and_bad_settings_are_config_errors():
    backend = RecordingBackend()
    visualizer = Visualizer(vis_backends=[backend])
    hook = PositiveSamplesHook(interval=1, enabled=False)
    runner = fake_runner(model=None, visualizer=visualizer)  # not even looked at
    hook.before_train(runner)
    hook.before_train_iter(runner, 0, tiny_batch())
    assert backend.images == [] and hook.drawings == 0
    with pytest.raises(ConfigError, match="get_assignments"):
        PositiveSamplesHook().before_train(fake_runner(torch.nn.Linear(1, 1), visualizer))
    with pytest.raises(ConfigError, match="interval"):
        PositiveSamplesHook(interval=0)
    with pytest.raises(ConfigError, match="num_images"):
        PositiveSamplesHook(num_images=0)
    visualizer.close()
