"""Datasets, transforms, samplers and data loaders (registered as a built-in plugin).

Public entry points: :func:`core.data.loader.build_dataloader` and the components registered
by :mod:`core.data.plugin` (stages ``dataset`` and ``transform``).
"""
