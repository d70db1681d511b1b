"""Resuming a run that already trained as far as the config asks is one clear error that
leaves the run directory as it was."""

import pytest
from engine_toy import only_run_dir, toy_config, write_config

from core.run import main


@pytest.fixture
def finished(tmp_path):
    """A finished 2-epoch run."""
    config = write_config(tmp_path / "toy.toml", toy_config())
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs)]) == 0
    return config, runs


def _snapshot(run_dir):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize("extra", [[], ["--set", "train.max_epochs=1"]],
                         ids=["equal", "fewer"])
def test_resuming_a_finished_run_is_one_clear_error(finished, capsys, extra):
    config, runs = finished
    run_dir = only_run_dir(runs)
    before = _snapshot(run_dir)
    capsys.readouterr()
    assert main([str(config), "--work-dir", str(runs), "--resume", *extra]) == 2
    max_epochs = 1 if extra else 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {run_dir / 'epoch_2.pth'} already finished 2 epochs (train.max_epochs = "
        f"{max_epochs}); nothing to resume; raise train.max_epochs with --set to train further"]
    assert _snapshot(run_dir) == before  # config.toml, log and checkpoints untouched


def test_resuming_a_finished_iteration_based_run_is_one_clear_error(tmp_path, capsys):
    cfg = toy_config(train={"by_epoch": False, "max_iters": 3, "val_interval": 3},
                     param_schedulers=[{"type": "LinearWarmup", "start_factor": 0.1,
                                        "by_epoch": False, "end": 3}])
    config = write_config(tmp_path / "toy.toml", cfg)
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs)]) == 0
    run_dir = only_run_dir(runs)
    before = _snapshot(run_dir)
    capsys.readouterr()
    assert main([str(config), "--work-dir", str(runs), "--resume"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {run_dir / 'iter_3.pth'} already finished 3 iterations (train.max_iters = 3); "
        "nothing to resume; raise train.max_iters with --set to train further"]
    assert _snapshot(run_dir) == before


def test_raising_max_epochs_trains_further(finished):
    config, runs = finished
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set",
                 "train.max_epochs=3"]) == 0
    assert (only_run_dir(runs) / "epoch_3.pth").exists()
