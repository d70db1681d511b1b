"""``load_from`` with another framework's file: the registered converter of its source that
accepts it, class rows fitted to the dataset's classes and one log line; ``plugdet weights``
lists, describes and converts; a converted file loads back key for key."""

from __future__ import annotations

import functools
import logging
import re

import pytest
import torch
from engine_toy import ToyDetector, ToyPlugin, toy_config, write_config

import core.plugins
from core import impl
from core.engine.checkpoint import load_checkpoint
from core.engine.runner import Runner
from core.errors import CheckpointError, ConfigError
from core.hookspecs import Register
from core.tools.weights import main as weights_main
from core.weights.checkpoint import (
    ClassRows,
    ConvertedState,
    PeerCheckpoint,
    read_checkpoint,
    require_keys,
)
from core.weights.loading import converted_meta, load_pretrained_detector, loads_exactly
from core.weights.safetensors_files import safetensors_bytes

PREFIX = "peer."


class ToyConverter:
    """Reads safetensors files of architecture ``toy``: the toy detector's keys under
    ``peer.``; the head's rows are the classes, then 4 box rows."""

    name = "test/toy"
    source = "safetensors"
    config = "tests/engine/toy.toml"
    licence = "CC0-1.0"

    def accepts(self, checkpoint: PeerCheckpoint, model: torch.nn.Module) -> bool:
        return checkpoint.architecture == "toy" and isinstance(model, ToyDetector)

    def convert(self, checkpoint: PeerCheckpoint, model: torch.nn.Module) -> ConvertedState:
        require_keys(checkpoint, {PREFIX + key for key in model.state_dict()}, what=self.name)
        state = {key[len(PREFIX):]: value for key, value in checkpoint.state.items()}
        rows = {"head.weight": ClassRows(), "head.bias": ClassRows()}
        return ConvertedState(state, rows, checkpoint.classes)


class WeightsPlugin:
    @impl
    def register_weight_converters(self, register: Register) -> None:
        register("test/toy", ToyConverter)


@pytest.fixture(autouse=True)
def toy_plugins(monkeypatch):
    """The toy run's components and the toy converter in the registries."""
    manager = core.plugins.PluginManager().load(
        extra={"toy": ToyPlugin(), "toyweights": WeightsPlugin()})
    monkeypatch.setattr(core.plugins, "get_plugin_manager", functools.cache(lambda: manager))


def peer_file(path, classes, architecture="toy"):
    """A safetensors file of the toy detector's keys under ``peer.``, ``len(classes)`` class
    rows; returns its state."""
    torch.manual_seed(1)
    model = ToyDetector(num_classes=len(classes))
    state = {PREFIX + key: value + torch.rand_like(value.float()).to(value.dtype)
             for key, value in model.state_dict().items()}
    meta = {"architecture": architecture, "classes": list(classes)}
    path.write_bytes(safetensors_bytes(state, meta))
    return state


def _runner(tmp_path, **cfg):
    return Runner.from_config(toy_config(**cfg), work_dir=str(tmp_path / "run"))


def test_load_from_fits_the_class_rows_to_the_dataset_by_name(tmp_path):
    state = peer_file(tmp_path / "toy.safetensors", ("b", "a"))
    runner = _runner(tmp_path, load_from=str(tmp_path / "toy.safetensors"))
    head, peer = runner.model.head.weight, state["peer.head.weight"]
    runner.close()
    assert torch.equal(head[0], peer[1]) and torch.equal(head[1], peer[0])  # a, b
    assert torch.equal(head[2:], peer[2:])  # the box rows
    assert torch.equal(runner.model.backbone[0].weight, state["peer.backbone.0.weight"])
    log = (tmp_path / "run" / "train.log").read_text()
    assert ("load_from toy.safetensors (test/toy): 9 tensors loaded; class rows kept: "
            "a <- a, b <- b") in log


def test_load_from_class_map_keeps_rows_of_other_spellings(tmp_path):
    state = peer_file(tmp_path / "toy.safetensors", ("b", "alpha", "gamma"))
    runner = _runner(tmp_path, load_from=str(tmp_path / "toy.safetensors"),
                     load_from_class_map={"a": "alpha"})
    head, peer = runner.model.head.weight, state["peer.head.weight"]
    runner.close()
    assert torch.equal(head[0], peer[1]) and torch.equal(head[1], peer[0])
    assert torch.equal(head[2:], peer[3:])
    assert "class rows kept: a <- alpha, b <- b" in (tmp_path / "run" / "train.log").read_text()


def test_a_file_no_converter_accepts_names_the_converters_of_its_source(tmp_path):
    peer_file(tmp_path / "other.safetensors", ("a", "b"), architecture="other")
    with pytest.raises(CheckpointError) as info:
        _runner(tmp_path, load_from=str(tmp_path / "other.safetensors"))
    assert str(info.value) == (
        f"no weight converter reads {tmp_path}/other.safetensors (safetensors other) into "
        "ToyDetector (head Conv2d); converters of safetensors files: test/toy (`plugdet "
        "weights list` lists them with the configs that build their models)")


def test_a_class_map_without_load_from_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="load_from_class_map: maps the classes of a "
                                          "load_from checkpoint, but load_from is not set"):
        _runner(tmp_path, load_from_class_map={"a": "b"})
    with pytest.raises(ConfigError, match=re.escape("load_from_class_map.a: expected str, got 3")):
        _runner(tmp_path, load_from="x.pth", load_from_class_map={"a": 3})


def test_weights_list_and_inspect(tmp_path, capsys):
    assert weights_main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "  test/toy" in listing and "source safetensors" in listing
    assert "licence CC0-1.0" in listing and "config tests/engine/toy.toml" in listing
    peer_file(tmp_path / "toy.safetensors", ("b", "a"))
    assert weights_main(["inspect", str(tmp_path / "toy.safetensors")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(tmp_path / "toy.safetensors"),
        "  source: safetensors",
        "  architecture: toy",
        "  classes: 2 (b, a)",
        "  tensors: 9",
        "  parameters: 150 (floating-point values, BatchNorm statistics left out)",
        "  converters of safetensors files: test/toy"]
    assert weights_main(["inspect", str(tmp_path / "none.pt")]) == 2
    assert capsys.readouterr().err.strip() == \
        f"error: checkpoint file not found: {tmp_path}/none.pt"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_converted_file_loads_back_key_for_key_and_refits_other_classes(tmp_path, suffix,
                                                                           capsys):
    state = peer_file(tmp_path / "toy.safetensors", ("a", "b"))
    config = write_config(tmp_path / "toy.toml", toy_config())
    out = tmp_path / f"converted{suffix}"
    assert weights_main(["convert", str(tmp_path / "toy.safetensors"), "--config", str(config),
                         "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out} (9 tensors)"
    converted = read_checkpoint(out)
    assert (converted.source, converted.architecture) == ("plugdet", "toy")
    assert converted.meta["class_rows"] == {"head.bias": [1, None, 0, 1],
                                            "head.weight": [1, None, 0, 1]}
    runner = _runner(tmp_path, load_from=str(out))
    runner.close()
    assert f"loaded weights from {out}" in (tmp_path / "run" / "train.log").read_text()
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, state[PREFIX + key]), key
    weights = load_checkpoint(out)["state_dict"]  # as `plugdet test`, predict and export read
    assert all(torch.equal(weights[key], state[PREFIX + key]) for key in weights)
    # the toy dataset names no classes in its config: the file records none and loads as is
    assert converted.classes is None


def test_a_converted_file_with_classes_refits_them_by_name(tmp_path):
    peer_file(tmp_path / "toy.safetensors", ("a", "b"))
    peer = read_checkpoint(tmp_path / "toy.safetensors")
    model = ToyDetector(num_classes=2)
    logger = logging.getLogger("test.weights")
    load_pretrained_detector(model, peer, ("a", "b"), None, logger)
    rows = {"head.weight": ClassRows(), "head.bias": ClassRows()}
    out = tmp_path / "converted.safetensors"
    out.write_bytes(safetensors_bytes(model.state_dict(),
                                      converted_meta(("a", "b"), rows, peer, "test/toy")))
    assert not loads_exactly(read_checkpoint(out), ("b", "a"))
    swapped = ToyDetector(num_classes=2)
    report = load_pretrained_detector(swapped, str(out), ("b", "a"), None, logger)
    assert report.origin == "plugdet" and report.kept == (("b", "b"), ("a", "a"))
    assert torch.equal(swapped.head.weight[0], model.head.weight[1])
    assert torch.equal(swapped.head.weight[1], model.head.weight[0])
