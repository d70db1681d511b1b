"""The Visualizer: draws on images and sends scalars, images and configs to vis backends.

One Visualizer per run is created with :meth:`Visualizer.get_instance` and reached from
anywhere (hooks, tools, models' callers) with :meth:`Visualizer.get_current_instance`::

    vis = Visualizer.get_instance("run", vis_backends=[{"type": "LocalVisBackend"}],
                                  save_dir="work_dirs/exp")
    vis.add_scalars({"loss": 0.5}, step=10)
    image = vis.set_image(img).draw_bboxes(boxes, edge_colors="r").get_image()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from core.errors import ConfigError
from core.masks import PolygonMasks
from core.structures import DetSample, Instances
from core.visualization.backends.base import BaseVisBackend
from core.visualization.canvas import Canvas, as_image, to_numpy
from core.visualization.colors import class_color
from core.visualization.featmap import draw_featmap

_LABEL_BOX = {"facecolor": "black", "alpha": 0.85, "pad": 1.0, "edgecolor": "none"}
#: White pixels between the ground-truth and the prediction panel of add_datasample.
PANEL_GAP_PX = 4
#: Opacity of instance masks (bitmaps and polygon fills) in the class colour.
MASK_ALPHA = 0.5


def _scalar(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


class Visualizer(Canvas):
    """Drawing canvas (see :class:`~core.visualization.canvas.Canvas`) plus named vis backends.

    :param name: instance name used by :meth:`get_instance`.
    :param image: optional first image to draw on.
    :param vis_backends: backend config tables (``{"type": "LocalVisBackend", "name": ...}``;
        ``name`` defaults to ``type``) or already built backends. Tables are built through the
        ``vis_backend`` registry with ``save_dir`` passed in.
    :param save_dir: the run's work dir, required when ``vis_backends`` holds tables.
    """

    _instances: ClassVar[dict[str, Visualizer]] = {}
    _current_name: ClassVar[str | None] = None

    def __init__(
        self,
        name: str = "visualizer",
        image: Any | None = None,
        vis_backends: Sequence[dict[str, Any] | BaseVisBackend] | None = None,
        save_dir: str | None = None,
    ) -> None:
        super().__init__(image)
        self.name = name
        self.save_dir = save_dir
        self._backends: dict[str, BaseVisBackend] = {}
        for index, entry in enumerate(vis_backends or []):
            backend_name, backend = self._build_backend(entry, index, save_dir)
            if backend_name in self._backends:
                raise ConfigError(
                    f"vis_backends[{index}]: a second backend named {backend_name!r}; "
                    "set a distinct `name` for it"
                )
            self.add_backend(backend_name, backend)

    @staticmethod
    def _build_backend(
        entry: dict[str, Any] | BaseVisBackend, index: int, save_dir: str | None
    ) -> tuple[str, BaseVisBackend]:
        if isinstance(entry, BaseVisBackend):
            return type(entry).__name__, entry
        path = f"vis_backends[{index}]"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{path}: expected a table with a `type` key, got {entry!r}")
        if save_dir is None:
            raise ConfigError(f"{path}: the Visualizer needs save_dir to build vis backends")
        from core.plugins import get_registries

        table = dict(entry)
        name = str(table.pop("name", table["type"]))
        table.setdefault("save_dir", str(save_dir))
        return name, get_registries().build("vis_backend", table, path=path)

    # ---- instances ---------------------------------------------------------------------

    @classmethod
    def get_instance(cls, name: str, **kwargs: Any) -> Visualizer:
        """The instance called ``name``, created with ``kwargs`` if it does not exist yet.

        The returned instance becomes the current one. ``kwargs`` are ignored when the
        instance exists already.
        """
        instance = Visualizer._instances.get(name)
        if instance is None:
            instance = cls(name=name, **kwargs)
            Visualizer._instances[name] = instance
        Visualizer._current_name = name
        return instance

    @classmethod
    def get_current_instance(cls) -> Visualizer:
        """The instance most recently created or fetched with :meth:`get_instance`."""
        name = Visualizer._current_name
        if name is None or name not in Visualizer._instances:
            raise RuntimeError(
                "no Visualizer exists yet: create one with Visualizer.get_instance(name, ...)"
            )
        return Visualizer._instances[name]

    @classmethod
    def has_instance(cls, name: str) -> bool:
        """Whether an instance called ``name`` exists."""
        return name in Visualizer._instances

    # ---- backends ----------------------------------------------------------------------

    @property
    def backends(self) -> dict[str, BaseVisBackend]:
        """The backends by name (a copy)."""
        return dict(self._backends)

    def add_backend(self, name: str, backend: BaseVisBackend) -> None:
        """Attach an already built backend under ``name`` (unique per Visualizer)."""
        if name in self._backends:
            raise ValueError(f"a vis backend named {name!r} exists already")
        self._backends[name] = backend

    def get_backend(self, name: str) -> BaseVisBackend:
        """The backend called ``name``; ``.experiment`` on it gives the native object."""
        if name not in self._backends:
            raise KeyError(f"no vis backend named {name!r}; have {sorted(self._backends)}")
        return self._backends[name]

    def add_config(self, config: dict[str, Any]) -> None:
        """Send the merged run config (plain nested dicts) to every backend."""
        for backend in self._backends.values():
            backend.add_config(config)

    def add_scalar(self, name: str, value: Any, step: int = 0) -> None:
        """Send one scalar (number, 0-d tensor or array) to every backend."""
        for backend in self._backends.values():
            backend.add_scalar(name, _scalar(value), step)

    def add_scalars(self, scalars: dict[str, Any], step: int = 0) -> None:
        """Send several scalars of one step to every backend."""
        values = {key: _scalar(value) for key, value in scalars.items()}
        for backend in self._backends.values():
            backend.add_scalars(values, step)

    def add_image(self, name: str, image: Any, step: int = 0) -> None:
        """Send an image (``(H, W, 3)`` uint8 array or ``(C, H, W)`` uint8 tensor)."""
        rgb = as_image(image)
        for backend in self._backends.values():
            backend.add_image(name, rgb, step)

    def add_histogram(self, name: str, values: Any, step: int = 0) -> None:
        """Send the distribution of ``values`` (any shape) to backends that keep histograms."""
        data = values.detach().cpu() if isinstance(values, torch.Tensor) else to_numpy(values)
        for backend in self._backends.values():
            backend.add_histogram(name, data, step)

    def add_text(self, name: str, text: str, step: int = 0) -> None:
        """Send free text (environment info, notes) to backends that keep text."""
        for backend in self._backends.values():
            backend.add_text(name, text, step)

    def add_graph(self, model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        """Send the graph of ``model`` traced on ``inputs`` to backends that keep graphs."""
        for backend in self._backends.values():
            backend.add_graph(model, inputs)

    def watch_model(self, model: nn.Module) -> None:
        """Let backends with native model tracking (wandb ``watch``) follow ``model``."""
        for backend in self._backends.values():
            backend.watch(model)

    def close(self) -> None:
        """Close every backend and forget this instance (its name may be reused)."""
        for backend in self._backends.values():
            backend.close()
        super().close()
        if Visualizer._instances.get(self.name) is self:
            del Visualizer._instances[self.name]
            if Visualizer._current_name == self.name:
                remaining = list(Visualizer._instances)
                Visualizer._current_name = remaining[-1] if remaining else None

    # ---- detection drawing -------------------------------------------------------------

    draw_featmap = staticmethod(draw_featmap)

    def draw_instances(
        self,
        image: Any,
        instances: Instances,
        classes: Sequence[str],
        score_thr: float = 0.0,
        line_width: float = 2,
    ) -> np.ndarray:
        """Draw masks, boxes and ``class score`` labels in class colours; returns the image.

        :param instances: ``boxes (N, 4)`` xyxy in the pixels of ``image``, ``labels (N,)``,
            optional ``scores (N,)`` and ``masks``: ``(N, H, W)`` bool bitmaps of ``image``'s
            size (predictions), blended in, or :class:`~core.masks.PolygonMasks` in its
            pixels (ground truth), filled and outlined. Instances scoring below ``score_thr``
            are left out.
        """
        self.set_image(image)
        instances = instances.to("cpu")
        if instances.scores is not None:
            instances = instances[instances.scores >= score_thr]
            # ascending scores: the most confident box and label are drawn last, on top
            instances = instances[torch.argsort(instances.scores, stable=True)]
        if len(instances) == 0:
            return self.get_image()
        labels = instances.labels.tolist()
        for label in labels:
            if not 0 <= label < len(classes):
                raise ValueError(f"label {label} is outside the {len(classes)} classes {classes}")
        colors = [class_color(label) for label in labels]
        if instances.masks is not None:
            self._draw_masks(instances.masks, colors, line_width)
        self.draw_bboxes(instances.boxes, edge_colors=colors, line_widths=line_width)
        texts = [classes[label] for label in labels]
        if instances.scores is not None:
            texts = [f"{t} {s:.2f}" for t, s in zip(texts, instances.scores.tolist(), strict=True)]
        font_size = max(8.0, min(self.height, self.width) / 40)
        positions = instances.boxes[:, :2].clone()
        above = positions[:, 1] >= font_size + 2
        self.draw_texts(
            texts,
            positions,
            font_sizes=font_size,
            colors="white",
            vertical_alignments=["bottom" if a else "top" for a in above.tolist()],
            bboxes=[dict(_LABEL_BOX, facecolor=tuple(c / 255 for c in color)) for color in colors],
        )
        return self.get_image()

    def _draw_masks(self, masks: Tensor | PolygonMasks, colors: list[tuple[int, int, int]],
                    line_width: float) -> None:
        """Bitmaps blended in at :data:`MASK_ALPHA`; polygons filled at :data:`MASK_ALPHA`
        and outlined (half ``line_width``), each part of an instance in its colour."""
        if isinstance(masks, Tensor):
            self.draw_binary_masks(masks, colors=colors, alphas=MASK_ALPHA)
            return
        parts = [(part, color) for instance, color in zip(masks.polygons, colors, strict=True)
                 for part in instance if len(part) >= 3]
        if not parts:
            return
        polygons = [part for part, _ in parts]
        part_colors = [color for _, color in parts]
        self.draw_polygons(polygons, edge_colors="none", face_colors=part_colors,
                           alpha=MASK_ALPHA)
        self.draw_polygons(polygons, edge_colors=part_colors, line_widths=line_width / 2,
                           alpha=1.0)

    def add_datasample(
        self,
        name: str,
        image: Any,
        sample: DetSample,
        classes: Sequence[str],
        step: int = 0,
        draw_gt: bool = True,
        draw_pred: bool = True,
        score_thr: float = 0.3,
        out_file: str | None = None,
    ) -> np.ndarray:
        """Draw ground truth (left) and predictions (right) side by side and send the image.

        :param image: the ORIGINAL image (``sample.ori_shape``), ``(H, W, 3)`` uint8 RGB or
            ``(3, H, W)`` uint8 tensor; ``sample.gt`` is mapped back to it
            (:meth:`DetSample.instances_to_original`, polygon masks included), ``sample.pred``
            is in original coordinates already; masks are drawn where the instances have
            them (see :meth:`draw_instances`).
        :param score_thr: predictions scoring below it are not drawn.
        :param out_file: also save the drawn image there as PNG.
        :returns: ``(H, W * panels + gap, 3)`` uint8 RGB, ``panels`` = number of drawn parts,
            ``gap`` = :data:`PANEL_GAP_PX` white columns between two panels.
        """
        rgb = as_image(image)
        if tuple(sample.ori_shape) not in ((0, 0), rgb.shape[:2]):
            raise ValueError(
                f"sample img_id={sample.img_id} ({sample.img_path}): image is {rgb.shape[:2]} "
                f"but ori_shape is {tuple(sample.ori_shape)}; pass the original image"
            )
        panels = []
        if draw_gt:
            gt = sample.instances_to_original(sample.gt.to("cpu"))
            panels.append(self.draw_instances(rgb, gt, classes))
        if draw_pred:
            if sample.pred is None:
                raise ValueError(
                    f"sample img_id={sample.img_id} ({sample.img_path}) has no predictions; "
                    "set draw_pred=False or run the model first"
                )
            panels.append(self.draw_instances(rgb, sample.pred, classes, score_thr=score_thr))
        if not panels:
            raise ValueError("add_datasample: draw_gt and draw_pred are both False")
        if len(panels) == 2:
            gap = np.full((rgb.shape[0], PANEL_GAP_PX, 3), 255, np.uint8)
            panels.insert(1, gap)
        drawn = np.concatenate(panels, axis=1)
        if out_file is not None:
            Path(out_file).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(drawn).save(out_file)
        self.add_image(name, drawn, step)
        return drawn
