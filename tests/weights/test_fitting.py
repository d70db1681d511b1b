"""Class rows follow the class names: worked by hand for anchor groups (RetinaNet), a block
with box and objectness rows (YOLOv5) and a trailing background row (Faster R-CNN)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from core.errors import CheckpointError, ConfigError
from core.weights.checkpoint import ClassRows, ConvertedState
from core.weights.fitting import FitReport, fit_to_model

INIT = -1.0


class Model(nn.Module):
    """A trunk (no class rows) and a class layer of ``rows`` outputs, initialised to -1."""

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.trunk = nn.Linear(2, 2)
        self.cls = nn.Linear(2, rows)
        with torch.no_grad():
            self.cls.weight.fill_(INIT)
            self.cls.bias.fill_(INIT)


def _converted(rows: int, class_rows: ClassRows, classes, random: bool = False):
    """A checkpoint whose class layer row ``i`` holds ``10 i, 10 i + 1`` (or random values)."""
    weight = torch.randn(rows, 2) if random else \
        torch.arange(rows * 2, dtype=torch.float32).view(rows, 2) + torch.arange(rows)[:, None] * 8
    state = {"trunk.weight": torch.randn(2, 2), "trunk.bias": torch.randn(2),
             "cls.weight": weight, "cls.bias": weight[:, 0].clone()}
    return ConvertedState(state, {"cls.weight": class_rows, "cls.bias": class_rows}, classes)


def _rows(model: Model) -> list[float]:
    """The first value of each row of the model's class layer (checkpoint row i gives 10 i)."""
    return model.cls.weight[:, 0].tolist()


def test_anchor_groups_take_each_class_from_its_named_row():
    converted = _converted(6, ClassRows(groups=2), ("a", "b", "c"))  # rows a0 b0 c0 a1 b1 c1
    model = Model(6)
    report = fit_to_model(converted, model, ("c", "x", "a"), {}, "/w/ck.pth", "test/tv")
    assert _rows(model) == [20.0, INIT, 0.0, 50.0, INIT, 30.0]
    assert model.cls.bias.tolist() == [20.0, INIT, 0.0, 50.0, INIT, 30.0]
    assert torch.equal(model.trunk.weight, converted.state["trunk.weight"])
    assert report == FitReport("/w/ck.pth", "test/tv", 4, (("c", "c"), ("a", "a")), ("x",))
    assert report.log_line() == ("load_from ck.pth (test/tv): 4 tensors loaded; class rows "
                                 "kept: c <- c, a <- a; re-initialised: x")


def test_box_and_objectness_rows_before_the_classes_are_copied_per_block():
    # YOLOv5: per anchor 4 box rows, 1 objectness row, then the classes; 2 anchors here
    converted = _converted(16, ClassRows(groups=2, stride=8, offset=5), ("a", "b", "c"))
    model = Model(14)  # 2 classes: blocks of 7 rows
    fit_to_model(converted, model, ("b", "new"), {}, "ck.pt")
    assert _rows(model) == [0.0, 10.0, 20.0, 30.0, 40.0, 60.0, INIT,
                            80.0, 90.0, 100.0, 110.0, 120.0, 140.0, INIT]


def test_the_background_row_after_the_classes_is_kept():
    converted = _converted(3, ClassRows(), ("a", "b"))  # rows a, b, background
    model = Model(4)
    report = fit_to_model(converted, model, ("b", "z", "a"), {}, "ck.pth")
    assert _rows(model) == [10.0, INIT, 0.0, 20.0]
    assert report.reinitialised == ("z",)


def test_a_class_of_several_rows_is_copied_as_a_whole_block():
    # per group: 1 leading row, 2 classes of 2 rows each, 1 trailing row
    converted = _converted(12, ClassRows(groups=2, offset=1, rows_per_class=2), ("a", "b"))
    model = Model(16)  # 3 classes: groups of 1 + 3 * 2 + 1 rows
    report = fit_to_model(converted, model, ("b", "n", "a"), {}, "ck.pth")
    assert _rows(model) == [0.0, 30.0, 40.0, INIT, INIT, 10.0, 20.0, 50.0,
                            60.0, 90.0, 100.0, INIT, INIT, 70.0, 80.0, 110.0]
    assert report.kept == (("b", "b"), ("a", "a")) and report.reinitialised == ("n",)


class TwoStageModel(nn.Module):
    """Faster R-CNN's predictors: ``C`` class rows and a background row, ``C`` blocks of 2
    box rows, all initialised to -1."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.cls = nn.Linear(2, classes + 1)
        self.reg = nn.Linear(2, 2 * classes)
        for param in self.parameters():
            nn.init.constant_(param, INIT)


def _two_stage(classes: int, names) -> ConvertedState:
    """Row ``i`` of each checkpoint predictor holds ``i`` (cls) or ``100 + i`` (reg)."""
    model = TwoStageModel(classes)
    state = {key: torch.arange(len(value), dtype=torch.float32).reshape(-1, *[1] * (
        value.dim() - 1)).expand_as(value) + (100.0 if key.startswith("reg") else 0.0)
        for key, value in model.state_dict().items()}
    rows = {"cls.weight": ClassRows(), "cls.bias": ClassRows(),
            "reg.weight": ClassRows(rows_per_class=2), "reg.bias": ClassRows(rows_per_class=2)}
    return ConvertedState(state, rows, names)


def test_box_blocks_follow_the_class_rows_of_a_two_stage_predictor():
    converted = _two_stage(3, ("a", "b", "c"))  # cls: a b c background; reg: a a b b c c
    model = TwoStageModel(2)
    report = fit_to_model(converted, model, ("c", "z"), {}, "ck.pth")
    assert model.cls.bias.tolist() == [2.0, INIT, 3.0]
    assert model.reg.bias.tolist() == [104.0, 105.0, INIT, INIT]
    assert model.reg.weight[:, 1].tolist() == [104.0, 105.0, INIT, INIT]
    assert report.kept == (("c", "c"),) and report.reinitialised == ("z",)
    unnamed = _two_stage(2, None)  # neither side names classes: same shapes load as they are
    fit_to_model(unnamed, model, None, {}, "ck.pth")
    assert all(torch.equal(value, unnamed.state[key])
               for key, value in model.state_dict().items())
    converted.state["reg.bias"] = torch.zeros(8)  # 4 box blocks for 3 classes
    with pytest.raises(CheckpointError, match=re.escape(
            "reg.bias (checkpoint (8,) vs model (4,))")):
        fit_to_model(converted, TwoStageModel(2), ("c", "z"), {}, "ck.pth")


def test_kept_rows_are_bit_equal_to_the_checkpoint_rows():
    torch.manual_seed(0)
    converted = _converted(9, ClassRows(groups=3), ("a", "b", "c"), random=True)
    model = Model(6)
    fit_to_model(converted, model, ("c", "a"), {}, "ck.pth")
    weight = converted.state["cls.weight"]
    for group in range(3):
        assert torch.equal(model.cls.weight[2 * group], weight[3 * group + 2])
        assert torch.equal(model.cls.weight[2 * group + 1], weight[3 * group])


def test_class_map_gives_other_spellings():
    converted = _converted(2, ClassRows(), ("dog", "bear"))
    model = Model(2)
    report = fit_to_model(converted, model, ("raccoon", "dog"), {"raccoon": "bear"}, "ck.pth")
    assert _rows(model) == [10.0, 0.0]
    assert report.kept == (("raccoon", "bear"), ("dog", "dog")) and not report.reinitialised
    with pytest.raises(ConfigError, match="load_from_class_map: cat not among the dataset's"):
        fit_to_model(converted, Model(2), ("raccoon", "dog"), {"cat": "bear"}, "ck.pth")
    with pytest.raises(ConfigError, match="raccoon = 'wolf': no such class in ck.pth "
                                          r"\(its classes: dog, bear\)"):
        fit_to_model(converted, Model(2), ("raccoon", "dog"), {"raccoon": "wolf"}, "ck.pth")


def test_without_names_rows_are_kept_by_position_when_the_counts_match():
    converted = _converted(3, ClassRows(), None)
    model = Model(3)
    report = fit_to_model(converted, model, ("x", "y", "z"), {}, "ck.pth")
    assert _rows(model) == [0.0, 10.0, 20.0] and report.by_position
    assert report.log_line().endswith("; class rows kept by position (3 classes)")


def test_without_names_other_counts_start_every_class_row_afresh():
    converted = _converted(4, ClassRows(), None)  # 3 classes and a background row
    model = Model(3)  # 2 classes and a background row
    report = fit_to_model(converted, model, ("x", "y"), {}, "ck.pth")
    assert _rows(model) == [INIT, INIT, 30.0]
    assert report.kept == () and report.reinitialised == ("x", "y")
    assert "class rows kept: none; re-initialised: x, y" in report.log_line()


def test_every_key_that_does_not_fit_is_listed_in_one_message():
    converted = _converted(3, ClassRows(), ("a", "b"))
    del converted.state["trunk.bias"]
    converted.state["extra.weight"] = torch.ones(1)
    converted.state["trunk.weight"] = torch.ones(3, 2)
    converted.state["cls.bias"] = torch.ones(3, 1)  # class rows whose other dims differ
    with pytest.raises(CheckpointError) as info:
        fit_to_model(converted, Model(3), ("a", "b"), {}, "/w/ck.pth", "test/tv")
    assert str(info.value) == (
        "checkpoint /w/ck.pth (test/tv) does not fit the model Model:\n"
        "  missing keys (1): trunk.bias\n"
        "  unexpected keys (1): extra.weight\n"
        "  shape mismatches (2): cls.bias (checkpoint (3, 1) vs model (3,)), "
        "trunk.weight (checkpoint (3, 2) vs model (2, 2))")


def test_same_classes_load_every_row_and_a_file_without_class_rows_loads_as_is():
    converted = _converted(3, ClassRows(), ("a", "b"))
    model = Model(3)
    report = fit_to_model(converted, model, ("a", "b"), {}, "ck.pth")
    assert _rows(model) == [0.0, 10.0, 20.0] and report.kept == (("a", "a"), ("b", "b"))
    plain = ConvertedState(dict(converted.state), {}, None)
    report = fit_to_model(plain, Model(3), None, None, "ck.pth", "plugdet")
    assert report.log_line() == "load_from ck.pth (plugdet): 4 tensors loaded"


def test_class_rows_of_a_key_the_converter_did_not_convert_are_its_error():
    converted = _converted(3, ClassRows(), ("a", "b"))
    converted.class_rows["head.cls.weight"] = ClassRows()
    with pytest.raises(CheckpointError, match=re.escape(
            "test/tv: class rows of keys it did not convert: head.cls.weight")):
        fit_to_model(converted, Model(3), ("a", "b"), {}, "ck.pth", "test/tv")
