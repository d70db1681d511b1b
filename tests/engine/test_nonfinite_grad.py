"""A non-finite gradient never reaches the weights or a checkpoint (the loss stays finite)."""

import torch
from engine_toy import load_weights, only_run_dir, toy_config, write_config

from core.run import main

CHECKPOINTS = {"checkpoint": {"iter_interval": 1, "max_keep": 0}, "logger": {"interval": 2}}


def test_nan_gradient_stops_before_the_step_and_names_the_last_good_checkpoint(tmp_path, capsys):
    cfg = toy_config(model={"type": "ToyDetector", "nan_grad_at_call": 3},
                     default_hooks=CHECKPOINTS)
    config = write_config(tmp_path / "toy.toml", cfg)
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    run_dir = only_run_dir(runs)
    assert len(error) == 1
    assert error[0].startswith("error: non-finite gradient norm at iteration 3 (epoch 1)")
    assert f"last good checkpoint: {run_dir / 'iter_2.pth'}" in error[0]
    assert (run_dir / "last_checkpoint").read_text() == "iter_2.pth"
    assert not (run_dir / "iter_3.pth").exists()
    for path in run_dir.glob("*.pth"):
        assert all(torch.isfinite(v.float()).all() for v in load_weights(path).values()), path
    assert "non-finite gradient norm at iteration 3" in (run_dir / "train.log").read_text()
    # the checkpoint it names resumes
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set",
                 "train.max_epochs=1", "--set", "model.nan_grad_at_call=0"]) == 0


def test_nan_loss_names_the_last_good_checkpoint(tmp_path, capsys):
    cfg = toy_config(model={"type": "ToyDetector", "nan_at_call": 6})
    config = write_config(tmp_path / "toy.toml", cfg)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 1
    run_dir = only_run_dir(tmp_path / "runs")
    error = capsys.readouterr().err
    assert "non-finite loss at iteration 6 (epoch 2): loss, loss_bbox not finite" in error
    assert f"last good checkpoint: {run_dir / 'epoch_1.pth'}" in error


def test_nan_before_any_checkpoint_says_there_is_none(tmp_path, capsys):
    cfg = toy_config(model={"type": "ToyDetector", "nan_grad_at_call": 1})
    config = write_config(tmp_path / "toy.toml", cfg)
    assert main([str(config), "--work-dir", str(tmp_path / "runs")]) == 1
    assert "no checkpoint written yet" in capsys.readouterr().err
