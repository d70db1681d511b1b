"""Compact record storage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.datasets.records import ImageRecord, RecordStore


def record(index: int) -> ImageRecord:
    return ImageRecord(
        img_id=index,
        img_path=f"/images/{index}.jpg",
        height=40,
        width=50,
        boxes=[[index, 1.0, index + 5.0, 9.0]] * (index % 3),
        labels=[index % 2] * (index % 3),
        ignore_boxes=[],
        ignore_labels=[],
    )


def test_store_round_trips_records_from_one_buffer():
    records = [record(i) for i in range(7)]
    store = RecordStore(records)
    assert len(store) == 7
    for original, stored in zip(records, store, strict=True):
        assert stored.img_id == original.img_id and stored.img_path == original.img_path
        assert np.array_equal(stored.boxes, original.boxes)
        assert stored.boxes.dtype == np.float32 and stored.boxes.shape == (original.boxes.shape)
        assert stored.labels.dtype == np.int64
    assert store[-1].img_id == 6
    with pytest.raises(IndexError):
        store[7]
    assert isinstance(store._buffer, np.ndarray) and store._buffer.dtype == np.uint8


def test_records_give_tensors_and_fresh_copies():
    store = RecordStore([record(2)])
    gt = store[0].gt
    assert gt.boxes.dtype == torch.float32 and gt.boxes.shape == (2, 4)
    assert gt.labels.tolist() == [0, 0]
    assert store[0].ignore.boxes.shape == (0, 4)
    gt.boxes += 100  # changing a copy leaves the store untouched
    assert store[0].gt.boxes[0, 0] == 2.0
    assert len(RecordStore([])) == 0
