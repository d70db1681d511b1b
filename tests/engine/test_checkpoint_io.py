import pickle

import pytest
import torch
from torch import nn

from core.engine.checkpoint import (
    load_checkpoint,
    load_model_state,
    read_last_checkpoint,
    save_checkpoint,
    write_last_checkpoint,
)
from core.errors import CheckpointError


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ckpt.pth"
    save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "bad": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]


class Payload:
    """An arbitrary class: loading it would run code from the file."""


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_load_refuses_code_executing_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "obj": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        load_checkpoint(path)
    path.write_bytes(pickle.dumps("not a torch file"))
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pth")


def test_mismatched_model_lists_missing_unexpected_and_shape_keys():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(4), "2.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError) as info:
        load_model_state(model, state, "other.pth")
    message = str(info.value)
    assert "other.pth" in message
    assert "missing keys (2): 1.bias, 1.weight" in message
    assert "unexpected keys (1): 2.weight" in message
    assert "0.bias (checkpoint (4,) vs model (3,))" in message
    assert torch.count_nonzero(model[0].weight) > 0  # nothing was loaded


def test_last_checkpoint_pointer(tmp_path):
    assert read_last_checkpoint(tmp_path) is None
    save_checkpoint({"state_dict": {}}, tmp_path / "epoch_1.pth")
    write_last_checkpoint(tmp_path, "epoch_1.pth")
    assert read_last_checkpoint(tmp_path) == tmp_path / "epoch_1.pth"
