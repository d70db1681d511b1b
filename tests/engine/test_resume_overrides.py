"""``--resume`` with ``--set``: keys the checkpoint decides are refused, not ignored."""

import pytest
from engine_toy import only_run_dir, toy_config, write_config

from core.run import main


@pytest.fixture
def one_epoch(tmp_path):
    config = write_config(tmp_path / "toy.toml", toy_config())
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1"]) == 0
    return config, runs


@pytest.mark.parametrize("override", ["optim.lr=0.5", "param_schedulers.1.gamma=0.1",
                                      "train_dataloader.batch_size=2", "seed=4"])
def test_keys_the_checkpoint_decides_are_refused_on_resume(one_epoch, capsys, override):
    config, runs = one_epoch
    before = (only_run_dir(runs) / "config.toml").read_text()
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: --set {override}: ")
    assert "cannot change on --resume" in err[0]
    assert (only_run_dir(runs) / "config.toml").read_text() == before


def test_keys_that_apply_on_resume_are_used_and_recorded(one_epoch):
    config, runs = one_epoch
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set",
                 "train.max_epochs=3"]) == 0
    run_dir = only_run_dir(runs)
    assert (run_dir / "epoch_3.pth").exists()
    assert "max_epochs = 3" in (run_dir / "config.toml").read_text()
