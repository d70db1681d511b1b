import io

import pytest
import torch

from core.engine.message_hub import HistoryBuffer, MessageHub


def test_window_mean_weights_by_count_and_current():
    buf = HistoryBuffer()
    buf.update(1.0)
    buf.update(3.0, count=3)  # three items averaging 3
    buf.update(5.0)
    assert buf.current() == 5.0
    assert buf.mean() == pytest.approx((1 + 9 + 5) / 5)
    assert buf.mean(window=2) == pytest.approx((9 + 5) / 4)
    assert buf.num_updates == 3


def test_history_is_capped_but_counts_all_updates():
    buf = HistoryBuffer(max_length=2)
    for value in range(5):
        buf.update(float(value))
    assert len(buf) == 2
    assert buf.num_updates == 5
    assert buf.mean() == pytest.approx(3.5)


def test_current_instance_and_tensor_values():
    hub = MessageHub.get_instance("test-hub-a")
    assert MessageHub.get_current_instance() is hub
    hub.update_scalar("train/num_pos", torch.tensor(7))
    assert MessageHub.get_current_instance().get_scalar("train/num_pos").current() == 7.0
    with pytest.raises(ValueError, match="one element"):
        hub.update_scalar("x", torch.ones(2))
    with pytest.raises(KeyError, match="train/num_pos"):
        hub.get_scalar("train/missing")
    MessageHub.drop_instance("test-hub-a")


def test_state_dict_round_trips_through_weights_only_load():
    hub = MessageHub.get_instance("test-hub-b")
    for value in (1.0, 2.0, 4.0):
        hub.update_scalar("train/loss", value)
    hub.update_info("epoch", 3)
    buffer = io.BytesIO()
    torch.save(hub.state_dict(), buffer)
    buffer.seek(0)
    restored = MessageHub("restored")
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.get_scalar("train/loss").mean(2) == pytest.approx(3.0)
    assert restored.get_scalar("train/loss").num_updates == 3
    assert restored.get_info("epoch") == 3
    MessageHub.drop_instance("test-hub-b")
