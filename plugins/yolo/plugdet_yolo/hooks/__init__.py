"""Runner hooks of the YOLO recipes (engine code: unlike the model modules, these import
``core.engine``)."""

from plugdet_yolo.hooks.mode_switch import ModeSwitchHook

__all__ = ["ModeSwitchHook"]
