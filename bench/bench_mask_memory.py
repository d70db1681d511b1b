"""Memory that instance masks add to one sample in the data pipeline, against a naive bitmap.

    python bench/bench_mask_memory.py [--samples 200]

Ground-truth masks travel through the transforms as polygons (``core.masks.PolygonMasks``).
For two settings this builds samples, runs them through a training pipeline and reports, per
sample, for the transformed masks:

- ``vertices``: the bytes of the float32 vertex arrays (``PolygonMasks.nbytes()``);
- ``objects``: the same with the Python objects that hold them (the arrays' headers, the
  lists, the masks object: ``sys.getsizeof`` over the structure);
- ``traced``: what stays allocated after reading the masks (``PolygonMasks.from_coco`` of
  the annotation's coordinate lists, as the COCO reader does) and running the pipeline, minus
  the same without masks (``tracemalloc``, which sees NumPy's and Python's allocations), and
  ``peak``: the largest transient peak of one sample with masks above the same without;
- ``bitmap``: ``N * H * W`` bytes, one full-size uint8 bitmap per instance at the output size.

Settings: the demo's generated shapes (160 px, 1-5 shapes, circles as 64-gons; pipeline of
the YOLOv8-seg demo: flip) and COCO-sized images (long side 300-640 px resized to 640,
7 instances of 30-60 vertices; flip and pad to 32 as in the COCO configs).
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import sys
import time
import tracemalloc
from collections.abc import Callable

import attrs
import numpy as np
import torch

from core.data.datasets.shapes_gen import draw_image
from core.data.transforms.geometric import Pad, RandomFlip, Resize
from core.masks import PolygonMasks
from core.structures import DetSample, Instances

Pipeline = Callable[[DetSample, np.random.Generator], DetSample]


def demo_samples(count: int) -> list[DetSample]:
    """Samples of the generated shapes set at the demo's size (160 px, object sides 20-64)."""
    samples = []
    for index in range(count):
        canvas, objects = draw_image(np.random.default_rng([0, 0, index]), 160, (20, 64), 5)
        image = torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()
        masks = PolygonMasks([[np.asarray(polygon, dtype=np.float32)] for _, _, polygon in objects],
                             (160, 160))
        boxes = torch.tensor([box for box, _, _ in objects], dtype=torch.float32)
        labels = torch.tensor([label for _, label, _ in objects], dtype=torch.int64)
        samples.append(_sample(index, image, Instances(boxes, labels, masks=masks)))
    return samples


def coco_samples(count: int, instances: int = 7) -> list[DetSample]:
    """COCO-sized samples: long side 640 or less, ``instances`` star-shaped polygons of 30 to
    60 vertices and 15 to 150 px radius each."""
    rng = np.random.default_rng(1)
    samples = []
    for index in range(count):
        long_side = int(rng.integers(300, 641))
        short_side = int(long_side * rng.uniform(0.6, 1.0))
        h, w = (short_side, long_side) if rng.random() < 0.7 else (long_side, short_side)
        polygons = []
        for _ in range(instances):
            radius = rng.uniform(15, min(150, min(h, w) / 2))
            centre = rng.uniform([radius, radius], [w - radius, h - radius])
            vertices = int(rng.integers(30, 61))
            angles = np.sort(rng.uniform(0, 2 * math.pi, vertices))
            radii = radius * rng.uniform(0.5, 1.0, vertices)
            polygons.append([np.stack([centre[0] + radii * np.cos(angles),
                                       centre[1] + radii * np.sin(angles)], 1)
                             .astype(np.float32)])
        masks = PolygonMasks(polygons, (h, w))
        image = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
        gt = Instances(masks.bounding_boxes(), torch.zeros(instances, dtype=torch.int64),
                       masks=masks)
        samples.append(_sample(index, image, gt))
    return samples


def _sample(index: int, image: torch.Tensor, gt: Instances) -> DetSample:
    shape = (int(image.shape[1]), int(image.shape[2]))
    return DetSample(img_id=index, ori_shape=shape, img_shape=shape, pad_shape=shape,
                     image=image, gt=gt)


def chain(*transforms: Pipeline) -> Pipeline:
    def run(sample: DetSample, rng: np.random.Generator) -> DetSample:
        for transform in transforms:
            sample = transform(sample, rng)
        return sample
    return run


def array_bytes(array: object) -> int:
    """``sys.getsizeof`` of an array and of the arrays it is a view of (a view's own size
    leaves out the data it shows)."""
    base = getattr(array, "base", None)
    return sys.getsizeof(array) + (0 if base is None else array_bytes(base))


def object_bytes(masks: PolygonMasks) -> int:
    """``sys.getsizeof`` over the masks object, its lists, its arrays (with their data) and
    its shape tuple."""
    size = sys.getsizeof(masks) + sys.getsizeof(masks.polygons) + sys.getsizeof(masks.shape)
    size += sum(sys.getsizeof(v) for v in masks.shape)
    for instance in masks.polygons:
        size += sys.getsizeof(instance) + sum(array_bytes(part) for part in instance)
    return size


def output_masks(sample: DetSample) -> PolygonMasks:
    masks = sample.gt.masks
    if not isinstance(masks, PolygonMasks):
        raise TypeError(f"sample {sample.img_id} lost its polygon masks")
    return masks


def coco_lists(masks: PolygonMasks) -> list[list[list[float]]]:
    """The masks as a COCO annotation holds them: ``[x0, y0, x1, y1, ...]`` per part."""
    return [[part.reshape(-1).tolist() for part in instance] for instance in masks.polygons]


def traced(samples: list[DetSample], pipeline: Pipeline, with_masks: bool,
           ) -> tuple[list[DetSample], float, int]:
    """Under tracemalloc, for each sample: read its masks from COCO lists (``with_masks``)
    and run ``pipeline``. Returns the outputs, the bytes per sample still allocated after
    all of them, and the largest peak of one sample."""
    inputs = [attrs.evolve(copy.deepcopy(sample), gt=attrs.evolve(sample.gt, masks=None))
              for sample in samples]
    lists = [coco_lists(output_masks(sample)) for sample in samples]
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    outputs, peak = [], 0
    for index, (sample, segmentation) in enumerate(zip(inputs, lists, strict=True)):
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        if with_masks:
            sample.gt = attrs.evolve(
                sample.gt, masks=PolygonMasks.from_coco(segmentation, sample.img_shape))
        outputs.append(pipeline(sample, np.random.default_rng(index)))
        peak = max(peak, tracemalloc.get_traced_memory()[1] - before)
    del inputs
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    return outputs, retained / len(samples), peak


@attrs.define
class Row:
    """Per-sample averages of one setting (bytes unless named otherwise)."""

    setting: str
    size: str
    instances: float
    vertex_count: float
    vertices: float
    objects: float
    traced: float
    peak: int
    bitmap: float


def measure(name: str, samples: list[DetSample], pipeline: Pipeline) -> Row:
    masked, traced_masked, peak_masked = traced(samples, pipeline, with_masks=True)
    _, traced_plain, peak_plain = traced(samples, pipeline, with_masks=False)
    all_masks = [output_masks(out) for out in masked]
    count = len(samples)
    sizes = {out.img_shape for out in masked}
    return Row(
        setting=name,
        size="x".join(map(str, sizes.pop())) if len(sizes) == 1 else "<=640",
        instances=sum(len(m) for m in all_masks) / count,
        vertex_count=sum(len(p) for m in all_masks for i in m.polygons for p in i) / count,
        vertices=sum(m.nbytes() for m in all_masks) / count,
        objects=sum(object_bytes(m) for m in all_masks) / count,
        traced=traced_masked - traced_plain,
        peak=peak_masked - peak_plain,
        bitmap=sum(len(m) * m.shape[0] * m.shape[1] for m in all_masks) / count,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="samples per setting")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [
        measure("demo shapes", demo_samples(args.samples), chain(RandomFlip(prob=0.5))),
        measure("COCO-sized", coco_samples(args.samples),
                chain(Resize(scale=(640, 640)), RandomFlip(prob=0.5), Pad(size_divisor=32))),
    ]
    print(f"bytes per sample that polygon masks add ({args.samples} samples per setting; "
          "bitmap = N * H * W uint8 at the output size)")
    header = (f"{'setting':<12} {'image':>8} {'inst':>5} {'verts':>6} {'vertices':>9} "
              f"{'objects':>8} {'traced':>8} {'peak':>8} {'bitmap':>9} {'bitmap/objects':>14}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row.setting:<12} {row.size:>8} {row.instances:>5.1f} {row.vertex_count:>6.0f} "
              f"{row.vertices:>9.0f} {row.objects:>8.0f} {row.traced:>8.0f} {row.peak:>8d} "
              f"{row.bitmap:>9.0f} {row.bitmap / row.objects:>13.0f}x")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
