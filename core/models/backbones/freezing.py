"""Backbones whose first stages stay frozen: in eval mode and without gradients."""

from __future__ import annotations

import abc

from torch import nn


class FreezableBackbone(nn.Module, metaclass=abc.ABCMeta):
    """A backbone that keeps :meth:`frozen_modules` in eval mode, without gradients, when it is
    built and whenever its mode switches."""

    @abc.abstractmethod
    def frozen_modules(self) -> list[nn.Module]:
        """The modules to keep frozen (the stem and the first stages)."""

    def freeze_stages(self) -> None:
        """Put :meth:`frozen_modules` in eval mode and stop their parameters' gradients."""
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> FreezableBackbone:
        """Switch mode, keeping the frozen modules in eval mode."""
        super().train(mode)
        self.freeze_stages()
        return self
