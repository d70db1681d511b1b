"""The closing lines of a resumed run name the best validation of the whole run, the same one
the best checkpoint file holds, under either rule."""

import re

import pytest
from engine_toy import only_run_dir, toy_config, write_config

from core.run import main


def _hooks(rule: str) -> dict:
    # toy/num_images is 8.0 at every validation: under either rule only the first one is best
    return {"checkpoint": {"save_best": "toy/num_images", "rule": rule, "max_keep": 0},
            "logger": {"interval": 2}, "summary": {"type": "RunSummaryHook"}}


@pytest.mark.parametrize("rule", ["less", "greater"])
def test_closing_line_after_resume_agrees_with_the_best_checkpoint(tmp_path, rule):
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=_hooks(rule)))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1"]) == 0
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set",
                 "train.max_epochs=2"]) == 0
    run_dir = only_run_dir(runs)
    assert sorted(p.name for p in run_dir.glob("best_*.pth")) == [
        "best_toy_num_images_epoch_1.pth"]
    closing = (run_dir / "train.log").read_text().split("resumed from", 1)[1]
    assert re.search(r"best toy/num_images = 8\.0000 at epoch 1\b", closing), closing
    assert f"best checkpoint: {run_dir / 'best_toy_num_images_epoch_1.pth'}" in closing


def test_summary_of_a_metric_other_than_save_best_covers_the_epochs_before_resume(tmp_path):
    hooks = {"logger": {"interval": 2},
             "summary": {"type": "RunSummaryHook", "metric": "toy/num_images"}}
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=hooks))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1"]) == 0
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set",
                 "train.max_epochs=2"]) == 0
    closing = (only_run_dir(runs) / "train.log").read_text().split("resumed from", 1)[1]
    assert re.search(r"best toy/num_images = 8\.0000 at epoch 1\b", closing), closing


def test_summary_added_on_resume_reports_the_best_checkpoint_of_the_whole_run(tmp_path):
    hooks = {"checkpoint": {"save_best": "toy/num_images", "rule": "less", "max_keep": 0},
             "logger": {"interval": 2}}
    config = write_config(tmp_path / "toy.toml", toy_config(default_hooks=hooks))
    runs = tmp_path / "runs"
    assert main([str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1"]) == 0
    assert main([str(config), "--work-dir", str(runs), "--resume", "--set", "train.max_epochs=2",
                 "--set-new", "--set", "default_hooks.summary.type=RunSummaryHook"]) == 0
    closing = (only_run_dir(runs) / "train.log").read_text().split("resumed from", 1)[1]
    assert re.search(r"best toy/num_images = 8\.0000 at epoch 1\b", closing), closing
