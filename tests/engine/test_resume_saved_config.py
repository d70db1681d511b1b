"""``--resume`` continues from the run's own ``config.toml``: an override the run was started
with stays in force when the resume leaves it out, repeating it is no change, and the CONFIG
file's differences from the saved config are named, not silently mixed in."""

import sys

import pytest
import torch
from engine_toy import load_weights, only_run_dir, toy_config, write_config

from core.run import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: 16 images in batches of 2 (the config file says 4): 8 iterations an epoch
STARTED_WITH = ["--set", "train_dataloader.batch_size=2"]


def _saved(run_dir):
    return tomllib.loads((run_dir / "config.toml").read_text())


@pytest.fixture
def straight(tmp_path):
    """Two epochs at batch size 2 without interruption: the reference weights."""
    config = write_config(tmp_path / "straight.toml", toy_config())
    assert main([str(config), "--work-dir", str(tmp_path / "straight"), *STARTED_WITH]) == 0
    return load_weights(only_run_dir(tmp_path / "straight") / "epoch_2.pth")


@pytest.fixture
def one_epoch(tmp_path):
    """The first epoch of that run, started with the override."""
    config = write_config(tmp_path / "toy.toml", toy_config())
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs), *STARTED_WITH,
                 "--set", "train.max_epochs=1"]) == 0
    return config, runs


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize("repeated", [[], STARTED_WITH], ids=["dropped", "repeated"])
def test_resume_keeps_the_overrides_the_run_started_with(one_epoch, straight, capsys, repeated):
    config, runs = one_epoch
    run_dir = only_run_dir(runs)
    expected = _saved(run_dir)
    expected["train"]["max_epochs"] = 2
    capsys.readouterr()
    assert main([str(config), "--work-dir", str(runs), "--resume", *repeated,
                 "--set", "train.max_epochs=2"]) == 0
    final = torch.load(run_dir / "epoch_2.pth", weights_only=True)
    assert final["meta"]["iter"] == 16  # 2 epochs x 8 batches of 2
    _assert_same_weights(final["state_dict"], straight)
    assert _saved(run_dir) == expected  # recorded: only the applied change
    err = capsys.readouterr().err
    assert "error" not in err
    if repeated:
        assert not err.strip()  # the same value as the saved config: nothing to say
    else:  # the file says 4, the run keeps its 2: named in one line
        lines = err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"warning: {config} differs from {run_dir / 'config.toml'}")
        assert "train_dataloader.batch_size (saved 2, config file 4)" in lines[0]


@pytest.mark.parametrize("override", ["optim.lr=0.1", "param_schedulers.1.gamma=0.5", "seed=3",
                                      "train_dataloader.batch_size=2"])
def test_resume_accepts_the_saved_value_of_a_key_that_cannot_change(one_epoch, capsys, override):
    config, runs = one_epoch
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set", override,
                 "--set", "train.max_epochs=2"]) == 0
    assert (only_run_dir(runs) / "epoch_2.pth").exists()


def test_an_edited_config_file_is_named_and_not_used(one_epoch, capsys):
    config, runs = one_epoch
    run_dir = only_run_dir(runs)
    edited = toy_config()
    edited["optim"]["lr"] = 0.5
    write_config(config, edited)
    capsys.readouterr()
    assert main([str(config), "--work-dir", str(runs), "--resume",
                 "--set", "train.max_epochs=2"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "optim.lr (saved 0.1, config file 0.5)" in lines[0]
    assert "train_dataloader.batch_size (saved 2, config file 4)" in lines[0]
    assert "--set" in lines[0]
    assert _saved(run_dir)["optim"]["lr"] == 0.1


def test_a_real_change_of_a_key_that_cannot_change_is_refused(one_epoch, capsys):
    config, runs = one_epoch
    before = (only_run_dir(runs) / "config.toml").read_bytes()
    capsys.readouterr()
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set",
                 "train_dataloader.batch_size=4", "--set", "train.max_epochs=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --set train_dataloader.batch_size=4: train_dataloader.batch_size cannot change "
        "on --resume (the resumed position in the epoch depends on the same batches); start a "
        "new run with load_from to change it"]
    assert (only_run_dir(runs) / "config.toml").read_bytes() == before


@pytest.mark.parametrize("override", ["default_hooks.checkpoint.rule=less",
                                      "default_hooks.checkpoint.save_best=toy/acc"])
def test_the_judgement_of_the_best_checkpoint_cannot_change_on_resume(tmp_path, capsys, override):
    hooks = {"checkpoint": {"save_best": "toy/iou", "rule": "greater"}, "logger": {"interval": 2}}
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=hooks))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1"]) == 0
    capsys.readouterr()
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set", override,
                 "--set", "train.max_epochs=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --set {override}: "), err
    assert "cannot change on --resume" in err[0]


def _run_with_references(tmp_path):
    """A CONFIG file whose loaders refer to ``data.num_images``, and a run directory holding
    its saved config (references resolved, as a run saves it)."""
    from core.config import dump_config
    from core.engine.full_config import load_full_config

    cfg = toy_config(data={"num_images": 8})
    cfg["val_dataloader"]["dataset"]["num_images"] = "${data.num_images}"
    cfg["test_dataloader"] = {"batch_size": 4, "dataset": {
        "type": "ToyDataset", "num_images": "${data.num_images}"}}
    config = write_config(tmp_path / "refs.toml", cfg)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(dump_config(load_full_config(str(config))))
    return config, run_dir


def test_an_override_on_resume_reaches_the_keys_referring_to_it(tmp_path):
    from core.engine.resume_config import plan_resume

    config, run_dir = _run_with_references(tmp_path)
    plan = plan_resume(run_dir / "epoch_1.pth", str(config), ["data.num_images=4"])
    assert plan.config["data"]["num_images"] == 4
    assert plan.config["val_dataloader"]["dataset"]["num_images"] == 4
    assert plan.config["test_dataloader"]["dataset"]["num_images"] == 4
    assert plan.config["train_dataloader"]["dataset"]["num_images"] == 16
    assert plan.warning == ""


def test_an_override_reaching_a_key_that_cannot_change_is_refused(tmp_path):
    from core.engine.resume_config import plan_resume
    from core.errors import ConfigError

    config, run_dir = _run_with_references(tmp_path)
    text = config.read_text().replace('num_images = 16', 'num_images = "${data.num_images}"')
    config.write_text(text)
    with pytest.raises(ConfigError, match=r"^--set data.num_images=4: "
                       r"train_dataloader.dataset.num_images cannot change on --resume"):
        plan_resume(run_dir / "epoch_1.pth", str(config), ["data.num_images=4"])
