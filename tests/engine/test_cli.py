"""The CLI's training/testing options, run in-process (``core.run.main``)."""

import json
import re

import pytest
import torch
from engine_toy import only_run_dir, toy_config, write_config

from core.run import main


@pytest.fixture
def trained(tmp_path):
    """A config and the final checkpoint of its 2-epoch run."""
    config = write_config(tmp_path / "toy.toml", toy_config())
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 0
    return config, only_run_dir(tmp_path / "runs") / "epoch_2.pth"


def test_default_work_dir_is_work_dirs_config_stem_timestamp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path / "tiny_toy.toml", toy_config(train={"max_epochs": 1}))
    assert main([str(config)]) == 0
    run_dir = only_run_dir(tmp_path / "work_dirs" / "tiny_toy")
    assert len(run_dir.name) == len("20260101_120000")
    assert "max_epochs = 1" in (run_dir / "config.toml").read_text()
    assert (run_dir / "vis_data" / "config.toml").exists()


def test_test_writes_metrics_and_predictions(tmp_path, trained, capsys):
    config, checkpoint = trained
    out = tmp_path / "results.json"
    assert main([str(config), "--work-dir", str(tmp_path / "test_runs"), "--test",
                 str(checkpoint), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["checkpoint"] == str(checkpoint)
    assert results["metrics"]["toy/num_images"] == 8.0
    predictions = results["predictions"]
    assert [p["img_id"] for p in predictions] == list(range(8))
    assert len(predictions[0]["boxes"]) == 1 and len(predictions[0]["boxes"][0]) == 4
    # the logged validation after the last epoch evaluated the same weights
    log = (checkpoint.parent / "train.log").read_text().splitlines()
    last_val = next(line for line in log if "Epoch(val) [2]" in line)
    assert f"toy/iou: {results['metrics']['toy/iou']:.4f}" in last_val
    test_log = (only_run_dir(tmp_path / "test_runs") / "test.log").read_text()
    assert "Test  toy/iou" in test_log
    assert re.search(r"test: 8 images in [0-9.]+ s, [0-9.]+ ms per image", test_log)


def test_checkpoint_of_another_model_lists_missing_and_unexpected_keys(tmp_path, trained,
                                                                       capsys):
    _, checkpoint = trained
    other = write_config(tmp_path / "other.toml", toy_config(model={"type": "OtherDetector"}))
    code = main([str(other), "--work-dir", str(tmp_path / "t"), "--test", str(checkpoint)])
    error = capsys.readouterr().err
    assert code == 2
    assert f"checkpoint {checkpoint} does not fit the model OtherDetector" in error
    assert "missing keys (4): cls_head.bias, cls_head.weight, extra.bias, extra.weight" in error
    assert "unexpected keys (2): head.bias, head.weight" in error
    code = main([str(other), "--work-dir", str(tmp_path / "t"), "--set-new",
                 "--set", f"load_from='{checkpoint}'"])
    assert code == 2
    assert "missing keys (4)" in capsys.readouterr().err


def test_load_from_loads_weights_only(tmp_path, trained):
    config, checkpoint = trained
    assert main([str(config), "--work-dir", str(tmp_path / "ft"), "--set-new", "--set",
                 f"load_from='{checkpoint}'", "--set", "train.max_epochs=1"]) == 0
    log = (only_run_dir(tmp_path / "ft") / "train.log").read_text()
    assert f"loaded weights from {checkpoint}" in log
    assert "from epoch 1 iteration 1" in log  # a new schedule, not a resume
    finetuned = torch.load(only_run_dir(tmp_path / "ft") / "epoch_1.pth", weights_only=True)
    assert finetuned["meta"]["iter"] == 4


def test_nan_loss_exits_nonzero_with_a_clear_message(tmp_path, capsys):
    config = write_config(tmp_path / "toy.toml",
                          toy_config(model={"type": "ToyDetector", "nan_at_call": 3}))
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 1
    error = capsys.readouterr().err
    assert "error: non-finite loss at iteration 3 (epoch 1): loss, loss_bbox not finite" in error


def test_resume_without_any_checkpoint_is_a_clear_error(tmp_path, capsys):
    config = write_config(tmp_path / "toy.toml", toy_config())
    assert main([str(config), "--work-dir", str(tmp_path / "empty"), "--resume"]) == 2
    assert "--resume: no checkpoint found in any run under" in capsys.readouterr().err


def test_out_without_test_is_a_usage_error(tmp_path, capsys):
    config = write_config(tmp_path / "toy.toml", toy_config())
    assert main([str(config), "--out", "x.json"]) == 2
    assert "--out and --tta need --test CKPT" in capsys.readouterr().err


def test_resume_from_a_path_continues_exactly_in_a_new_run(tmp_path, trained):
    config, straight = trained
    runs = tmp_path / "short"
    assert main([str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1"]) == 0
    first = only_run_dir(runs)
    assert main([str(config), "--work-dir", str(runs), "--resume",
                 str(first / "epoch_1.pth"), "--set", "train.max_epochs=2"]) == 0
    second = next(p for p in runs.iterdir() if p != first)
    assert not (first / "epoch_2.pth").exists()
    resumed = torch.load(second / "epoch_2.pth", weights_only=True)
    reference = torch.load(straight, weights_only=True)
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    assert resumed["meta"] == reference["meta"]
