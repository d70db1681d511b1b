"""The outside plugin of docs/plugins.md: three components of three stages (a loss that takes
soft targets, a neck, a box coder), written against ``core.api`` only, installed with pip,
discovered through its entry point and trained inside RetinaHead by config."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).resolve().parent / "outside_plugin"
MODULE = PLUGIN / "plugdet_outside" / "__init__.py"
DOC = ROOT / "docs" / "plugins.md"
DOC_SECTION = "## Worked example: a plugin of three stages with a soft-target loss"
MAX_CODE_LINES = 40

#: Builds a small RetinaNet with the plugin's three components chosen by type name, trains
#: three iterations on a toy batch and prints what the components saw.
TRAIN = """
import json
import torch
from core.plugins import get_registries
from core.structures import DetBatch, DetSample, Instances

config = {
    "type": "RetinaNet",
    "backbone": {"type": "TinyNet", "widths": [8, 16, 32], "depths": [1, 1, 1],
                 "out_indices": [1, 2]},
    "neck": {"type": "OneByOneNeck", "in_channels": [16, 32], "out_channels": 8},
    "head": {"type": "RetinaHead", "num_classes": 3, "in_channels": 8, "feat_channels": 8,
             "stacked_convs": 1, "loss_cls": {"type": "VarifocalLoss"},
             "bbox_coder": {"type": "CornerCoder"},
             "prior_generator": {"type": "AnchorGenerator", "strides": [8, 16],
                                 "ratios": [1.0], "scales_per_octave": 1}},
}
torch.manual_seed(0)
model = get_registries().build("detector", config, "model")
seen = {"neck_shapes": [], "loss_targets": [], "decoded": 0}
model.neck.register_forward_hook(
    lambda module, args, out: seen["neck_shapes"].append([list(o.shape) for o in out]))
model.head.loss_cls.register_forward_hook(lambda module, args, out: seen["loss_targets"].append(
    [str(args[1].dtype), list(args[1].shape), float(args[1].max())]))
decode = model.head.bbox_coder.decode
def counting_decode(*args, **kwargs):
    seen["decoded"] += 1
    return decode(*args, **kwargs)
model.head.bbox_coder.decode = counting_decode
gts = [Instances(torch.tensor([[4.0, 4, 30, 28], [30, 30, 60, 62]]), torch.tensor([0, 2])),
       Instances(torch.tensor([[10.0, 8, 40, 50]]), torch.tensor([1]))]
samples = [DetSample(img_shape=(64, 64), pad_shape=(64, 64), gt=gt) for gt in gts]
images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
totals = []
for _ in range(3):
    losses = model.loss(DetBatch(images, samples))
    total = losses["loss_cls"] + losses["loss_bbox"]
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    totals.append(float(total))
print(json.dumps({
    "modules": [type(part).__module__
                for part in (model.neck, model.head.loss_cls, model.head.bbox_coder)],
    "target_form": model.head.cls_target_form, "totals": totals, **seen}))
"""


def code_lines(source: str) -> int:
    """Lines that are neither blank nor comments."""
    return sum(1 for line in source.splitlines()
               if line.strip() and not line.strip().startswith("#"))


def documented_plugin() -> str:
    """The first python block of the walkthrough section of docs/plugins.md."""
    text = DOC.read_text()
    assert DOC_SECTION in text, f"{DOC} lacks the section {DOC_SECTION!r}"
    section = text.split(DOC_SECTION, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block under {DOC_SECTION!r}"
    return match.group(1)


def test_the_docs_show_exactly_the_plugin_that_is_tested():
    assert documented_plugin() == MODULE.read_text()


def test_the_plugin_fits_in_40_lines_and_imports_only_the_public_api():
    source = MODULE.read_text()
    assert code_lines(source) <= MAX_CODE_LINES
    kernel_imports = [node.module for node in ast.walk(ast.parse(source))
                      if isinstance(node, ast.ImportFrom) and node.module
                      and node.module.split(".")[0] == "core"]
    assert kernel_imports == ["core.api"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin installed with pip into a directory of its own (the environment stays as
    it is); a copy of the source is built so that nothing is written next to it."""
    work = tmp_path_factory.mktemp("outside")
    source = shutil.copytree(PLUGIN, work / "src")
    target = work / "site"
    isolation = [] if importlib.util.find_spec("setuptools") is None else [
        "--no-build-isolation"]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", *isolation, "--target",
         str(target), str(source)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def run_with(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          check=False, env=env, cwd=site.parent)


def test_the_installed_plugin_is_listed_with_its_three_components(site):
    result = run_with(site, "-m", "core.plugins", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["plugdet-outside"]["components"] == {
        "loss": ["VarifocalLoss"], "neck": ["OneByOneNeck"], "coder": ["CornerCoder"]}


def test_the_installed_plugin_trains_inside_retinahead(site):
    result = run_with(site, "-c", TRAIN)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["modules"] == ["plugdet_outside"] * 3
    assert seen["target_form"] == "soft"
    assert seen["neck_shapes"] == [[[2, 8, 8, 8], [2, 8, 4, 4]]] * 3
    assert len(seen["loss_targets"]) == 3
    for dtype, shape, largest in seen["loss_targets"]:  # (B * N, C) soft targets
        assert dtype == "torch.float32" and shape == [2 * (8 * 8 + 4 * 4), 3]
        assert 0 < largest <= 1
    assert seen["decoded"] >= 3  # the positives' IoU comes from the plugin's decoded boxes
    assert all(math.isfinite(total) and total > 0 for total in seen["totals"])
