"""build_dataloader: batches, seeded order and augmentation, exact resume, sharding, errors."""

from __future__ import annotations

import pytest
import torch

from core.data.loader import build_dataloader
from core.data.sampler import EpochSampler, ResumableBatchSampler
from core.errors import ConfigError
from core.structures import DetBatch, DetSample

TRAIN_PIPELINE = [
    {"type": "LoadImage"},
    {"type": "RandomResize", "scales": [[64, 64], [96, 96]]},
    {"type": "RandomFlip", "prob": 0.5},
    {"type": "Normalize"},
    {"type": "Pad", "size_divisor": 32},
]


@pytest.fixture
def loader_cfg(tmp_path):
    def make(pipeline=TRAIN_PIPELINE, **overrides):
        dataset = {
            "type": "ShapesDataset",
            "num_images": 12,
            "image_size": 96,
            "object_size": [16, 40],
            "data_root": str(tmp_path),
            "pipeline": pipeline,
        }
        return {"batch_size": 4, "num_workers": 0, "shuffle": True, "dataset": dataset, **overrides}

    return make


def fingerprint(batch: DetBatch):
    return [
        (s.img_id, s.flip, s.img_shape, round(float(batch.images[i].sum()), 2))
        for i, s in enumerate(batch.samples)
    ]


def epoch(loader, number):
    loader.batch_sampler.set_epoch(number)
    return [fingerprint(batch) for batch in loader]


def test_batches_are_padded_det_batches(loader_cfg):
    loader = build_dataloader(loader_cfg(), path="train_dataloader", seed=0)
    batch = next(iter(loader))
    assert isinstance(batch, DetBatch) and len(batch) == 4
    assert batch.images.dtype == torch.float32 and batch.images.shape[:2] == (4, 3)
    assert batch.images.shape[2] % 32 == 0 and batch.images.shape[3] % 32 == 0
    assert all(s.pad_shape == tuple(batch.images.shape[2:]) for s in batch.samples)
    assert len(loader) == 3
    assert loader.dataset.classes[0] == "circle"


def test_order_and_augmentation_are_a_function_of_seed_and_epoch(loader_cfg):
    first = build_dataloader(loader_cfg(), path="train_dataloader", seed=1)
    again = build_dataloader(loader_cfg(), path="train_dataloader", seed=1)
    other = build_dataloader(loader_cfg(), path="train_dataloader", seed=2)
    assert epoch(first, 0) == epoch(again, 0)
    assert epoch(first, 0) != epoch(first, 1)
    assert epoch(first, 0) != epoch(other, 0)
    flips = {s[1] for batch in epoch(first, 0) for s in batch}
    assert flips == {True, False}


def test_resume_at_an_iteration_reproduces_the_rest_of_the_epoch(loader_cfg):
    full = epoch(build_dataloader(loader_cfg(), path="train_dataloader", seed=4), 3)
    resumed_loader = build_dataloader(loader_cfg(), path="train_dataloader", seed=4)
    resumed_loader.batch_sampler.set_epoch(3)
    resumed_loader.batch_sampler.set_start_iter(2)
    assert [fingerprint(b) for b in resumed_loader] == full[2:]
    assert [fingerprint(b) for b in resumed_loader] == full  # the offset applies once


def test_worker_processes_do_not_change_the_data(loader_cfg):
    serial = epoch(build_dataloader(loader_cfg(), path="train_dataloader", seed=5), 0)
    parallel_loader = build_dataloader(loader_cfg(num_workers=2), path="train_dataloader", seed=5)
    assert epoch(parallel_loader, 0) == serial


def test_ranks_share_an_epoch_without_overlap():
    keys = [
        EpochSampler(10, shuffle=True, seed=0, num_replicas=3, rank=r).epoch_keys()
        for r in range(3)
    ]
    assert [len(k) for k in keys] == [4, 4, 4]  # padded to 12
    indices = [index for part in keys for index, _ in part]
    assert set(indices) == set(range(10)) and len(indices) == 12
    single = EpochSampler(10, shuffle=True, seed=0).epoch_keys()
    assert sorted(single) == sorted({k for part in keys for k in part})
    dropped = [
        EpochSampler(10, shuffle=True, seed=0, num_replicas=3, rank=r, drop_last=True)
        for r in range(3)
    ]
    assert sum(len(s.epoch_keys()) for s in dropped) == 9


def test_batch_sampler_lengths_and_bounds():
    sampler = ResumableBatchSampler(EpochSampler(10, shuffle=False, seed=0), 4, drop_last=False)
    assert len(sampler) == 3 and [len(b) for b in sampler] == [4, 4, 2]
    dropping = ResumableBatchSampler(EpochSampler(10, shuffle=False, seed=0), 4, drop_last=True)
    assert [len(b) for b in dropping] == [4, 4]
    with pytest.raises(ValueError, match="start_iter 4 outside"):
        sampler.set_start_iter(4)


def test_test_time_augmentation_views_are_flattened_and_grouped(loader_cfg):
    pipeline = [
        {"type": "LoadImage"},
        {
            "type": "TestTimeAug",
            "scales": [[64, 64], [96, 96]],
            "flip": True,
            "transforms": [{"type": "Normalize"}],
        },
    ]
    loader = build_dataloader(
        loader_cfg(pipeline, shuffle=False, batch_size=2), path="test_dataloader", seed=0
    )
    batch = next(iter(loader))
    assert len(batch) == 8
    assert [s.meta["tta_group"] for s in batch.samples] == [0] * 4 + [1] * 4
    assert [s.img_id for s in batch.samples] == [1] * 4 + [2] * 4


def test_mosaic_and_mixup_draw_other_samples_from_the_dataset(loader_cfg):
    pipeline = [
        {"type": "LoadImage"},
        {"type": "Mosaic", "img_scale": [64, 64]},
        {"type": "MixUp", "img_scale": [64, 64]},
        {"type": "Normalize"},
    ]
    loader = build_dataloader(loader_cfg(pipeline), path="train_dataloader", seed=0)
    batch = next(iter(loader))
    assert batch.images.shape[2:] == (128, 128)
    assert all(s.meta["mosaic"] and s.meta["mixup"] for s in batch.samples)
    assert sum(len(s.gt) for s in batch.samples) > 4 * 4  # boxes from several images


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_sise": 2}, "train_dataloader: unknown key\\(s\\) batch_sise"),
        ({"batch_size": "2"}, "train_dataloader.batch_size: expected int"),
        ({"shuffle": 1}, "train_dataloader.shuffle: expected bool"),
        ({"batch_size": 0}, "batch_size: must be positive"),
    ],
)
def test_config_errors_name_the_key(loader_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_dataloader(loader_cfg(**overrides), path="train_dataloader", seed=0)


def test_dataset_errors_name_the_path(loader_cfg):
    cfg = loader_cfg([{"type": "Resize", "scale": [64, 64], "keep_ration": True}])
    with pytest.raises(ConfigError, match=r"train_dataloader\.dataset\.pipeline\[0\]"):
        build_dataloader(cfg, path="train_dataloader", seed=0)


class PlainDataset(torch.utils.data.Dataset):
    """A third-party dataset indexed by ints only."""

    classes = ("thing",)

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> DetSample:
        assert isinstance(index, int)
        return DetSample(img_id=index, image=torch.zeros(3, 8, 8), img_shape=(8, 8))


def test_datasets_without_sample_keys_get_plain_indices(monkeypatch):
    from core.plugins import get_registries

    registries = get_registries()
    monkeypatch.setattr(registries, "build", lambda stage, cfg, path="": PlainDataset())
    loader = build_dataloader({"batch_size": 4, "shuffle": True, "dataset": {}}, path="x", seed=0)
    assert sorted(s.img_id for batch in loader for s in batch.samples) == list(range(6))


def test_samples_are_prepared_single_threaded_and_threads_restored(loader_cfg):
    seen = []

    def record_threads(sample):
        seen.append(torch.get_num_threads())
        return sample

    cfg = loader_cfg([{"type": "LoadImage"}, {"type": "Normalize"}], num_workers=0)
    loader = build_dataloader(cfg, path="train_dataloader", seed=0)
    loader.dataset.pipeline = type(loader.dataset.pipeline)(
        [*loader.dataset.pipeline.transforms, record_threads]
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        next(iter(loader))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert seen == [1] * 4
