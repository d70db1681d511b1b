"""``plugdet analyze`` and ``plugdet compare`` on copies of the tiny demo run: the pages,
their pictures, the summary and the links between them."""

from __future__ import annotations

import json
import re

import pytest

from core.cli import main as plugdet
from core.tools.analyze import main as analyze

from .report_runs import analyzed_runs


@pytest.fixture(scope="module")
def reports(tiny_demo, tmp_path_factory):
    return analyzed_runs(tiny_demo, tmp_path_factory.mktemp("reports"))


def _pictures(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_analyze_writes_a_page_whose_pictures_lie_beside_it(reports):
    run_a, _, _, output = reports
    report = run_a / "report"
    page = (report / "index.html").read_text()
    pictures = _pictures(page)
    for name in ("curves.png", "tide_errors.png", "ap_by_size.png", "ap_by_aspect.png",
                 "recall_iou.png", "pr_curves.png", "confusion_matrix.png", "assigner.png"):
        assert name in pictures
    assert any(p.startswith("images/") for p in pictures)
    for src in pictures:
        assert (report / src).is_file(), src
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from the network
    for anchor in ("run", "classes", "errors", "shapes", "assigner", "images", "config"):
        assert f'<section id="{anchor}">' in page
    assert "num_classes = 5" in page  # the saved config, full form
    assert re.search(r"test: 4 images, AP \d\.\d{3}", output)
    assert "largest TIDE errors" in output and f"report: {report / 'index.html'}" in output


def test_analysis_summary_holds_classes_and_tide(reports):
    summary = json.loads((reports[0] / "report" / "analysis.json").read_text())
    assert [c["name"] for c in summary["classes"]] == ["circle", "square", "triangle", "star",
                                                      "cross"]
    assert sum(c["num_gt"] for c in summary["classes"]) == summary["overall"]["num_gt"] > 0
    assert set(summary["tide"]["dap"]) == {"cls", "loc", "both", "dupe", "bkg", "miss",
                                           "false_pos", "false_neg"}
    assert summary["split"] == "test" and summary["checkpoint"].endswith(".pth")
    other = json.loads((reports[1] / "report" / "analysis.json").read_text())
    assert other["split"] == "val" and other["checkpoint"].endswith("epoch_2.pth")


def test_compare_page_shows_config_differences_deltas_and_links(reports):
    run_a, run_b, compare, _ = reports
    page = (compare / "index.html").read_text()
    assert "optim.lr" in page and "0.003" in page and "0.001" in page
    assert "<h2>At each run&#x27;s best validation</h2>" in page
    assert "epoch 2, the last one every run validated at" in page
    assert "<h2>Error analysis (reports)</h2>" in page
    assert 'href="../demo/run_a/report/index.html"' in page
    assert "wall_time.png" in _pictures(page)
    assert re.search(r"A: best coco/bbox_mAP \d\.\d{4} after \d+ s", page)
    for src in _pictures(page):
        assert (compare / src).is_file()
    for run in (run_a, run_b):
        links = (run / "report" / "comparisons.js").read_text()
        assert '"href": "../../../compare/index.html"' in links


def test_validation_times_come_from_the_log_time_stamps(tmp_path):
    from core.analysis.run_dir import _validations

    (tmp_path / "scalars.json").write_text(
        '{"val/coco/bbox_mAP": 0.1, "step": 4}\n{"train/loss": 1.0, "step": 5}\n'
        '{"val/coco/bbox_mAP": 0.2, "step": 8}\n')
    (tmp_path / "train.log").write_text(
        "2026/12/07 06:00:03 - INFO - ShapesDataset: 8 images\n"
        "2026/12/07 06:00:50 - INFO - Epoch(val) [1]  coco/bbox_mAP: 0.1000\n"
        "2026/12/07 06:01:02 - INFO - Epoch(train) [2][4/4] loss: 1.0\n"
        "2026/12/07 06:02:13 - INFO - Epoch(val) [2]  coco/bbox_mAP: 0.2000\n")
    validations = _validations(tmp_path / "scalars.json", tmp_path / "train.log")
    assert [(v.epoch, v.seconds) for v in validations] == [(1, 47.0), (2, 130.0)]
    (tmp_path / "train.log").write_text("no time stamps\n")
    assert [v.seconds for v in _validations(tmp_path / "scalars.json",
                                             tmp_path / "train.log")] == [None, None]


def test_plugdet_lists_and_runs_both_commands(capsys, tmp_path):
    assert plugdet(["--help"]) == 0
    listing = capsys.readouterr().out
    assert "analyze" in listing and "compare" in listing
    assert plugdet(["compare", str(tmp_path)]) == 2
    assert "at least two run directories" in capsys.readouterr().err


def test_analyze_refuses_what_is_not_a_run(tmp_path, capsys):
    assert analyze([str(tmp_path)]) == 2
    assert "not a run directory (no config.toml" in capsys.readouterr().err
    (tmp_path / "config.toml").write_text("seed = 0\n")
    assert analyze([str(tmp_path)]) == 2
    assert "no best_*.pth checkpoint" in capsys.readouterr().err
