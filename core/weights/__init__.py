"""Pretrained weights of plugdet and of other frameworks (torchvision, MMDetection, MMYOLO,
ultralytics, YOLOv5, safetensors files): reading them without running their code
(:mod:`~core.weights.checkpoint`, :mod:`~core.weights.safe_pickle`), fitting a converted
checkpoint to a model with other classes (:mod:`~core.weights.fitting`) and ``load_from``
(:mod:`~core.weights.loading`). The converters of each architecture are plugins of the stage
``weight_converter``. See ``docs/pretrained.md``.
"""
