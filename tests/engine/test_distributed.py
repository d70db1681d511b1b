"""Two-process CPU training with torchrun (gloo)."""

import json
import subprocess
import sys

import pytest
from engine_toy import CLI, cli_env, only_run_dir, toy_config, write_config

from core.run import main


def _torchrun(*args):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(CLI), *args], capture_output=True, text=True, timeout=300, env=cli_env())
    assert result.returncode == 0, result.stderr[-3000:]


def test_torchrun_two_processes_one_set_of_outputs_and_equal_evaluation(tmp_path):
    # 9 test images: the distributed sampler pads rank 1 with a repeated image
    config = write_config(tmp_path / "toy.toml", toy_config(test_dataloader={
        "batch_size": 2, "dataset": {"type": "ToyDataset", "num_images": 9, "augment": False}}))
    runs = tmp_path / "runs"
    _torchrun(str(config), "--work-dir", str(runs))
    run_dir = only_run_dir(runs)  # both ranks wrote into one run directory
    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["epoch_1.pth", "epoch_2.pth"]
    assert [p.name for p in run_dir.glob("*.log")] == ["train.log"]
    log = (run_dir / "train.log").read_text()
    assert "world size 2" in log
    assert log.count("Epoch(val) [2]") == 1  # rank 1 does not log
    assert "Epoch(train) [1][2/2]" in log  # 16 images / 2 ranks / batch 4
    records = [json.loads(line) for line in
               (run_dir / "vis_data" / "scalars.json").read_text().splitlines()]
    assert len([r for r in records if "val/toy/iou" in r]) == 2  # written once, not per rank
    distributed_val = [r for r in records if "val/toy/iou" in r][-1]
    assert distributed_val["val/toy/num_images"] == 8.0  # gathered from both ranks

    validation = write_config(tmp_path / "val.toml", toy_config())  # tests on the val set
    out = tmp_path / "single_val.json"
    assert main([str(validation), "--work-dir", str(tmp_path / "test"), "--test",
                 str(run_dir / "epoch_2.pth"), "--out", str(out)]) == 0
    single = json.loads(out.read_text())["metrics"]
    assert single["toy/iou"] == pytest.approx(distributed_val["val/toy/iou"], abs=1e-7)
    assert single["toy/acc"] == distributed_val["val/toy/acc"]

    checkpoint = str(run_dir / "epoch_2.pth")
    single_out, two_out = tmp_path / "single.json", tmp_path / "two.json"
    assert main([str(config), "--work-dir", str(tmp_path / "t1"), "--test", checkpoint,
                 "--out", str(single_out)]) == 0
    _torchrun(str(config), "--work-dir", str(tmp_path / "t2"), "--test", checkpoint,
              "--out", str(two_out))
    single, two = json.loads(single_out.read_text()), json.loads(two_out.read_text())
    assert two["metrics"]["toy/num_images"] == 9.0
    assert two["metrics"] == pytest.approx(single["metrics"], abs=1e-7)
    assert [p["img_id"] for p in two["predictions"]] == list(range(9))
    for a, b in zip(single["predictions"], two["predictions"], strict=True):
        assert a["boxes"][0] == pytest.approx(b["boxes"][0], abs=1e-5)
        assert a["labels"] == b["labels"]
