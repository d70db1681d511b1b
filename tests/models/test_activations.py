"""InferenceInPlaceSiLU: nn.SiLU's values and gradients, in place only where autograd does
not record, and no copy of its input in training (the cost of an in-place SiLU there)."""

from __future__ import annotations

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from core.api import SPPF, InferenceInPlaceSiLU


def clone_calls(module: nn.Module, x: torch.Tensor) -> int:
    """Copies made by SiLU ops (``aten::clone`` called from ``aten::silu*``) in one training
    forward and backward of ``module``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        module(x).sum().backward()
    return sum(1 for event in prof.events() if event.name == "aten::clone"
               and event.cpu_parent is not None and event.cpu_parent.name.startswith("aten::silu"))


def test_values_and_gradients_equal_torch_silu_and_the_input_is_kept() -> None:
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    reference_input = x.detach().clone().requires_grad_(True)
    out = InferenceInPlaceSiLU()(x)
    expected = nn.SiLU()(reference_input)
    out.backward(torch.ones_like(out))
    expected.backward(torch.ones_like(expected))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(x.grad, reference_input.grad, rtol=0, atol=0)
    torch.testing.assert_close(x.detach(), reference_input.detach(), rtol=0, atol=0)
    assert out.data_ptr() != x.data_ptr()


def test_in_place_where_autograd_records_nothing() -> None:
    x = torch.randn(4, 8)
    expected = x * torch.sigmoid(x)
    out = InferenceInPlaceSiLU()(x)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(out, expected)
    weight = torch.randn(8, 8, requires_grad=True)
    with torch.no_grad():
        hidden = x @ weight
        assert InferenceInPlaceSiLU()(hidden).data_ptr() == hidden.data_ptr()


def test_a_training_step_of_conv_bn_silu_copies_no_activation() -> None:
    x = torch.randn(2, 4, 16, 16)
    layer = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          InferenceInPlaceSiLU())
    in_place = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                             nn.SiLU(inplace=True))
    assert clone_calls(in_place, x) == 1  # what the class avoids
    assert clone_calls(layer, x) == 0


def test_sppf_and_the_yolo_blocks_use_it() -> None:
    from plugdet_yolo.cspnext import CSPNeXtBlock
    from plugdet_yolo.layers import ConvBNSiLU

    x = torch.randn(2, 8, 16, 16)
    for module in (SPPF(8, 8), ConvBNSiLU(8, 8, 3), CSPNeXtBlock(8, 8)):
        assert not any(isinstance(m, nn.SiLU) for m in module.modules()), type(module)
        assert clone_calls(module, x) == 0, type(module)
