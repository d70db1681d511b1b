"""Convolution (+ ReLU) for float32 inference on a CPU as one oneDNN call with a packed weight.

PyTorch's CPU convolution reorders its weight into oneDNN's blocked layout on every call, and
a ReLU after it is a second pass over the output. When nothing records gradients, the input
is float32 channels-last on the CPU and no autocast or export trace is active,
:func:`conv_forward` runs the same oneDNN convolution with the ReLU applied as it writes the
output (a post-op) and the weight reordered once and kept until it changes: the same float32
sums, fewer passes. Otherwise it is exactly ``relu(conv(x))`` (or ``conv(x)``).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Per convolution: (weight identity, storage and version; packed weight). Kept outside the
#: module so that ``deepcopy``, pickling and ``state_dict`` never see a oneDNN tensor.
_PACKED: weakref.WeakKeyDictionary[nn.Conv2d, tuple[tuple[int, int, int], Tensor]] = (
    weakref.WeakKeyDictionary())
_FUSED_AVAILABLE = bool(torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
                        and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def fusable(conv: nn.Conv2d, x: Tensor) -> bool:
    """Whether :func:`conv_forward` takes the fused oneDNN path for ``conv`` on ``x``."""
    return (_FUSED_AVAILABLE and not torch.is_grad_enabled()
            and x.device.type == "cpu" and x.dtype == torch.float32
            and conv.weight.dtype == torch.float32 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and not torch.is_autocast_enabled("cpu")
            and not torch.jit.is_tracing()  # type: ignore[attr-defined,no-untyped-call]
            and not torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling())


def conv_forward(conv: nn.Conv2d, x: Tensor, relu: bool = False) -> Tensor:
    """``relu(conv(x))`` when ``relu``, else ``conv(x)``; fused (see the module) where
    :func:`fusable`.

    :param x: ``(B, in_channels, H, W)``.
    :returns: ``(B, out_channels, H', W')`` (channels-last on the fused path)."""
    if not fusable(conv, x):
        out = conv(x)
        return F.relu(out, inplace=True) if relu else out
    fused: Tensor = torch.ops.mkldnn._convolution_pointwise(
        x, _packed_weight(conv, x), conv.bias, list(conv.padding), list(conv.stride),
        list(conv.dilation), conv.groups, "relu" if relu else "none", [None], "")
    return fused


def _packed_weight(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv``'s weight in oneDNN's layout for inputs like ``x``, reordered again only when
    the weight tensor or its contents changed (optimizer step, ``load_state_dict``)."""
    weight = conv.weight
    key = (id(weight), weight.data_ptr(), weight._version)
    cached = _PACKED.get(conv)
    if cached is not None and cached[0] == key:
        return cached[1]
    packed = torch._C._nn.mkldnn_reorder_conv2d_weight(  # type: ignore[call-arg]
        weight.detach().to_mkldnn(), list(conv.padding), list(conv.stride),
        list(conv.dilation), conv.groups, list(x.shape))
    _PACKED[conv] = (key, packed)
    return packed
