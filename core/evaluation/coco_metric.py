"""COCO-style box and mask AP with pycocotools (or the faster-coco-eval re-implementation)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from core.errors import ConfigError, DataError
from core.evaluation.records import ImageResult, gather_results, record_from_sample
from core.structures import DetSample

LOGGER = logging.getLogger("plugdet.evaluation")
T = TypeVar("T")

#: Libraries that compute the COCO evaluation: pycocotools (the reference) or
#: faster-coco-eval (the same algorithm in C++; optional extra ``fast-eval``).
Backend = Literal["pycocotools", "faster_coco_eval"]

#: What COCOeval compares: boxes, or instance masks (RLE).
IouType = Literal["bbox", "segm"]

#: COCOeval ``stats`` index of each reported value (the key follows the IoU type).
STAT_INDICES = {"mAP": 0, "mAP_50": 1, "mAP_75": 2, "mAP_s": 3, "mAP_m": 4, "mAP_l": 5,
                "AR_100": 8}


def stat_keys(iou_type: IouType) -> dict[str, int]:
    """``{"<iou_type>_mAP": 0, ...}``: the reported keys of one IoU type and their index."""
    return {f"{iou_type}_{name}": index for name, index in STAT_INDICES.items()}


#: The keys of box AP.
STAT_KEYS = stat_keys("bbox")
#: What the logs call each IoU type.
_TYPE_NAMES = {"bbox": "box", "segm": "mask"}


def _quiet(function: Callable[..., T], *args: Any) -> T:
    """Run a pycocotools call, sending its prints to the debug log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        value = function(*args)
    if buffer.getvalue().strip():
        LOGGER.debug(buffer.getvalue().rstrip())
    return value


def coco_api(backend: Backend) -> tuple[Any, Any]:
    """The ``(COCO, COCOeval)`` classes of ``backend``; faster-coco-eval is imported here, so
    that it is needed only when chosen (a missing package raises :class:`ConfigError`)."""
    if backend not in get_args(Backend):
        raise ConfigError(
            f"CocoMetric: backend {backend!r} is not one of {list(get_args(Backend))}"
        )
    if backend == "pycocotools":
        return COCO, COCOeval
    try:
        from faster_coco_eval import COCO as FastCOCO
        from faster_coco_eval import COCOeval_faster
    except ImportError as exc:
        raise ConfigError(
            'CocoMetric: backend = "faster_coco_eval" needs the faster-coco-eval package '
            f"({exc}); install it with: pip install faster-coco-eval"
        ) from exc
    return FastCOCO, COCOeval_faster


def coco_from_dict(content: dict[str, Any], coco_class: Any = COCO) -> Any:
    """A ``COCO`` object (pycocotools' or ``coco_class``) from an in-memory annotation dict."""
    coco = coco_class()
    coco.dataset = content
    _quiet(coco.createIndex)
    return coco


def _xywh(boxes: np.ndarray) -> np.ndarray:
    out = boxes.astype(np.float64).copy()
    out[:, 2:] -= out[:, :2]
    return out


def _segmentations(result: ImageResult, crowd: bool) -> list[Any] | None:
    """The masks of the ground truth (``crowd``: of the ignore regions) as COCO
    ``segmentation`` values, ``None`` when the record has no ground-truth masks; ignore
    regions without masks of their own are their boxes as rectangles."""
    if result.gt_masks is None:
        return None
    if not crowd:
        return list(result.gt_masks)
    if result.ignore_masks is not None:
        return list(result.ignore_masks)
    return [[[x0, y0, x1, y0, x1, y1, x0, y1]]
            for x0, y0, x1, y1 in result.ignore_boxes.astype(np.float64).tolist()]


def gt_from_results(
    results: list[ImageResult], classes: tuple[str, ...], cat_ids: list[int]
) -> dict[str, Any]:
    """COCO ground-truth dict from the records' ground truth (ignore regions as ``iscrowd``).

    ``area`` is the box's ``w * h``; records with masks add each instance's ``segmentation``
    (RLE; an ignore region without a mask: its box as a polygon)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for result in results:
        images.append({"id": result.img_id, "width": result.width, "height": result.height})
        for boxes, labels, crowd in (
            (result.gt_boxes, result.gt_labels, 0),
            (result.ignore_boxes, result.ignore_labels, 1),
        ):
            masks = _segmentations(result, bool(crowd))
            for index, (box, label) in enumerate(zip(_xywh(boxes), labels, strict=True)):
                annotation = {
                    "id": len(annotations) + 1,
                    "image_id": result.img_id,
                    "category_id": cat_ids[int(label)],
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": crowd,
                }
                if masks is not None:
                    annotation["segmentation"] = masks[index]
                annotations.append(annotation)
    categories = [
        {"id": cat_id, "name": name} for cat_id, name in zip(cat_ids, classes, strict=True)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def _check_label(result: ImageResult, label: Any, cat_ids: list[int]) -> None:
    if not 0 <= int(label) < len(cat_ids):
        raise DataError(
            f"image {result.img_id}: predicted label {int(label)} outside the "
            f"{len(cat_ids)} classes"
        )


def detections_from_results(
    results: list[ImageResult], cat_ids: list[int]
) -> list[dict[str, Any]]:
    """COCO results list: ``{"image_id", "category_id", "bbox" (xywh), "score"}``."""
    detections = []
    for result in results:
        for box, label, score in zip(
            _xywh(result.pred_boxes), result.pred_labels, result.pred_scores, strict=True
        ):
            _check_label(result, label, cat_ids)
            detections.append(
                {
                    "image_id": result.img_id,
                    "category_id": cat_ids[int(label)],
                    "bbox": [round(float(v), 3) for v in box],
                    "score": round(float(score), 5),
                }
            )
    return detections


def segmentations_from_results(
    results: list[ImageResult], cat_ids: list[int]
) -> list[dict[str, Any]]:
    """COCO segmentation results: ``{"image_id", "category_id", "segmentation" (RLE,
    ``counts`` as str), "score"}``.

    Without ``bbox``: ``COCO.loadRes`` then takes each detection's ``area`` (the small /
    medium / large ranges) from its mask, not from a box.

    :raises DataError: an image with predictions but no predicted masks.
    """
    detections = []
    for result in results:
        if result.pred_masks is None:
            if len(result.pred_labels):
                raise DataError(f"image {result.img_id}: the predictions have no masks; "
                                'CocoMetric metric "segm" needs a model that predicts masks')
            continue
        for rle, label, score in zip(
            result.pred_masks, result.pred_labels, result.pred_scores, strict=True
        ):
            _check_label(result, label, cat_ids)
            detections.append(
                {
                    "image_id": result.img_id,
                    "category_id": cat_ids[int(label)],
                    "segmentation": rle,
                    "score": round(float(score), 5),
                }
            )
    return detections


def _iou_types(metric: str | Sequence[str]) -> tuple[IouType, ...]:
    """``metric`` as a tuple of distinct IoU types; :class:`ConfigError` for others."""
    names = (metric,) if isinstance(metric, str) else tuple(metric)
    allowed = get_args(IouType)
    if not names or len(set(names)) != len(names) or any(n not in allowed for n in names):
        raise ConfigError(f"CocoMetric: metric {metric!r} must be one or more distinct of "
                          f"{list(allowed)}")
    return names  # type: ignore[return-value]


class CocoMetric:
    """COCO box and mask AP (mAP@[.5:.95], AP50, AP75, APs/m/l, AR@100) and per-class AP
    tables: ``coco/bbox_mAP``, ... for ``"bbox"``, ``coco/segm_mAP``, ... for ``"segm"``.

    Ground truth comes from ``ann_file`` when given (a COCO dataset: category ids through
    ``dataset_meta["label_to_cat_id"]`` or by class name), else it is built from the
    samples' ground truth (any dataset; category id ``label + 1``, ignore regions as crowd).
    Predictions must be in original image coordinates. Results are gathered across ranks.
    Mask AP (``"segm"``) needs ``(N, H, W)`` bool masks in the predictions and, without
    ``ann_file``, polygon masks in the ground truth (mapped to the original image and
    rasterised there); masks are kept as RLEs until the evaluation.

    :param ann_file: COCO annotation file of the evaluated images (optional).
    :param outfile_prefix: when set, writes ``PREFIX.bbox.json`` / ``PREFIX.segm.json``
        (COCO results) and, for ground truth built from samples, ``PREFIX.gt.json``.
    :param metric: ``"bbox"``, ``"segm"`` or a list of both: the IoU types evaluated.
    :param classwise: add ``coco/bbox_AP_<class>`` (``segm_AP_<class>``) values and log the
        per-class tables.
    :param max_dets: detections per image considered (COCO: 100).
    :param prefix: key prefix of the returned values.
    :param backend: the library that evaluates: ``"pycocotools"`` (the reference) or
        ``"faster_coco_eval"`` (the same values from a C++ implementation, several times
        faster on large sets; ``pip install faster-coco-eval``).
    """

    def __init__(
        self,
        ann_file: str = "",
        outfile_prefix: str = "",
        classwise: bool = True,
        max_dets: int = 100,
        prefix: str = "coco",
        backend: Backend = "pycocotools",
        metric: str | Sequence[str] = "bbox",
    ) -> None:
        self._coco_class, self._eval_class = coco_api(backend)
        self.metrics = _iou_types(metric)
        self.ann_file = ann_file
        self.outfile_prefix = outfile_prefix
        self.classwise = classwise
        self.max_dets = max_dets
        self.prefix = prefix
        self.backend = backend
        self.dataset_meta: dict[str, Any] = {}
        self.results: list[ImageResult] = []
        self._ann_coco: Any = None
        #: the per-class AP table of each IoU type of the last :meth:`evaluate` (text).
        self.tables: dict[str, str] = {}

    @property
    def table(self) -> str:
        """The per-class AP tables of the last :meth:`evaluate`, one per IoU type (text)."""
        return "\n\n".join(self.tables.values())

    def reset(self) -> None:
        """Forget processed samples."""
        self.results = []

    def process(self, samples: list[DetSample]) -> None:
        """Record ground truth and predictions (``sample.pred``) of a batch."""
        with_masks = "segm" in self.metrics
        self.results.extend(record_from_sample(sample, with_masks) for sample in samples)

    def _classes(self) -> tuple[str, ...]:
        classes = tuple(self.dataset_meta.get("classes", ()))
        if not classes:
            raise ConfigError("CocoMetric: dataset_meta['classes'] is not set")
        return classes

    def _ground_truth(self, results: list[ImageResult]) -> tuple[Any, list[int]]:
        classes = self._classes()
        if not self.ann_file:
            if "segm" in self.metrics:
                _require_gt_masks(results)
            cat_ids = [
                int(self.dataset_meta.get("label_to_cat_id", {}).get(label, label + 1))
                for label in range(len(classes))
            ]
            content = gt_from_results(results, classes, cat_ids)
            if self.outfile_prefix:
                self._write(f"{self.outfile_prefix}.gt.json", content)
            return coco_from_dict(content, self._coco_class), cat_ids
        if self._ann_coco is None:
            if not Path(self.ann_file).is_file():
                raise DataError(f"{self.ann_file}: CocoMetric ann_file not found")
            self._ann_coco = _quiet(self._coco_class, self.ann_file)
        coco = self._ann_coco
        label_to_cat_id = self.dataset_meta.get("label_to_cat_id")
        if label_to_cat_id:
            return coco, [int(label_to_cat_id[label]) for label in range(len(classes))]
        ids_by_name = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
        missing = [name for name in classes if name not in ids_by_name]
        if missing:
            raise DataError(f"{self.ann_file}: classes {missing} are not among its categories")
        return coco, [int(ids_by_name[name]) for name in classes]

    def _write(self, path: str, content: Any) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(content))
        LOGGER.info("wrote %s", path)

    def evaluate(self) -> dict[str, float]:
        """Evaluate everything processed since the last :meth:`reset` (all ranks)."""
        results = gather_results(self.results)
        classes = self._classes()
        coco_gt, cat_ids = self._ground_truth(results)
        values: dict[str, float] = {}
        self.tables = {}
        for iou_type in self.metrics:
            values.update(self._evaluate_type(iou_type, results, coco_gt, cat_ids, classes))
        return values

    def _evaluate_type(self, iou_type: IouType, results: list[ImageResult], coco_gt: Any,
                       cat_ids: list[int], classes: tuple[str, ...]) -> dict[str, float]:
        """The values of one IoU type (``bbox``: boxes, ``segm``: masks)."""
        detections = (detections_from_results(results, cat_ids) if iou_type == "bbox"
                      else segmentations_from_results(results, cat_ids))
        if self.outfile_prefix:
            self._write(f"{self.outfile_prefix}.{iou_type}.json", detections)
        keys = stat_keys(iou_type)
        values = {f"{self.prefix}/{key}": 0.0 for key in keys}
        if not results or not detections:
            LOGGER.warning(
                "CocoMetric: no %s to evaluate; all %s values are 0",
                "images" if not results else "detections", iou_type,
            )
            return values
        coco_dt = _quiet(coco_gt.loadRes, detections)
        evaluator = self._evaluator(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = sorted(r.img_id for r in results)
        evaluator.params.catIds = cat_ids
        evaluator.params.maxDets = [1, 10, self.max_dets]
        _quiet(evaluator.evaluate)
        _quiet(evaluator.accumulate)
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            evaluator.summarize()
        name = _TYPE_NAMES[iou_type]
        LOGGER.info("COCO %s evaluation:\n%s", name, summary.getvalue().rstrip())
        for key, index in keys.items():
            values[f"{self.prefix}/{key}"] = float(evaluator.stats[index])
        per_class = self._per_class_ap(evaluator, classes)
        self.tables[iou_type] = format_table(["class", "AP", "AP50"], per_class)
        LOGGER.info("per-class %s AP:\n%s", name, self.tables[iou_type])
        if self.classwise:
            for class_name, ap, _ in per_class:
                values[f"{self.prefix}/{iou_type}_AP_{class_name}"] = ap
        return values

    def _evaluator(self, coco_gt: Any, coco_dt: Any, iou_type: IouType) -> Any:
        """A ``COCOeval`` of the backend for ``iou_type``; both print their progress and
        summary (sent to the log by the caller)."""
        if self.backend == "pycocotools":
            return self._eval_class(coco_gt, coco_dt, iou_type)
        return self._eval_class(coco_gt, coco_dt, iou_type, print_function=print)

    @staticmethod
    def _per_class_ap(
        evaluator: Any, classes: tuple[str, ...]
    ) -> list[tuple[str, float, float]]:
        """``(class, AP@[.5:.95], AP@.5)`` from ``eval["precision"]`` ``(T, R, K, A, M)``
        (area "all", largest maxDets); -1 where the class has no ground truth."""
        precision = evaluator.eval["precision"]
        rows = []
        for k, name in enumerate(classes):
            all_thr = precision[:, :, k, 0, -1]
            at_50 = precision[0, :, k, 0, -1]
            ap = float(all_thr[all_thr > -1].mean()) if (all_thr > -1).any() else -1.0
            ap50 = float(at_50[at_50 > -1].mean()) if (at_50 > -1).any() else -1.0
            rows.append((name, ap, ap50))
        return rows


def _require_gt_masks(results: list[ImageResult]) -> None:
    """:class:`ConfigError` when an image has ground truth but no ground-truth masks."""
    for result in results:
        if result.gt_masks is None and len(result.gt_labels):
            raise ConfigError(
                f'CocoMetric: metric "segm" needs ground-truth masks, image {result.img_id} '
                "has none: use a dataset with masks, or give ann_file"
            )


def format_table(header: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A plain-text table; floats with three decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)
    ]
    lines = [header, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
