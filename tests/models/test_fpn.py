import pytest
import torch
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from core.errors import ConfigError
from core.models.necks import FPN

IN_CHANNELS = [8, 16, 32]


def inputs():
    generator = torch.Generator().manual_seed(0)
    return tuple(
        torch.randn(2, c, 32 // 2**i, 40 // 2**i, generator=generator)
        for i, c in enumerate(IN_CHANNELS)
    )


@pytest.mark.parametrize("extra", [False, "on_input", "on_output"])
def test_output_shapes(extra):
    outs = FPN(IN_CHANNELS, 12, num_outs=5, add_extra_convs=extra)(inputs())
    assert [tuple(o.shape) for o in outs] == [
        (2, 12, 32, 40),
        (2, 12, 16, 20),
        (2, 12, 8, 10),
        (2, 12, 4, 5),
        (2, 12, 2, 3),
    ]


def test_start_level_skips_inputs():
    outs = FPN(IN_CHANNELS, 12, num_outs=3, start_level=1, add_extra_convs="on_input")(inputs())
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 20), (8, 10), (4, 5)]


@pytest.mark.parametrize(("extra", "p6_in"), [("on_output", 12), ("on_input", 32)])
def test_equals_torchvision_fpn_with_p6p7(extra, p6_in):
    ours = FPN(IN_CHANNELS, 12, num_outs=5, add_extra_convs=extra, relu_before_extra_convs=True)
    theirs = FeaturePyramidNetwork(IN_CHANNELS, 12, extra_blocks=LastLevelP6P7(p6_in, 12))
    with torch.no_grad():
        for i in range(3):
            ours.lateral_convs[i].load_state_dict(theirs.inner_blocks[i][0].state_dict())
            ours.fpn_convs[i].load_state_dict(theirs.layer_blocks[i][0].state_dict())
        ours.extra_convs[0].load_state_dict(theirs.extra_blocks.p6.state_dict())
        ours.extra_convs[1].load_state_dict(theirs.extra_blocks.p7.state_dict())
        x = inputs()
        expected = list(theirs({str(i): t for i, t in enumerate(x)}).values())
        for got, want in zip(ours(x), expected, strict=True):
            torch.testing.assert_close(got, want)


def test_argument_errors():
    with pytest.raises(ConfigError, match="num_outs"):
        FPN(IN_CHANNELS, 12, num_outs=2)
    with pytest.raises(ConfigError, match="start_level"):
        FPN(IN_CHANNELS, 12, start_level=3)
