"""The engine's CPU settings: freed memory kept in the heap, subnormals flushed, the config
key and what the first log line says."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from core.engine.cpu_tuning import apply_cpu_settings, flush_denormals
from core.engine.runner import Runner
from core.errors import ConfigError
from tests.engine.engine_toy import toy_config

#: a forward pass's worth of activations of several sizes, freed and made again 5 times
ACTIVATIONS = textwrap.dedent("""
    import resource, sys, torch
    if sys.argv[1] == "keep":
        from core.engine.cpu_tuning import keep_freed_memory
        assert keep_freed_memory()
    sizes = [(1 << 20) * k for k in (1, 3, 2, 8, 5, 4, 6, 2, 7, 3)] * 3
    faults = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        tensors = [torch.ones(n // 4) for n in sizes]
        del tensors
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sum(faults[1:]))
""")


def _page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ACTIVATIONS, mode], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    # 123 MiB of tensors per round: without the setting glibc gives much of it back when it
    # is freed and later rounds fault those pages in again (32,000 faults in the 4 later
    # rounds on the developers' machine); with it they reuse the heap (256; 1,792 on another run)
    default, kept = _page_faults("default"), _page_faults("keep")
    assert default > 10_000
    assert kept < default / 5


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="CPU without FTZ/DAZ")
def test_flushed_subnormals_become_zero_and_others_are_unchanged():
    subnormal = torch.tensor([1e-40, 3.0e-39, 1.0], dtype=torch.float32)
    try:
        assert flush_denormals(True)
        product = subnormal * 1.0
        assert product.tolist() == [0.0, 0.0, 1.0]
        assert (torch.tensor([1.5e-38]) * 1.0).item() == pytest.approx(1.5e-38)
        flush_denormals(False)
        assert (subnormal * 1.0)[0].item() == pytest.approx(1e-40, rel=0.01)
    finally:
        flush_denormals(False)


def test_run_settings_and_first_log_line(tmp_path):
    try:
        runner = Runner.from_config(toy_config(), work_dir=str(tmp_path / "a"))
        assert runner.settings.flush_denormal
        runner.train()
        assert "subnormals flushed to zero" in (tmp_path / "a" / "train.log").read_text()
        assert (torch.tensor([1e-40]) * 1.0).item() == 0.0
        runner = Runner.from_config(toy_config(flush_denormal=False),
                                    work_dir=str(tmp_path / "b"))
        runner.train()
        assert "subnormals kept" in (tmp_path / "b" / "train.log").read_text()
        assert (torch.tensor([1e-40]) * 1.0).item() != 0.0
    finally:
        flush_denormals(False)


def test_flush_denormal_must_be_a_bool(tmp_path):
    with pytest.raises(ConfigError, match="flush_denormal"):
        Runner.from_config(toy_config(flush_denormal="yes"), work_dir=str(tmp_path / "r"))


def test_apply_cpu_settings_describes_them():
    try:
        assert apply_cpu_settings(False) == "subnormals kept"
    finally:
        flush_denormals(False)
