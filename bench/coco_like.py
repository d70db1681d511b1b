"""COCO-sized annotation files without COCO: ``instances`` JSON with COCO train2017's shape.

    python bench/coco_like.py --images N --out DIR [--seed 0] [--pool 64]
                              [--no-segmentation] [--det-images 5000]

writes ``DIR/instances.json``, ``DIR/detections.json`` (COCO results format) and
``DIR/images/pool_NNN.jpg``. What follows COCO train2017 (118,287 images, 860,001 boxes):

* the 80 categories with COCO's names and ids (1..90 with gaps, from torchvision's table);
  class frequencies follow train2017's instance counts (``person`` ~30 %);
* boxes per image: 1 % of the images have none, the others ``1 +`` a negative binomial
  (heavy tail, capped at :data:`MAX_BOXES`), mean ~7.3 over all images;
* image sizes from COCO's common ones (long side 640, mostly 4:3 / 3:4 and 3:2 / 2:3);
* object areas (the ``area`` field, as COCOeval uses it): log-normal fitted to COCO's
  41 % small / 34 % medium / 24 % large split at 32² / 96²;
* one polygon ``segmentation`` per object (more vertices for larger objects), its tight box
  as ``bbox`` and its area as ``area``; 1 % of the boxes are ``iscrowd`` regions with an
  uncompressed-RLE ``segmentation``, as in COCO. ``--no-segmentation`` leaves them out.

Image entries carry COCO's fields (license, urls, date); their ``file_name`` names one of a
small pool of real JPEG files (random shapes, in the entry's size) that many entries share,
so that a data loader can read them. Detections (100 per image, for the first
``--det-images`` images): jittered true boxes with high scores, some with the wrong class,
some duplicates, and random false boxes with low scores. Everything is determined by the
seed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: ``(width, height)`` of the images and their frequencies (COCO's common sizes).
IMAGE_SIZES: tuple[tuple[tuple[int, int], float], ...] = (
    ((640, 480), 0.40), ((480, 640), 0.14), ((640, 427), 0.20), ((427, 640), 0.08),
    ((640, 360), 0.05), ((640, 640), 0.03), ((612, 612), 0.02), ((500, 375), 0.03),
    ((375, 500), 0.01), ((640, 512), 0.02), ((512, 640), 0.01), ((640, 400), 0.01),
)
#: approximate train2017 instance counts per class, in COCO id order (sum ~860k).
TRAIN2017_INSTANCES = (
    262465, 7113, 43867, 8725, 5135, 6069, 4571, 9973, 10759, 12884, 1865, 1983, 1285, 9838,
    10806, 4768, 5508, 6587, 9509, 8147, 5513, 1294, 5303, 5131, 8720, 11431, 12354, 6496,
    6192, 2682, 6646, 2685, 6347, 9076, 3276, 3747, 5543, 6126, 4812, 24342, 7913, 20650,
    5479, 7770, 6165, 14358, 9458, 5851, 4373, 6399, 7308, 7852, 2918, 5821, 7179, 6353,
    38491, 5779, 8652, 4192, 15714, 4157, 5805, 4970, 2262, 5703, 2855, 6434, 1673, 3334,
    225, 5610, 2637, 24715, 6334, 6613, 1481, 4793, 198, 1954,
)
COCO_TRAIN_IMAGES = 118_287
MEAN_BOXES = 860_001 / COCO_TRAIN_IMAGES
EMPTY_FRACTION = 0.01
MAX_BOXES = 93
#: dispersion of the negative binomial of the box count (smaller: heavier tail).
COUNT_DISPERSION = 0.9
CROWD_FRACTION = 0.01
#: log of sqrt(area): mean and deviation that put 41 % below 32² and 24 % above 96².
LOG_SIDE_MEAN, LOG_SIDE_STD = 3.734, 1.176
MIN_SIDE = 2.0
LICENSES = [{"id": i, "name": f"license {i}", "url": f"http://example.org/license/{i}"}
            for i in range(1, 9)]


def coco_categories() -> list[dict[str, object]]:
    """COCO's 80 categories ``{"supercategory", "id", "name"}`` (ids 1..90 with gaps)."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    names = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    return [{"supercategory": "object", "id": cat_id, "name": name}
            for cat_id, name in enumerate(names) if name not in ("N/A", "__background__")]


@dataclass
class GroundTruth:
    """Generated images and boxes as arrays (``I`` images, ``B`` boxes, ``P`` vertices).

    ``image_ids`` / ``widths`` / ``heights`` / ``pool_index`` / ``first_box`` ``(I,)``
    (``first_box`` ``(I + 1,)``: boxes of image ``i`` are ``first_box[i]:first_box[i + 1]``);
    ``box_image`` / ``category_ids`` / ``crowd`` / ``areas`` ``(B,)``; ``boxes`` ``(B, 4)``
    xywh in pixels; ``vertices`` ``(P, 2)`` polygon points in pixels with ``first_vertex``
    ``(B + 1,)`` (crowd boxes have none).
    """

    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    pool_index: np.ndarray
    first_box: np.ndarray
    box_image: np.ndarray
    category_ids: np.ndarray
    crowd: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray
    vertices: np.ndarray
    first_vertex: np.ndarray

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_boxes(self) -> int:
        return len(self.category_ids)


def pool_sizes(pool: int) -> list[tuple[int, int]]:
    """``(width, height)`` of each pool image: every size of :data:`IMAGE_SIZES` at least
    once, the rest by frequency (largest remainders)."""
    if pool < len(IMAGE_SIZES):
        raise ValueError(f"the pool needs at least {len(IMAGE_SIZES)} images, got {pool}")
    weights = np.array([p for _, p in IMAGE_SIZES])
    share = weights / weights.sum() * (pool - len(IMAGE_SIZES))
    counts = 1 + np.floor(share).astype(int)
    for index in np.argsort(-(share - np.floor(share)), kind="stable")[: pool - counts.sum()]:
        counts[index] += 1
    return [size for (size, _), count in zip(IMAGE_SIZES, counts, strict=True)
            for _ in range(count)]


def _box_counts(rng: np.random.Generator, num_images: int) -> np.ndarray:
    mean_rest = MEAN_BOXES / (1 - EMPTY_FRACTION) - 1
    p = COUNT_DISPERSION / (COUNT_DISPERSION + mean_rest)
    counts = 1 + rng.negative_binomial(COUNT_DISPERSION, p, size=num_images)
    counts = np.minimum(counts, MAX_BOXES)
    counts[rng.random(num_images) < EMPTY_FRACTION] = 0
    return counts


def _segment_ids(lengths: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(lengths)), lengths)


def unit_polygons(rng: np.random.Generator, num_vertices: np.ndarray) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Star-shaped polygons whose tight box is ``[0, 1]²``: points ``(P, 2)`` (``P`` the sum
    of ``num_vertices``) and each polygon's area ``(B,)`` (its fill of the box)."""
    owner = _segment_ids(num_vertices)
    starts = np.concatenate([[0], np.cumsum(num_vertices)[:-1]])
    gaps = rng.exponential(size=len(owner)) + 0.3
    totals = np.add.reduceat(gaps, starts)
    angles = 2 * np.pi * (np.cumsum(gaps) - np.repeat(np.cumsum(totals) - totals, num_vertices))
    angles = angles / np.repeat(totals, num_vertices) + np.repeat(
        rng.uniform(0, 2 * np.pi, len(num_vertices)), num_vertices)
    radii = rng.uniform(0.55, 1.0, size=len(owner))
    points = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    low = np.minimum.reduceat(points, starts)
    high = np.maximum.reduceat(points, starts)
    points = (points - low[owner]) / (high - low)[owner]
    following = np.arange(len(owner)) + 1
    ends = starts + num_vertices
    following[ends - 1] = starts
    cross = points[:, 0] * points[following, 1] - points[following, 0] * points[:, 1]
    return points, np.abs(np.add.reduceat(cross, starts)) / 2


def generate_ground_truth(num_images: int, seed: int = 0, pool: int = 64) -> GroundTruth:
    """COCO-like images and boxes (see the module docstring), deterministic by ``seed``."""
    rng = np.random.default_rng(seed)
    sizes = pool_sizes(pool)
    pool_w = np.array([w for w, _ in sizes])
    pool_h = np.array([h for _, h in sizes])
    size_of_pool = np.array([[s for s, _ in IMAGE_SIZES].index(size) for size in sizes])
    probabilities = np.array([p for _, p in IMAGE_SIZES])
    size_index = rng.choice(len(IMAGE_SIZES), num_images, p=probabilities / probabilities.sum())
    pool_index = np.empty(num_images, dtype=np.int64)
    for index in range(len(IMAGE_SIZES)):
        chosen = size_index == index
        members = np.flatnonzero(size_of_pool == index)
        pool_index[chosen] = members[rng.integers(0, len(members), chosen.sum())]
    widths, heights = pool_w[pool_index], pool_h[pool_index]
    image_ids = np.sort(rng.choice(5 * max(num_images, 120_000), num_images, replace=False)) + 1

    counts = _box_counts(rng, num_images)
    first_box = np.concatenate([[0], np.cumsum(counts)])
    box_image = _segment_ids(counts)
    total = int(first_box[-1])
    frequencies = np.array(TRAIN2017_INSTANCES, dtype=np.float64)
    cat_ids = np.array([c["id"] for c in coco_categories()])
    category_ids = cat_ids[rng.choice(len(cat_ids), total, p=frequencies / frequencies.sum())]
    crowd = rng.random(total) < CROWD_FRACTION

    img_w, img_h = widths[box_image].astype(np.float64), heights[box_image].astype(np.float64)
    side = np.exp(rng.normal(LOG_SIDE_MEAN, LOG_SIDE_STD, total))
    side[crowd] *= 2.5  # crowd regions cover groups of objects
    area = np.clip(side, MIN_SIDE, np.sqrt(0.9 * img_w * img_h)) ** 2
    num_vertices = np.clip(np.round(6 + np.sqrt(area) * 0.22 * rng.lognormal(0, 0.35, total)),
                           4, 400).astype(np.int64)
    num_vertices[crowd] = 0
    polygon_owner = np.flatnonzero(~crowd)
    unit_points, fill = unit_polygons(rng, num_vertices[polygon_owner])
    fills = np.ones(total)
    fills[polygon_owner] = fill
    aspect = np.exp(rng.normal(0, 0.55, total))
    box_w = np.minimum(np.sqrt(area / fills * aspect), img_w)
    box_h = np.minimum(area / fills / box_w, img_h)
    box_w, box_h = np.maximum(box_w, 1.0), np.maximum(box_h, 1.0)
    x = rng.random(total) * (img_w - box_w)
    y = rng.random(total) * (img_h - box_h)
    boxes = np.round(np.stack([x, y, box_w, box_h], axis=1), 2)
    areas = fills * boxes[:, 2] * boxes[:, 3]

    owner = polygon_owner[_segment_ids(num_vertices[polygon_owner])]
    vertices = np.round(boxes[owner, :2] + unit_points * boxes[owner, 2:], 2)
    return GroundTruth(image_ids, widths, heights, pool_index, first_box, box_image,
                       category_ids, crowd, areas, boxes, vertices,
                       np.concatenate([[0], np.cumsum(num_vertices)]))


def _numbers(values: np.ndarray) -> str:
    return ",".join(map(repr, values.tolist()))


def _crowd_rle(box: np.ndarray, width: int, height: int) -> str:
    """Uncompressed column-major RLE of the box's pixels (COCO's crowd ``segmentation``)."""
    x1, y1 = int(box[0]), int(box[1])
    x2, y2 = min(int(np.ceil(box[0] + box[2])), width), min(int(np.ceil(box[1] + box[3])), height)
    h = max(y2 - y1, 1)
    counts = [x1 * height + y1]
    for _ in range(max(x2 - x1, 1) - 1):
        counts += [h, height - h]
    counts += [h, width * height - sum(counts) - h]
    return f'{{"counts":[{",".join(map(str, counts))}],"size":[{height},{width}]}}'


def _image_entries(gt: GroundTruth) -> Iterator[str]:
    for i in range(gt.num_images):
        image_id = int(gt.image_ids[i])
        day = 1 + image_id % 28
        yield (f'{{"license":{1 + image_id % 8},"file_name":"pool_{int(gt.pool_index[i]):03d}.jpg",'
               f'"coco_url":"http://images.cocodataset.org/train2017/{image_id:012d}.jpg",'
               f'"height":{int(gt.heights[i])},"width":{int(gt.widths[i])},'
               f'"date_captured":"2013-11-{day:02d} 11:18:45",'
               f'"flickr_url":"http://farm{1 + image_id % 9}.staticflickr.com/{image_id % 9973}/'
               f'{image_id}_{image_id * 2654435761 % 16**10:010x}_z.jpg","id":{image_id}}}')


def _annotation_entries(gt: GroundTruth, segmentation: bool) -> Iterator[str]:
    for b in range(gt.num_boxes):
        image = int(gt.box_image[b])
        crowd = bool(gt.crowd[b])
        parts = []
        if segmentation:
            if crowd:
                seg = _crowd_rle(gt.boxes[b], int(gt.widths[image]), int(gt.heights[image]))
            else:
                start, end = gt.first_vertex[b], gt.first_vertex[b + 1]
                seg = f"[[{_numbers(gt.vertices[start:end].ravel())}]]"
            parts.append(f'"segmentation":{seg},')
        parts.append(
            f'"area":{float(gt.areas[b])!r},"iscrowd":{int(crowd)},'
            f'"image_id":{int(gt.image_ids[image])},"bbox":[{_numbers(gt.boxes[b])}],'
            f'"category_id":{int(gt.category_ids[b])},"id":{b + 1}')
        yield "{" + "".join(parts) + "}"


def _write_list(handle, entries: Iterator[str]) -> None:
    handle.write("[")
    for index, entry in enumerate(entries):
        if index:
            handle.write(",")
        handle.write(entry)
    handle.write("]")


def write_instances(gt: GroundTruth, path: Path, segmentation: bool = True) -> None:
    """``instances``-style JSON of ``gt`` (written as a stream, without building the dict)."""
    info = {"description": "COCO-like synthetic set", "version": "1.0", "year": 2017}
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f'{{"info":{json.dumps(info)},"licenses":{json.dumps(LICENSES)},"images":')
        _write_list(handle, _image_entries(gt))
        handle.write(',"annotations":')
        _write_list(handle, _annotation_entries(gt, segmentation))
        handle.write(f',"categories":{json.dumps(coco_categories(), separators=(",", ":"))}}}')


@dataclass
class Detections:
    """``(D,)`` image ids, category ids and scores, ``(D, 4)`` xywh boxes."""

    image_ids: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray


def generate_detections(gt: GroundTruth, num_images: int, seed: int = 0,
                        per_image: int = 100) -> Detections:
    """``per_image`` detections for each of the first ``num_images`` images of ``gt``.

    Each non-crowd box is found with probability 0.9 (edges jittered by ~8 % of its size,
    score 0.3..1, 5 % with another class), a fifth of those again with a lower score; the
    rest are random boxes of COCO-like sizes with low scores. Scores have 5 decimals.
    """
    rng = np.random.default_rng(seed + 1_000_003)
    frequencies = np.array(TRAIN2017_INSTANCES, dtype=np.float64)
    cat_ids = np.array([c["id"] for c in coco_categories()])
    out_img, out_cat, out_score, out_box = [], [], [], []
    for i in range(min(num_images, gt.num_images)):
        width, height = float(gt.widths[i]), float(gt.heights[i])
        own = np.arange(gt.first_box[i], gt.first_box[i + 1])
        own = own[~gt.crowd[own] & (rng.random(len(own)) < 0.9)]
        found = np.concatenate([own, own[rng.random(len(own)) < 0.2]])
        boxes = gt.boxes[found].copy()
        boxes[:, :2] += rng.normal(0, 0.08, (len(found), 2)) * boxes[:, 2:]
        boxes[:, 2:] *= np.exp(rng.normal(0, 0.1, (len(found), 2)))
        scores = 0.3 + 0.7 * rng.beta(4, 1.5, len(found))
        scores[len(own):] *= 0.6
        cats = gt.category_ids[found].copy()
        wrong = rng.random(len(found)) < 0.05
        cats[wrong] = cat_ids[rng.integers(0, len(cat_ids), wrong.sum())]
        false = max(per_image - len(found), 0)
        side = np.clip(np.exp(rng.normal(LOG_SIDE_MEAN, LOG_SIDE_STD, false)), 4,
                       0.9 * min(width, height))
        aspect = np.exp(rng.normal(0, 0.5, false))
        fw = np.minimum(side * np.sqrt(aspect), width)
        fh = np.minimum(side / np.sqrt(aspect), height)
        fxy = rng.random((false, 2)) * np.stack([width - fw, height - fh], axis=1)
        boxes = np.concatenate([boxes, np.stack([fxy[:, 0], fxy[:, 1], fw, fh], axis=1)])
        scores = np.concatenate([scores, 0.5 * rng.beta(1, 6, false)])
        cats = np.concatenate(
            [cats, cat_ids[rng.choice(len(cat_ids), false, p=frequencies / frequencies.sum())]])
        keep = np.argsort(-scores, kind="stable")[:per_image]
        out_img.append(np.full(len(keep), gt.image_ids[i]))
        out_cat.append(cats[keep])
        out_score.append(np.round(scores[keep], 5))
        out_box.append(np.round(boxes[keep], 2))
    if not out_img:
        return Detections(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                          np.zeros((0, 4)))
    return Detections(np.concatenate(out_img), np.concatenate(out_cat),
                      np.concatenate(out_score), np.concatenate(out_box))


def detection_dicts(detections: Detections) -> list[dict[str, object]]:
    """COCO results list ``{"image_id", "category_id", "bbox" (xywh), "score"}``."""
    return [{"image_id": int(i), "category_id": int(c), "bbox": b, "score": float(s)}
            for i, c, b, s in zip(detections.image_ids, detections.category_ids,
                                  detections.boxes.tolist(), detections.scores, strict=True)]


def write_detections(detections: Detections, path: Path) -> None:
    """The COCO results file of ``detections``."""
    entries = (
        f'{{"image_id":{int(i)},"category_id":{int(c)},"bbox":[{_numbers(b)}],'
        f'"score":{float(s)!r}}}'
        for i, c, b, s in zip(detections.image_ids, detections.category_ids, detections.boxes,
                              detections.scores, strict=True))
    with open(path, "w", encoding="utf-8") as handle:
        _write_list(handle, entries)


def write_pool(directory: Path, pool: int, seed: int = 0) -> list[Path]:
    """``pool`` JPEG files of random shapes in the sizes of :func:`pool_sizes` (kept when
    they already exist)."""
    from PIL import Image, ImageDraw

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 7)
    paths = []
    for index, (width, height) in enumerate(pool_sizes(pool)):
        path = directory / f"pool_{index:03d}.jpg"
        paths.append(path)
        colours = rng.integers(0, 256, (8, 3))
        shapes = rng.random((12, 4))
        if path.is_file():
            continue
        ramp = np.linspace(0, 1, width)[None, :, None] * np.linspace(0.5, 1, height)[:, None, None]
        image = Image.fromarray((ramp * colours[0] + (1 - ramp) * colours[1]).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for k, (a, b, c, d) in enumerate(shapes):
            box = [a * width * 0.8, b * height * 0.8, 0, 0]
            box[2], box[3] = box[0] + 20 + c * width * 0.5, box[1] + 20 + d * height * 0.5
            fill = tuple(int(v) for v in colours[2 + k % 6])
            (draw.ellipse if k % 2 else draw.rectangle)(box, fill=fill)
        image.save(path, quality=88)
    return paths


def generate(out: Path, num_images: int, seed: int = 0, pool: int = 64,
             segmentation: bool = True, det_images: int = 5000) -> GroundTruth:
    """Write ``instances.json``, ``detections.json`` and ``images/`` under ``out``; returns
    the ground truth written."""
    out.mkdir(parents=True, exist_ok=True)
    write_pool(out / "images", pool, seed)
    gt = generate_ground_truth(num_images, seed, pool)
    write_instances(gt, out / "instances.json", segmentation)
    write_detections(generate_detections(gt, det_images, seed), out / "detections.json")
    return gt


def summary(gt: GroundTruth) -> str:
    """Box count, boxes per image, empty images, small/medium/large, crowd and person shares."""
    counts = np.diff(gt.first_box)
    area = gt.areas
    return (f"{gt.num_images} images, {gt.num_boxes} boxes ({counts.mean():.2f} per image, "
            f"max {counts.max()}, {np.mean(counts == 0):.2%} empty); areas small/medium/large "
            f"{np.mean(area < 32**2):.1%} / {np.mean((area >= 32**2) & (area < 96**2)):.1%} / "
            f"{np.mean(area >= 96**2):.1%}; crowd {gt.crowd.mean():.2%}; person "
            f"{np.mean(gt.category_ids == 1):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", type=int, default=64)
    parser.add_argument("--det-images", type=int, default=5000)
    parser.add_argument("--no-segmentation", dest="segmentation", action="store_false")
    args = parser.parse_args()
    start = time.perf_counter()
    gt = generate(args.out, args.images, args.seed, args.pool, args.segmentation,
                  args.det_images)
    print(summary(gt))
    for name in ("instances.json", "detections.json"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 2**20:.1f} MiB")
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
