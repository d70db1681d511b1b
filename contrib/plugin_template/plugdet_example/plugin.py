"""Hook implementations: what this distribution adds to each plugdet stage."""

from core.api import impl
from plugdet_example.components import (
    ExampleChannelMapper,
    ExampleConvNet,
    ExampleInvert,
    ExampleL1Loss,
)


@impl
def register_backbones(register):
    register("ExampleConvNet", ExampleConvNet)


@impl
def register_necks(register):
    register("ExampleChannelMapper", ExampleChannelMapper)


@impl
def register_losses(register):
    register("ExampleL1Loss", ExampleL1Loss)


@impl
def register_transforms(register):
    register("ExampleInvert", ExampleInvert)
