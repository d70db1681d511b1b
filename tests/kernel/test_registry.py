"""Registries build components from tables with strict types and dotted-path errors."""

from __future__ import annotations

from typing import Annotated, Literal

import attrs
import pytest

from core import impl
from core.errors import ConfigError, PluginError
from core.registry import component


class Net:
    def __init__(
        self,
        depth: int = 50,
        out_indices: tuple[int, ...] = (1, 2),
        style: Literal["pytorch", "caffe"] = "pytorch",
        width: float = 1.0,
        init: str | None = None,
    ):
        if depth not in (18, 50):
            raise ValueError(f"depth must be 18 or 50, got {depth}")
        self.depth, self.out_indices, self.style, self.width, self.init = (
            depth,
            out_indices,
            style,
            width,
            init,
        )

    def forward(self, images):
        return (images,)


class Detector:
    def __init__(
        self,
        backbone: Annotated[object, component("backbone")],
        extras: Annotated[list[object], component("backbone")] = [],  # noqa: B006
        neck: Annotated[object | None, component("neck")] = None,
        head_cfg: dict = {"type": "unused", "size": 3},  # noqa: B006
    ):
        self.backbone, self.extras, self.neck, self.head_cfg = backbone, extras, neck, head_cfg

    def loss(self, batch):
        return {}

    def predict(self, batch):
        return []


@attrs.define
class Matcher:
    threshold: float = 0.5
    uses_predictions = False

    def assign(self, priors, gt, pred=None):
        return None


class Models:
    @impl
    def register_backbones(self, register):
        register("ResNet", Net)

    @impl
    def register_detectors(self, register):
        register("Detector", Detector)

    @impl
    def register_assigners(self, register):
        register("Matcher", Matcher)


@pytest.fixture
def registries(manager_with):
    return manager_with(models=Models()).registries


def test_build_structures_values_and_nested_components(registries):
    detector = registries.build(
        "detector",
        {
            "type": "Detector",
            "backbone": {"type": "ResNet", "depth": 18, "out_indices": [0, 3], "width": 2},
            "extras": [{"type": "ResNet"}, {"type": "ResNet", "style": "caffe"}],
        },
        "model",
    )
    assert detector.backbone.depth == 18
    assert detector.backbone.out_indices == (0, 3)
    assert detector.backbone.width == 2.0 and isinstance(detector.backbone.width, float)
    assert [e.style for e in detector.extras] == ["pytorch", "caffe"]
    assert detector.neck is None
    assert detector.head_cfg == {"type": "unused", "size": 3}


def test_mutable_defaults_are_not_shared(registries):
    first = registries.build("detector", {"type": "Detector", "backbone": {"type": "ResNet"}})
    first.head_cfg["size"] = 99
    second = registries.build("detector", {"type": "Detector", "backbone": {"type": "ResNet"}})
    assert second.head_cfg["size"] == 3


def test_attrs_class_is_its_own_config(registries):
    matcher = registries.build("assigner", {"type": "Matcher", "threshold": 0.7})
    assert matcher == Matcher(0.7)


@pytest.mark.parametrize(
    ("backbone", "message"),
    [
        (
            {"type": "ResNet", "depth": "fifty"},
            r"backbone\.depth: expected int, got 'fifty'",
        ),
        ({"type": "ResNet", "depth": True}, r"model\.backbone\.depth: expected int, got True"),
        ({"type": "ResNet", "width": "wide"}, r"model\.backbone\.width: expected float"),
        ({"type": "ResNet", "out_indices": [1, "x"]}, r"model\.backbone\.out_indices\[1\]"),
        ({"type": "ResNet", "style": "keras"}, r"model\.backbone\.style: expected one of"),
        ({"type": "ResNet", "deph": 18}, r"model\.backbone: unknown key\(s\) deph; allowed keys"),
        ({"type": "ResNet", "depth": 34}, r"model\.backbone: backbone 'ResNet': depth must be"),
        ({"depth": 18}, r"model\.backbone: missing key 'type'"),
        ({"type": 3}, r"model\.backbone\.type: expected str"),
    ],
)
def test_bad_values_name_the_dotted_path(registries, backbone, message):
    with pytest.raises(ConfigError, match=message):
        registries.build("detector", {"type": "Detector", "backbone": backbone}, "model")


def test_errors_in_list_items_name_the_index(registries):
    cfg = {"type": "Detector", "backbone": {"type": "ResNet"}, "extras": [{}, {"type": "Res"}]}
    with pytest.raises(ConfigError, match=r"model\.extras\[0\]: missing key 'type'"):
        registries.build("detector", cfg, "model")


def test_missing_required_component(registries):
    with pytest.raises(ConfigError, match=r"model\.backbone: required key missing"):
        registries.build("detector", {"type": "Detector"}, "model")


def test_unknown_type_suggests_closest_names_and_other_stages(registries):
    with pytest.raises(ConfigError) as info:
        registries.build("backbone", {"type": "ResNett"}, "model.backbone")
    assert "model.backbone.type: unknown backbone 'ResNett'" in str(info.value)
    assert "did you mean 'ResNet' (from models)" in str(info.value)
    with pytest.raises(ConfigError, match=r"'ResNet' is a backbone from models, not a neck"):
        registries.build("neck", {"type": "ResNet"}, "model.neck")


def test_same_name_twice_names_both_distributions(manager_with):
    class Other:
        @impl
        def register_backbones(self, register):
            register("ResNet", Net)

    with pytest.raises(PluginError, match=r"'ResNet' is registered twice: by models .* by other"):
        manager_with(models=Models(), other=Other())


def test_star_kwargs_factories_are_refused(manager_with):
    def loose(**kwargs):
        return kwargs

    class Loose:
        @impl
        def register_losses(self, register):
            register("Loose", loose)

    registries = manager_with(loose=Loose()).registries
    with pytest.raises(PluginError, match="'Loose': parameter 'kwargs' must be a named keyword"):
        registries.build("loss", {"type": "Loose"})


def test_errors_of_the_factory_keep_their_type(manager_with):
    from core.errors import DataError

    def dataset(ann_file: str = "a.json"):
        raise DataError(f"{ann_file}: annotation file not found")

    class Data:
        @impl
        def register_datasets(self, register):
            register("Broken", dataset)

    registries = manager_with(data=Data()).registries
    with pytest.raises(DataError, match=r"^dataset: b\.json: annotation file not found"):
        registries.build("dataset", {"type": "Broken", "ann_file": "b.json"})
