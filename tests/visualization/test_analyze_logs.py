"""analyze_logs: finding runs, suffix key matching, curves of several runs, clear errors."""

import pytest
from PIL import Image

from core.errors import DataError
from core.tools.analyze_logs import curve_panels, find_scalar_file, load_run, main, match_key
from core.visualization import LocalVisBackend


def write_run(root, name, losses, maps):
    backend = LocalVisBackend(save_dir=str(root / name))
    for step, loss in losses:
        backend.add_scalars({"train/loss": loss + 1, "train/loss_cls": loss}, step=step)
    for step, value in maps:
        backend.add_scalars({"val/coco/bbox_mAP": value, "val/coco/bbox_mAP_50": 0.9}, step=step)
    return root / name


def test_keys_match_whole_name_segments_only():
    names = ["train/loss", "train/loss_cls", "val/coco/bbox_mAP", "val/coco/bbox_mAP_50"]
    assert match_key(names, "loss") == ["train/loss"]
    assert match_key(names, "bbox_mAP") == ["val/coco/bbox_mAP"]
    assert match_key(names, "coco/bbox_mAP_50") == ["val/coco/bbox_mAP_50"]
    assert match_key(names, "mAP") == []


def test_latest_run_of_a_work_root_is_used(tmp_path):
    write_run(tmp_path / "exp", "20260101_000000", [(1, 5.0)], [])
    newest = write_run(tmp_path / "exp", "20260102_000000", [(1, 3.0)], [])
    assert find_scalar_file(tmp_path / "exp") == newest / "vis_data" / "scalars.json"
    run = load_run(tmp_path / "exp")
    assert run.label == "exp/20260102_000000"
    assert run.series["train/loss_cls"] == [(1, 3.0)]


def test_curves_of_two_runs_are_plotted(tmp_path, capsys):
    first = write_run(tmp_path, "a", [(10, 2.0), (20, 1.5)], [(20, 0.1)])
    second = write_run(tmp_path, "b", [(10, 2.5), (20, 1.0)], [(20, 0.3)])
    runs = [load_run(first, "A"), load_run(second, "B")]
    loss_panel, map_panel = curve_panels(runs, ["loss_cls", "bbox_mAP"])
    assert loss_panel == [("A train/loss_cls", [(10, 2.0), (20, 1.5)]),
                          ("B train/loss_cls", [(10, 2.5), (20, 1.0)])]
    assert map_panel == [("A val/coco/bbox_mAP", [(20, 0.1)]),
                         ("B val/coco/bbox_mAP", [(20, 0.3)])]

    out = tmp_path / "plots" / "curves.png"
    code = main([str(first), str(second), "--keys", "loss_cls", "bbox_mAP", "--out", str(out),
                 "--legend", "A", "B"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "B  val/coco/bbox_mAP  last=0.3000" in printed
    assert "A  train/loss_cls  last=1.5000  min=1.5000  max=2.0000" in printed
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (700, 560)  # two panels


def test_unknown_key_lists_the_available_names(tmp_path, capsys):
    run = write_run(tmp_path, "a", [(1, 1.0)], [])
    assert main([str(run), "--keys", "segm_mAP", "--out", str(tmp_path / "x.png")]) == 2
    assert "'segm_mAP' matches no scalar; available: train/loss, train/loss_cls" in (
        capsys.readouterr().err)
    assert not (tmp_path / "x.png").exists()


def test_bad_files_are_reported_with_their_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no vis_data/scalars\.json"):
        find_scalar_file(tmp_path)
    broken = tmp_path / "scalars.json"
    broken.write_text('{"loss": 1, "step": 1}\n{"loss": \n')
    with pytest.raises(DataError, match=r"scalars.json:2: not JSON"):
        load_run(broken)
