import pytest

from core.errors import ConfigError
from core.plugins import get_registries

EXPECTED = {
    "backbone": {"ResNet", "TinyNet"},
    "neck": {"FPN"},
    "prior_generator": {"AnchorGenerator"},
    "assigner": {"MaxIoUAssigner"},
    "sampler": {"PseudoSampler", "RandomSampler"},
    "coder": {"DeltaXYWHBBoxCoder"},
    "loss": {"FocalLoss", "CrossEntropyLoss", "L1Loss", "SmoothL1Loss", "GIoULoss"},
}


def test_parts_are_registered_by_the_builtin_plugin():
    registries = get_registries()
    for stage, names in EXPECTED.items():
        assert names <= set(registries[stage].names())
        for name in names:
            assert registries[stage].get(name).origin.plugin == "core.models.plugin"


def test_parts_build_from_tables_with_checked_types():
    registries = get_registries()
    fpn = registries.build(
        "neck",
        {"type": "FPN", "in_channels": [8, 16], "num_outs": 3, "add_extra_convs": "on_output"},
        path="model.neck",
    )
    assert fpn.num_outs == 3
    with pytest.raises(ConfigError, match=r"model\.backbone\.depth: expected int"):
        registries.build("backbone", {"type": "ResNet", "depth": "fifty"}, path="model.backbone")
    with pytest.raises(ConfigError, match=r"model\.neck\.add_extra_convs"):
        registries.build(
            "neck", {"type": "FPN", "in_channels": [8], "add_extra_convs": "yes"}, path="model.neck"
        )
    with pytest.raises(ConfigError, match="did you mean 'FocalLoss'"):
        registries.build("loss", {"type": "FocalLos"}, path="model.head.loss_cls")
