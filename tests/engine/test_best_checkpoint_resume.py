"""The best score, its epoch and file travel in every checkpoint and survive a resume."""

from engine_toy import only_run_dir, toy_config, write_config

from core.engine.checkpoint import load_checkpoint
from core.run import main

# toy/num_images is 8.0 at every validation: only the first one is a new best
BEST = {"checkpoint": {"save_best": "toy/num_images", "rule": "greater", "max_keep": 0},
        "logger": {"interval": 2}}


def test_epoch_checkpoint_holds_the_best_score_of_its_own_validation(tmp_path):
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=BEST))
    assert main([str(config), "--work-dir", str(tmp_path / "runs"), "--set",
                 "train.max_epochs=1"]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    state = load_checkpoint(run_dir / "epoch_1.pth")["hooks"]["checkpoint"]
    assert state["best_score"] == 8.0
    assert state["best_file"] == "best_toy_num_images_epoch_1.pth"
    assert state["best_epoch"] == 1


def test_resumed_run_keeps_one_best_checkpoint_and_the_earlier_best(tmp_path):
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=BEST))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1"]) == 0
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set",
                 "train.max_epochs=2"]) == 0
    run_dir = only_run_dir(runs)
    assert sorted(p.name for p in run_dir.glob("best_*.pth")) == [
        "best_toy_num_images_epoch_1.pth"]
    assert (run_dir / "train.log").read_text().count("new best") == 1
    state = load_checkpoint(run_dir / "epoch_2.pth")["hooks"]["checkpoint"]
    assert (state["best_score"], state["best_epoch"]) == (8.0, 1)
