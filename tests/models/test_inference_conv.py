"""conv_forward: the fused oneDNN convolution (+ ReLU) of float32 CPU inference equals
``relu(conv(x))``, is taken only where nothing can tell it apart, and sees weight changes."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.api import conv_forward
from core.models.inference_conv import fusable

pytestmark = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available()
         and hasattr(torch.ops.mkldnn, "_convolution_pointwise")),
    reason="this PyTorch build has no oneDNN fused convolution (conv_forward stays plain)")

CONVS = {
    "3x3": dict(in_channels=16, out_channels=24, kernel_size=3, padding=1),
    "1x1 no bias": dict(in_channels=16, out_channels=8, kernel_size=1, bias=False),
    "stride 2": dict(in_channels=16, out_channels=16, kernel_size=3, stride=2, padding=1),
    "groups": dict(in_channels=16, out_channels=32, kernel_size=3, padding=1, groups=4),
    "dilation": dict(in_channels=16, out_channels=16, kernel_size=3, padding=2, dilation=2),
}


def channels_last_input(seed: int, shape=(2, 16, 13, 11)) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last)


def counted(conv: nn.Conv2d) -> list[int]:
    """A list whose length is the number of times ``conv``'s own forward ran."""
    calls: list[int] = []
    conv.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("name", CONVS)
def test_the_fused_path_equals_conv_then_relu(name, relu):
    torch.manual_seed(0)
    conv = nn.Conv2d(**CONVS[name]).to(memory_format=torch.channels_last)
    x = channels_last_input(1)
    calls = counted(conv)
    with torch.no_grad():
        expected = conv(x)
        if relu:
            expected = F.relu(expected)
        assert fusable(conv, x)
        got = conv_forward(conv, x, relu=relu)
    assert len(calls) == 1  # the fused call does not go through the module's forward
    assert got.shape == expected.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    if relu:
        assert (got >= 0).all() and (got == 0).any()


def test_everything_else_takes_the_module_path():
    torch.manual_seed(0)
    conv = nn.Conv2d(**CONVS["3x3"])
    x = channels_last_input(2)
    calls = counted(conv)
    out = conv_forward(conv, x.requires_grad_(), relu=True)  # gradients recorded
    out.sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
    with torch.no_grad():
        assert not fusable(conv, x.detach().contiguous())  # NCHW
        assert not fusable(conv, x.detach().double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not fusable(conv, x.detach())
            assert conv_forward(conv, x.detach()).dtype == torch.bfloat16
    assert len(calls) == 2


def test_a_traced_model_records_the_plain_convolution():
    torch.manual_seed(0)
    conv = nn.Conv2d(**CONVS["3x3"]).to(memory_format=torch.channels_last)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return conv_forward(self.conv, x, relu=True)

    with torch.no_grad():
        traced = torch.jit.trace(Block(), channels_last_input(3))
    graph = str(traced.inlined_graph)
    assert "mkldnn" not in graph
    assert "aten::_convolution" in graph and "aten::relu" in graph


def test_weight_changes_are_seen_and_copies_stay_plain():
    torch.manual_seed(0)
    conv = nn.Conv2d(**CONVS["3x3"]).to(memory_format=torch.channels_last)
    x = channels_last_input(4)
    with torch.no_grad():
        first = conv_forward(conv, x)
        conv.weight.mul_(2.0)  # an optimizer step: same tensor, new version
        torch.testing.assert_close(conv_forward(conv, x), conv(x), rtol=1e-4, atol=1e-5)
        other = nn.Conv2d(**CONVS["3x3"])
        conv.load_state_dict(other.state_dict())
        torch.testing.assert_close(conv_forward(conv, x), other(x), rtol=1e-4, atol=1e-5)
        conv.weight = nn.Parameter(torch.zeros_like(conv.weight))  # a new tensor
        torch.testing.assert_close(conv_forward(conv, x),
                                   conv.bias.view(1, -1, 1, 1).expand_as(first))
    twin = copy.deepcopy(conv)
    assert set(twin.state_dict()) == {"weight", "bias"}
    with torch.no_grad():
        torch.testing.assert_close(conv_forward(twin, x), conv_forward(conv, x))
