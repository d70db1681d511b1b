"""Stage contracts: components lacking a member are refused at start-up, plugins declare
stages, component errors carry their config path, model code never imports the engine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Protocol, runtime_checkable

import pytest
import torch

from core import contracts, impl
from core.errors import ConfigError, PluginError
from core.plugins import PluginManager, format_listing, get_registries
from core.registry import component

from .conftest import make_distribution

ROOT = Path(__file__).resolve().parents[2]


class NoAssign:
    """An assigner without ``assign``."""

    uses_predictions = False

    def match(self, priors, gt):
        return None


class OldLoss(torch.nn.Module):
    """A loss written before heads passed ``avg_factor``."""

    def forward(self, pred, target, weight=None):
        return (pred - target).abs().mean()


def make_assigner():  # no return annotation: only the built object can be checked
    return NoAssign()


def test_missing_contract_member_fails_at_start_up_naming_component_and_member(manager_with):
    class Broken:
        @impl
        def register_assigners(self, register):
            register("NoAssign", NoAssign)

    manager = manager_with(broken=Broken())
    (failure,) = manager.failures
    assert failure.error == ("ContractError: assigner 'NoAssign' from broken 0 (plugin 'broken') "
                             "does not satisfy core.contracts.Assigner: missing assign")
    assert "NoAssign" not in manager.registries["assigner"]


def test_a_loss_must_take_avg_factor(manager_with):
    class Old:
        @impl
        def register_losses(self, register):
            register("OldLoss", OldLoss)

    (failure,) = manager_with(old=Old()).failures
    assert failure.error.endswith(r"missing forward(avg_factor=...)")


def test_a_builtin_breaking_its_contract_stops_the_start_up(tmp_path, monkeypatch):
    (tmp_path / "builtin_broken.py").write_text(
        "from core import impl\n\n@impl\ndef register_assigners(register):\n"
        "    register('NoAssign', object)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="missing assign"):
        PluginManager(builtins=("builtin_broken",), use_entry_points=False).load()


def test_a_factory_function_is_checked_on_what_it_builds(manager_with):
    class Factory:
        @impl
        def register_assigners(self, register):
            register("Made", make_assigner)

    registries = manager_with(factory=Factory()).registries  # no class to check yet
    with pytest.raises(PluginError, match=r"assigner 'Made' .* missing assign"):
        registries.build("assigner", {"type": "Made"}, "model.head.assigner")


def test_start_up_of_a_distribution_with_a_broken_component_exits_2(tmp_path, subprocess_env):
    make_distribution(tmp_path, "plugdet-bad", "plugdet_bad", """
        from core import impl

        class Coder:
            encode_size = 4

            def encode(self, priors, boxes, strides=None):
                return boxes

        @impl
        def register_coders(register):
            register("HalfCoder", Coder)
        """, version="0.5")
    result = subprocess.run([sys.executable, "-m", "core.plugins"], env=subprocess_env,
                            capture_output=True, text=True, check=True)
    assert ("plugdet-bad 0.5 [plugdet_bad]: ContractError: coder 'HalfCoder' from plugdet-bad "
            "0.5 (plugin 'plugdet_bad') does not satisfy core.contracts.BoxCoder: missing decode"
            ) in result.stdout


@runtime_checkable
class RoIExtractor(Protocol):
    """Features of each box: ``extract(feats, boxes) -> (K, C, S, S)``."""

    def extract(self, feats, boxes): ...


class MeanPool:
    def __init__(self, size: int = 7):
        self.size = size

    def extract(self, feats, boxes):
        return feats


class UsesExtractor:
    def __init__(self, extractor: Annotated[object, component("roi_extractor")] = {
                     "type": "MeanPool"}):
        self.extractor = extractor

    def loss(self, *args):
        return {}

    def predict(self, *args):
        return []


class DeclaresStage:
    @impl
    def declare_stages(self, declare):
        declare("roi_extractor", RoIExtractor, "features of each box")

    @impl
    def register_roi_extractors(self, register):
        register("MeanPool", MeanPool)

    @impl
    def register_heads(self, register):
        register("UsesExtractor", UsesExtractor)


def test_a_plugin_declares_a_stage_and_a_config_uses_it(manager_with):
    manager = manager_with(declaring=DeclaresStage())
    registries = manager.registries
    assert "roi_extractor" in registries.stages
    head = registries.build("head", {"type": "UsesExtractor",
                                     "extractor": {"type": "MeanPool", "size": 14}})
    assert isinstance(head.extractor, MeanPool) and head.extractor.size == 14
    assert registries.build("head", {"type": "UsesExtractor"}).extractor.size == 7
    with pytest.raises(ConfigError, match=r"extractor\.size: expected int"):
        registries.build("head", {"type": "UsesExtractor", "extractor": {"type": "MeanPool",
                                                                         "size": "big"}})
    listing = format_listing(manager)
    assert "stages declared by plugins: roi_extractor (from declaring)" in listing
    assert "roi_extractor    MeanPool" in listing
    stages = {s["name"]: s for s in manager.as_dict()["stages"]}
    assert stages["roi_extractor"]["contract"] == "RoIExtractor"


def test_a_declared_stage_checks_its_contract(manager_with):
    class Bad(DeclaresStage):
        @impl
        def register_roi_extractors(self, register):
            register("NoExtract", object)

    (failure,) = manager_with(bad=Bad()).failures
    assert "RoIExtractor: missing extract" in failure.error


def test_incompatible_plugin_is_listed_with_both_versions_and_not_imported(tmp_path,
                                                                           subprocess_env):
    make_distribution(tmp_path, "plugdet-future", "plugdet_future",
                      "raise SystemExit('imported')\n", version="3.0",
                      requires=("plugdet>=0.9", "torch"))
    result = subprocess.run([sys.executable, "-m", "core.plugins", "--json"],
                            env=subprocess_env, capture_output=True, text=True, check=True)
    listing = json.loads(result.stdout)
    assert listing["kernel"]["plugin_api"] == contracts.PLUGIN_API_VERSION
    (item,) = listing["incompatible"]
    assert item == {"name": "plugdet_future", "distribution": "plugdet-future",
                    "version": "3.0", "requirement": "plugdet>=0.9"}
    text = subprocess.run([sys.executable, "-m", "core.plugins"], env=subprocess_env,
                          capture_output=True, text=True, check=True).stdout
    assert "plugdet-future 3.0 [plugdet_future] needs plugdet>=0.9; this kernel is plugdet" in text


def test_every_distribution_here_declares_the_api_range():
    import tomllib

    for pyproject in [ROOT / "plugins/retinanet", ROOT / "plugins/tensorboard",
                      ROOT / "plugins/wandb", ROOT / "contrib/assigner_vis",
                      ROOT / "contrib/plugin_template"]:
        project = tomllib.loads((pyproject / "pyproject.toml").read_text())["project"]
        (kernel,) = [d for d in project["dependencies"] if d.startswith("plugdet")]
        assert kernel == "plugdet>=0.2,<0.3", pyproject
    import core

    assert core.__version__.startswith(contracts.PLUGIN_API_VERSION + ".")


def test_a_components_own_error_gets_its_config_path():
    regs = get_registries()
    with pytest.raises(ConfigError) as error:
        regs.build("detector", {
            "type": "RetinaNet", "backbone": {"type": "TinyNet"},
            "head": {"type": "RetinaHead", "num_classes": 0}}, "model")
    assert str(error.value) == "model.head.num_classes: expected a positive int, got 0"
    with pytest.raises(ConfigError) as error:
        regs.build("head", {"type": "RetinaHead", "assigner": {
            "type": "MaxIoUAssigner", "pos_iou_thr": 0.3, "neg_iou_thr": 0.5}}, "model.head")
    assert str(error.value) == ("model.head.assigner: neg_iou_thr (0.5) must not exceed "
                                "pos_iou_thr (0.3)")


def test_a_head_built_in_code_names_its_part():
    from plugdet_retinanet import RetinaHead

    with pytest.raises(ConfigError, match=r"^assigner\.type: unknown assigner 'Nope'"):
        RetinaHead(assigner={"type": "Nope"})


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_model_code_never_imports_the_engine():
    model_files = [*(ROOT / "core/models").rglob("*.py"), ROOT / "core/contracts.py"]
    for plugin in (ROOT / "plugins").iterdir():
        # a plugin's runner hooks live in a `hooks` package: engine code, not model code
        model_files += [p for p in plugin.rglob("*.py")
                        if not {"tests", "hooks"} & set(p.relative_to(plugin).parts)]
    model_files = [p for p in model_files if p.parent.name not in ("plugdet_tensorboard",
                                                                   "plugdet_wandb")]
    assert len(model_files) > 20
    for path in model_files:
        engine = [m for m in _imported_modules(path) if m.startswith("core.engine")]
        assert not engine, f"{path.relative_to(ROOT)} imports {engine}"


def test_every_builtin_component_satisfies_its_contract():
    regs = get_registries()
    for stage in regs.stages:
        contract = regs[stage].spec.contract
        for entry in regs[stage]:
            if contract is not None and isinstance(entry.factory, type):
                assert contracts.missing_members(contract, entry.factory) == [], entry.name


def test_scalar_only_vis_backend_overrides_one_method(tmp_path):
    from core.visualization import Visualizer
    from core.visualization.backends.base import BaseVisBackend

    class Scalars(BaseVisBackend):
        def __init__(self, save_dir: str = ""):
            super().__init__(save_dir)
            self.rows = []

        def add_scalars(self, scalars, step=0):
            self.rows.append((step, dict(scalars)))

    backend = Scalars()
    assert contracts.missing_members(contracts.VisBackend, Scalars) == []
    visualizer = Visualizer(name="scalars-only", vis_backends=[backend], save_dir=str(tmp_path))
    visualizer.add_config({"a": 1})
    visualizer.add_image("img", torch.zeros(4, 4, 3, dtype=torch.uint8).numpy())
    visualizer.add_scalar("loss", 0.5, step=3)
    visualizer.close()
    assert backend.rows == [(3, {"loss": 0.5})]
