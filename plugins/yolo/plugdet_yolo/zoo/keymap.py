"""Key maps: plugdet's state-dict names -> a peer framework's, written as data.

A map is a table of module prefixes (a plugdet module path -> the peer's path of the same
module) and the names of the modules inside them (``main_conv`` -> ``cv1``); parameter and
buffer names (``weight``, ``bias``, ``running_mean``, ...) are the same on both sides. A
key takes the longest prefix of its module path found in the table.

Two module shapes are named structurally, alike by every peer: a conv-BN(-activation)
``nn.Sequential`` (:class:`~plugdet_yolo.layers.ConvBNSiLU`, core's SPP convs) has
children ``0`` / ``1``, which the peers call ``conv`` / ``bn``; RTMDet's
:class:`~plugdet_yolo.cspnext.DepthwiseSeparableConv` has ``0`` / ``1`` (the depthwise conv
and its BN) and ``3`` (the pointwise conv-BN), MMYOLO's ``depthwise_conv.conv`` /
``depthwise_conv.bn`` / ``pointwise_conv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs
from torch import Tensor, nn

from plugdet_yolo.cspnext import DepthwiseSeparableConv

CONV_BN_CHILDREN = {"0": "conv", "1": "bn"}
DEPTHWISE_CHILDREN = {"0": "depthwise_conv.conv", "1": "depthwise_conv.bn", "3": "pointwise_conv"}


class TensorTransform(Protocol):
    """A peer tensor -> plugdet's layout of the same parameter."""

    def peer_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The peer's shape of a plugdet parameter of ``shape``."""

    def __call__(self, tensor: Tensor) -> Tensor:
        """The peer's tensor in plugdet's layout."""


@attrs.frozen
class FocusStemWeight:
    """YOLOX's Focus stem (2 x 2 space-to-depth, the patches concatenated as top-left,
    bottom-left, top-right, bottom-right, then a ``k x k`` conv on ``4 C`` channels) as the
    stride-2 ``2k x 2k`` conv (padding ``k - 1``) that plugdet's YOLOX backbone uses: the same
    products per output pixel, so ``(O, 4C, k, k) -> (O, C, 2k, 2k)`` is a reordering."""

    def peer_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        out, channels, height, width = shape
        return (out, 4 * channels, height // 2, width // 2)

    def __call__(self, tensor: Tensor) -> Tensor:
        out, channels4, kernel, _ = tensor.shape
        # patch g = 2 * dx + dy holds the pixels (2 i + dy, 2 j + dx)
        patches = tensor.reshape(out, 2, 2, channels4 // 4, kernel, kernel)  # (O, dx, dy, C, i, j)
        return patches.permute(0, 3, 4, 2, 5, 1).reshape(
            out, channels4 // 4, 2 * kernel, 2 * kernel)


def child_name(parent: nn.Module, name: str, names: Mapping[str, str]) -> str:
    """The peer's name of ``parent``'s child ``name``."""
    if isinstance(parent, DepthwiseSeparableConv):
        return DEPTHWISE_CHILDREN[name]
    if (isinstance(parent, nn.Sequential) and len(parent) > 1
            and isinstance(parent[0], nn.Conv2d) and isinstance(parent[1], nn.BatchNorm2d)):
        return CONV_BN_CHILDREN[name]
    return names.get(name, name)


@attrs.frozen
class KeyMap:
    """How a peer names the state of one plugdet architecture.

    :ivar prefixes: plugdet module path -> the peer's path of that module.
    :ivar names: module names inside the prefixed modules, plugdet -> peer (others are kept).
    :ivar transforms: plugdet key -> the conversion of the peer's tensor, where the layouts
        differ (YOLOX's Focus stem).
    """

    prefixes: Mapping[str, str]
    names: Mapping[str, str] = attrs.field(factory=dict)
    transforms: Mapping[str, TensorTransform] = attrs.field(factory=dict)

    def peer_names(self, model: nn.Module) -> dict[str, str]:
        """``{plugdet key: peer key}`` for every entry of ``model.state_dict()``.

        :raises KeyError: for a module that no prefix covers (the table misses it).
        """
        modules = dict(model.named_modules())
        return {key: self.peer_key(key, modules) for key in model.state_dict()}

    def peer_key(self, key: str, modules: Mapping[str, nn.Module]) -> str:
        """The peer's name of plugdet's ``key``; ``modules`` are the model's named modules."""
        path, _, param = key.rpartition(".")
        tokens = path.split(".")
        for cut in range(len(tokens), 0, -1):
            prefix = ".".join(tokens[:cut])
            if prefix in self.prefixes:
                break
        else:
            raise KeyError(f"{key}: no prefix of the key map covers its module")
        names = [self.prefixes[prefix]]
        parent = modules[prefix]
        for end in range(cut, len(tokens)):
            names.append(child_name(parent, tokens[end], self.names))
            parent = modules[".".join(tokens[:end + 1])]
        return ".".join([*names, param])

    def peer_shape(self, key: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The peer's shape of plugdet's ``key`` of ``shape``."""
        transform = self.transforms.get(key)
        return shape if transform is None else transform.peer_shape(shape)

    def to_plugdet(self, key: str, tensor: Tensor) -> Tensor:
        """The peer's tensor of plugdet's ``key`` in plugdet's layout."""
        transform = self.transforms.get(key)
        return tensor if transform is None else transform(tensor)
