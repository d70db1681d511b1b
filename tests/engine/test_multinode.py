"""Two "nodes" on this machine: two torchrun agents meeting through a c10d rendezvous (gloo).

One process per node; trained one epoch, resumed to two, the weights equal those of one node
running two processes straight through (same global batch: 2 ranks x batch 4).
"""

import os
import signal
import socket
import subprocess
import sys
import uuid

import torch
from engine_toy import CLI, cli_env, load_weights, only_run_dir, toy_config, write_config

from core.engine import dist
from core.engine.runner import Runner

#: seconds a torchrun command may take (two cores shared with other work)
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill(process: subprocess.Popen) -> None:
    """End ``process`` and its workers (it leads its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _torchrun_nodes(*args: str, nnodes: int = 2) -> None:
    """``nnodes`` torchrun agents, one process each, joined by a fresh c10d rendezvous."""
    endpoint, run_id = f"127.0.0.1:{_free_port()}", uuid.uuid4().hex
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes),
         "--nproc_per_node", "1", "--node_rank", str(node), "--rdzv_backend", "c10d",
         "--rdzv_endpoint", endpoint, "--rdzv_id", run_id, "--rdzv_conf", "join_timeout=120",
         str(CLI), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env(),
        start_new_session=True) for node in range(nnodes)]
    try:
        outputs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            _kill(node)
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]


def _torchrun_standalone(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(CLI), *args], capture_output=True, text=True, timeout=TIMEOUT, env=cli_env())
    assert result.returncode == 0, result.stderr[-3000:]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"weights differ: {different}"


def test_two_nodes_resume_equals_one_node_two_processes(tmp_path):
    config = write_config(tmp_path / "toy.toml", toy_config())

    _torchrun_standalone(str(config), "--work-dir", str(tmp_path / "one_node"))
    straight = load_weights(only_run_dir(tmp_path / "one_node") / "epoch_2.pth")

    runs = tmp_path / "two_nodes"
    _torchrun_nodes(str(config), "--work-dir", str(runs), "--set", "train.max_epochs=1")
    run_dir = only_run_dir(runs)  # the name chosen once, by global rank 0
    assert (run_dir / "last_checkpoint").read_text() == "epoch_1.pth"
    _torchrun_nodes(str(config), "--work-dir", str(runs), "--resume", "--set",
                    "train.max_epochs=2")
    assert only_run_dir(runs) == run_dir  # continued in the same run directory

    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["epoch_1.pth", "epoch_2.pth"]
    assert [p.name for p in run_dir.glob("*.log")] == ["train.log"]
    assert not list(run_dir.glob(".tmp-*"))
    log = (run_dir / "train.log").read_text()
    assert log.count("world size 2") == 2  # each start logged once, by one rank
    assert log.count("resumed from") == 1
    assert log.count("Epoch(val) [1]") == 1 and log.count("Epoch(val) [2]") == 1
    assert "Epoch(train) [2][2/2]" in log  # 16 images / 2 ranks / batch 4
    _assert_same_weights(load_weights(run_dir / "epoch_2.pth"), straight)


def test_a_rank_other_than_0_writes_nothing(tmp_path, monkeypatch):
    # on a node without the work dir's filesystem: no folder, log, checkpoint or picture
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    root = tmp_path / "not_on_this_node"
    Runner.from_config(toy_config(), work_dir=str(root / "run")).train()
    assert not root.exists()
