"""assigner_vis with the weights of a checkpoint: YOLOv8's TaskAligned positives come from the
loaded model's predictions (training weights or the EMA ones), untrained models get a warning,
bad checkpoint files are clear errors."""

import json
from importlib import resources

import pytest
import torch
from assigner_vis.cli import SUMMARY_FILE, main

from core.config import load_config
from core.data.datasets.shapes import CACHE_ENV
from core.data.loader import build_dataloader
from core.engine.checkpoint import load_checkpoint, save_checkpoint
from core.engine.full_config import load_full_config
from core.engine.randomness import set_random_seed
from core.engine.runner import Runner
from core.plugins import get_registries

YOLOV8 = str(resources.files("plugdet_yolo") / "configs" / "yolov8_n_demo_shapes.toml")
SIMOTA = str(resources.files("plugdet_retinanet") / "configs" / (
    "retinanet_tinynet_fpn_points_simota_demo_shapes.toml"))
NUM_IMAGES = 2
VIS_OVERRIDES = [f"train_dataloader.dataset.num_images={NUM_IMAGES}"]
#: One training iteration of the demo (8 images, batch 8), checkpoint written after it.
ONE_ITERATION = [
    "train_dataloader.dataset.num_images=8",
    "train_dataloader.batch_size=8",
    "val_dataloader.dataset.num_images=2",
    "test_dataloader.dataset.num_images=2",
    "train.max_epochs=1",
    "train.val_interval=1",
    "param_schedulers.0.end=1",
    "param_schedulers.1.end=1",
    "default_hooks.checkpoint.interval=1",
]
#: Box sides (left, top, right, bottom) in strides of the "leaning" model below.
LEANING_SIDES = (0, 0, 3, 3)


def vis(config: str, out, *extra: str) -> int:
    return main([config, "--out", str(out), "--n", str(NUM_IMAGES), *extra,
                 *[a for o in VIS_OVERRIDES for a in ("--set", o)]])


def build_model(config: str, seed: int = 0):
    """The detector of ``config`` as the visualizer builds it (seeded like a training run)."""
    cfg = load_full_config(config, overrides=VIS_OVERRIDES)
    set_random_seed(seed)
    return get_registries().build("detector", cfg["model"], path="model")


def direct_assignments(config: str, state: dict[str, torch.Tensor] | None):
    """Per image and level ``(prior_inds, gt_inds)`` of ``head.get_assignments`` of the
    model with ``state`` loaded (None: the initial weights)."""
    detector = build_model(config)
    if state is not None:
        detector.load_state_dict(state, strict=True)
    detector.eval()
    cfg = load_config(config, overrides=VIS_OVERRIDES)
    table = {**cfg["train_dataloader"], "shuffle": False, "batch_size": 1, "num_workers": 0}
    table["dataset"] = {**table["dataset"],
                        "pipeline": cfg["val_dataloader"]["dataset"]["pipeline"]}
    result = []
    for batch in build_dataloader(table, path="train_dataloader", seed=0):
        with torch.no_grad():
            found = detector.head.get_assignments(detector.extract_feat(batch.images),
                                                  batch.samples)
        result.append([(inds.tolist(), gt.tolist())
                       for inds, gt in zip(found.pos_inds[0], found.pos_gt_inds[0],
                                           strict=True)])
    return result


def drawn(out) -> list[list[tuple[list[int], list[int]]]]:
    return [[(lv["prior_inds"], lv["gt_inds"]) for lv in image["levels"]]
            for image in json.loads((out / SUMMARY_FILE).read_text())]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A checkpoint of one real training iteration of the YOLOv8 demo (with the EMAHook's
    ``ema_state_dict``), and a copy whose training weights predict every box as
    ``LEANING_SIDES`` (the last box conv zeroed, its bias one-hot per side) so that
    TaskAligned prefers other priors than for the untrained model; its EMA weights stay."""
    root = tmp_path_factory.mktemp("vis_checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))
        runner = Runner.from_config(load_full_config(YOLOV8, ONE_ITERATION),
                                    work_dir=str(root / "run"), config_path=YOLOV8)
        runner.train()
        trained = root / "run" / "epoch_1.pth"
        checkpoint = load_checkpoint(trained)
        detector = build_model(YOLOV8)
        detector.load_state_dict(checkpoint["state_dict"])
        reg_max = detector.head.reg_max
        bias = torch.full((4, reg_max), -10.0)
        bias[torch.arange(4), torch.tensor(LEANING_SIDES)] = 10.0
        with torch.no_grad():
            for branch in detector.head.reg_branches:
                branch[-1].weight.zero_()
                branch[-1].bias.copy_(bias.flatten())
        leaning = root / "leaning.pth"
        save_checkpoint({**checkpoint, "state_dict": detector.state_dict()}, leaning)
        yield {"trained": trained, "leaning": leaning, "root": root}


def test_taskaligned_positives_are_the_loaded_models(checkpoints, capsys):
    root, leaning = checkpoints["root"], checkpoints["leaning"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))
        assert vis(YOLOV8, root / "leaning", "--checkpoint", str(leaning)) == 0
        assert "warning" not in capsys.readouterr().err
        state = load_checkpoint(leaning)["state_dict"]
        expected = direct_assignments(YOLOV8, state)
        untrained = direct_assignments(YOLOV8, None)
    got = drawn(root / "leaning")
    assert got == expected
    assert sum(len(inds) for image in got for inds, _ in image) > 0
    assert got != untrained  # the loaded weights decide the positives
    for image in json.loads((root / "leaning" / SUMMARY_FILE).read_text()):
        assert image["weights"] == {"checkpoint": str(leaning), "state": "state_dict",
                                    "epoch": 1, "iter": 1}
        assert {lv["prior_type"] for lv in image["levels"]} == {"point"}


def test_ema_uses_the_averaged_weights(checkpoints):
    root, leaning = checkpoints["root"], checkpoints["leaning"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))
        assert vis(YOLOV8, root / "ema", "--checkpoint", str(leaning), "--ema") == 0
        ema = load_checkpoint(leaning)["ema_state_dict"]
        expected = direct_assignments(YOLOV8, ema)
        training = direct_assignments(YOLOV8, load_checkpoint(leaning)["state_dict"])
    got = drawn(root / "ema")
    assert got == expected and got != training
    summary = json.loads((root / "ema" / SUMMARY_FILE).read_text())
    assert summary[0]["weights"]["state"] == "ema_state_dict"


def test_the_trained_checkpoint_loads_and_an_untrained_model_warns(checkpoints, capsys):
    root, trained = checkpoints["root"], checkpoints["trained"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root / "data"))
        assert vis(YOLOV8, root / "trained", "--checkpoint", str(trained)) == 0
        assert vis(YOLOV8, root / "untrained") == 0
        err = capsys.readouterr().err
        expected = direct_assignments(YOLOV8, load_checkpoint(trained)["state_dict"])
        untrained = direct_assignments(YOLOV8, None)
    assert "warning: TaskAlignedAssigner" in err and "untrained model" in err
    assert drawn(root / "trained") == expected
    assert drawn(root / "untrained") == untrained  # the initial weights of a training run
    summary = json.loads((root / "untrained" / SUMMARY_FILE).read_text())
    assert summary[0]["weights"] == {"checkpoint": None, "state": "initial", "epoch": None,
                                     "iter": None}


def test_a_corrupt_checkpoint_is_a_clear_error(checkpoints, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint" * 64)
    truncated = tmp_path / "truncated.pth"
    data = checkpoints["trained"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for path in (corrupt, truncated):
        assert vis(YOLOV8, tmp_path / "o", "--checkpoint", str(path)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot read checkpoint {path} (")
        assert "truncated or corrupt" in err and "weights_only=False" not in err
    missing = tmp_path / "missing.pth"
    assert vis(YOLOV8, tmp_path / "o", "--checkpoint", str(missing)) == 2
    assert f"checkpoint file not found: {missing}" in capsys.readouterr().err


def test_a_checkpoint_that_does_not_fit_is_a_clear_error(checkpoints, tmp_path, capsys):
    trained = checkpoints["trained"]
    assert vis(SIMOTA, tmp_path / "o", "--checkpoint", str(trained)) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {trained} does not fit the model" in err and "missing keys" in err


def test_ema_needs_a_checkpoint_with_ema_weights(tmp_path, capsys):
    plain = tmp_path / "plain.pth"
    save_checkpoint({"state_dict": build_model(YOLOV8).state_dict()}, plain)
    assert vis(YOLOV8, tmp_path / "o", "--checkpoint", str(plain), "--ema") == 2
    err = capsys.readouterr().err
    assert str(plain) in err and "ema_state_dict" in err
    assert vis(YOLOV8, tmp_path / "o", "--ema") == 2
    assert "--ema: needs --checkpoint" in capsys.readouterr().err
