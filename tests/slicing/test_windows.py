"""Tile windows (SAHI's geometry), the window -> image mapping and the cutting of boxes."""

import itertools
import re

import pytest
import torch

from core.data.slicing import (
    SliceSettings,
    axis_starts,
    crop_instances,
    image_windows,
    slice_windows,
    window_to_image,
)
from core.errors import ConfigError
from core.structures import Instances


def test_starts_step_by_size_less_overlap_and_the_last_ends_at_the_edge():
    # step 512 - int(0.2 * 512) = 410; 820 + 512 passes 1000, so the last starts at 488
    assert axis_starts(1000, 512, 0.2) == [0, 410, 488]
    assert axis_starts(1024, 512, 0.0) == [0, 512]
    assert axis_starts(1025, 512, 0.0) == [0, 512, 513]


def test_an_image_smaller_than_a_tile_gets_one_window_of_its_own_size():
    assert slice_windows(300, 200, (512, 512)) == [(0, 0, 200, 300)]
    assert slice_windows(300, 1000, (512, 512), (0.2, 0.2)) == [
        (0, 0, 512, 300), (410, 0, 922, 300), (488, 0, 1000, 300)]


@pytest.mark.parametrize(("height", "width", "size", "overlap"), [
    (1000, 1000, (512, 512), (0.2, 0.2)), (1536, 2048, (640, 512), (0.1, 0.3)),
    (512, 512, (512, 512), (0.2, 0.2)), (777, 513, (256, 256), (0.0, 0.5))])
def test_windows_cover_the_image_exactly_with_at_least_the_overlap(height, width, size, overlap):
    windows = slice_windows(height, width, size, overlap)
    covered = torch.zeros(height, width, dtype=torch.int32)
    for x1, y1, x2, y2 in windows:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert (y2 - y1, x2 - x1) == (min(size[0], height), min(size[1], width))
        covered[y1:y2, x1:x2] += 1
    assert int(covered.min()) >= 1
    xs = sorted({w[0] for w in windows})
    for left, right in itertools.pairwise(xs):
        assert left + size[1] - right >= int(overlap[1] * size[1])
    assert windows == sorted(windows, key=lambda w: (w[1], w[0]))  # row-major


def test_full_image_is_one_more_window_only_when_there_are_several_tiles():
    settings = SliceSettings(size=(512, 512), full_image=True)
    assert image_windows(1000, 1000, settings)[-1] == (0, 0, 1000, 1000)
    assert len(image_windows(1000, 1000, settings)) == 10
    assert image_windows(400, 400, settings) == [(0, 0, 400, 400)]


def test_window_detections_are_clipped_to_the_window_and_shifted_to_the_image():
    found = Instances(torch.tensor([[-3.0, 10.0, 50.0, 600.0], [5.0, 5.0, 15.0, 25.0]]),
                      torch.tensor([1, 2]), torch.tensor([0.9, 0.5]))
    mapped = window_to_image(found, (410, 820, 922, 1332))
    assert mapped.boxes.tolist() == [[410.0, 830.0, 460.0, 1332.0], [415.0, 825.0, 425.0, 845.0]]
    assert mapped.labels.tolist() == [1, 2] and mapped.scores.tolist() == pytest.approx([0.9, 0.5])


def test_a_cut_box_is_kept_by_the_share_of_its_area_inside_the_window():
    gt = Instances(torch.tensor([[90.0, 0.0, 110.0, 10.0],     # half inside
                                 [98.0, 20.0, 108.0, 30.0],    # 20 % inside
                                 [99.5, 40.0, 109.5, 50.0],    # 5 % inside
                                 [10.0, 10.0, 20.0, 20.0],     # all inside
                                 [200.0, 0.0, 210.0, 10.0]]),  # outside
                   torch.tensor([0, 1, 2, 3, 4]))
    kept, mask = crop_instances(gt, (0, 0, 100, 100), min_area_ratio=0.1)
    assert mask.tolist() == [True, True, False, True, False]
    assert kept.boxes.tolist() == [[90.0, 0.0, 100.0, 10.0], [98.0, 20.0, 100.0, 30.0],
                                   [10.0, 10.0, 20.0, 20.0]]
    strict, _ = crop_instances(gt, (0, 0, 100, 100), min_area_ratio=0.3)
    assert strict.labels.tolist() == [0, 3]
    shifted, _ = crop_instances(gt, (50, 5, 150, 105), min_area_ratio=0.1)
    assert shifted.boxes[0].tolist() == [40.0, 0.0, 60.0, 5.0]


def test_settings_read_a_table_and_refuse_bad_values():
    settings = SliceSettings.from_table({"size": [256, 512], "overlap": 0.25, "merge": "nms"})
    assert settings.size == (256, 512) and settings.overlap == (0.25, 0.25)
    assert settings.merge == "nms" and settings.match_metric == "ios"
    for table, message in [({}, "slice.size: required"), ({"size": 0}, "positive"),
                           ({"size": 64, "overlap": 1.0}, "[0, 1)"),
                           ({"size": 64, "merge": "wbf"}, "slice.merge"),
                           ({"size": 64, "tile": 3}, "unknown keys ['tile']")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            SliceSettings.from_table(table)
