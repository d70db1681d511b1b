"""The error-analysis page of a run: ``index.html`` with its charts beside it, a JSON summary
(``analysis.json``, read by the comparison page) and a short text summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from core.analysis import html
from core.analysis.coco_tables import ClassRow, CocoTables
from core.analysis.figures import save_bars, save_recall_iou
from core.analysis.run_dir import Run
from core.analysis.tide import ERROR_NAMES, ERROR_TYPES, SPECIAL_TYPES, TideReport
from core.visualization.curves import UNDEFINED, Line, curve_panels, plot_panels

INDEX_FILE = "index.html"
SUMMARY_FILE = "analysis.json"
#: Links to comparison pages, written by ``plugdet compare`` (loaded as a script: the page
#: works from disk, where a browser fetches nothing).
COMPARISONS_FILE = "comparisons.js"
COMPARISONS_SCRIPT = """
(function () {
  var list = document.getElementById('comparisons');
  var pages = window.PLUGDET_COMPARISONS || [];
  if (!pages.length) { return; }
  list.textContent = '';
  pages.forEach(function (page) {
    var item = document.createElement('li');
    var anchor = document.createElement('a');
    anchor.href = page.href;
    anchor.textContent = page.title;
    item.appendChild(anchor);
    list.appendChild(item);
  });
})();
"""
ASSIGN_MARK = "assign/"
PAGE_SIZE = 12


@attrs.define
class ImageRow:
    """One drawn image of the worst-images table: its file (relative to the page) and its
    counts (false positives and true positives at the drawing score threshold)."""

    img_id: int
    file: str
    name: str
    true_positives: int
    false_positives: int
    missed: int
    errors: dict[str, int]


@attrs.define
class Analysis:
    """Everything the page shows."""

    run: Run
    checkpoint: Path
    split: str
    classes: tuple[str, ...]
    num_images: int
    tables: CocoTables
    tide: TideReport
    images: list[ImageRow]
    score_thr: float
    plots: list[tuple[str, str]] = attrs.field(factory=list)


def _class_cells(row: ClassRow) -> list[str]:
    return [html.cell(row.name), *(html.cell(v) for v in (
        row.ap, row.ap50, row.ap75, row.ap_small, row.ap_medium, row.ap_large)),
        html.cell(row.num_gt), html.cell(row.num_pred)]


CLASS_HEADERS = ("class", "AP", "AP50", "AP75", "AP small", "AP medium", "AP large",
                 "boxes", "detections")


def _run_section(analysis: Analysis) -> str:
    run = analysis.run
    best = run.best()
    rows = [[html.cell(k), html.cell(v, raw=True)] for k, v in (
        ("run directory", html.escape(str(run.path))),
        ("checkpoint", html.escape(str(analysis.checkpoint))),
        ("split", html.escape(analysis.split)),
        ("images", str(analysis.num_images)),
        ("model", html.escape(str(run.config.get("model", {}).get("type", "?")))),
        ("best validation", "n/a" if best is None else html.escape(
            f"{run.metric} = {best.metrics[run.metric]:.4f} at "  # type: ignore[index]
            f"{'epoch ' + str(best.epoch) if best.epoch else 'iteration ' + str(best.step)}")),
    )]
    parts = [html.table(("item", "value"), rows)]
    if best is not None:
        metric_rows = [[html.cell(k), html.cell(None if v == UNDEFINED else v)]
                       for k, v in best.metrics.items()]
        parts.append("<h3>validation metrics at the best epoch</h3>"
                     + html.table(("metric", "value"), metric_rows))
    parts.append('<h3>comparisons with other runs</h3><ul id="comparisons"><li class="muted">'
                 "none yet (<code>plugdet compare</code> adds them here)</li></ul>")
    return "\n".join(parts)


def _data_section(analysis: Analysis) -> str:
    for key in (f"{analysis.split}_dataloader", "test_dataloader", "val_dataloader"):
        table = analysis.run.config.get(key)
        if isinstance(table, dict):
            dataset = {k: v for k, v in table.get("dataset", {}).items() if k != "pipeline"}
            rows = [[html.cell(k), html.cell(json.dumps(v))] for k, v in dataset.items()]
            return (html.paragraph(f"[{key}.dataset] of the run's config (pipeline left out)")
                    + html.table(("key", "value"), rows))
    return html.paragraph("the config has no data loader table for this split")


def _tide_section(tide: TideReport) -> str:
    overall = [[html.cell(ERROR_NAMES.get(kind, kind)), html.cell(tide.counts.get(kind)),
                html.cell(tide.dap[kind], 2)] for kind in (*ERROR_TYPES, *SPECIAL_TYPES)]
    per_class = [[html.cell(name), html.cell(tide.class_ap.get(name), 2),
                  *(html.cell(daps[k], 2) for k in ERROR_TYPES),
                  *(html.cell(tide.class_counts[name][k]) for k in ERROR_TYPES)]
                 for name, daps in tide.class_dap.items()]
    headers = ("class", "AP50", *(f"dAP {k}" for k in ERROR_TYPES),
               *(f"# {k}" for k in ERROR_TYPES))
    return "\n".join([
        html.paragraph(
            f"TIDE (Bolya et al., ECCV 2020): AP{round(tide.pos_thr * 100)} = {tide.ap:.2f}. "
            "dAP: the AP points gained if the errors of one type were fixed (oracle), the other "
            f"types left as they are; foreground IoU {tide.pos_thr}, background IoU "
            f"{tide.bg_thr}. false_pos / false_neg: the gain of perfect precision / recall."),
        html.picture("tide_errors.png", "dAP of each error type"),
        html.table(("error type", "count", "dAP"), overall),
        "<h3>per class</h3>", html.table(headers, per_class)])


def _assigner_section(run: Run, out_dir: Path) -> str:
    keys = [name for name in run.scalars if ASSIGN_MARK in name]
    if not keys:
        return html.paragraph("the run logged no assigner statistics (train/*assign/* keys)")
    groups: dict[str, list[Line]] = {}
    for name in keys:
        tail = name.rsplit("/", 1)[-1]
        title = ("positives per level" if tail.startswith("num_pos_level") else
                 "share of boxes without a positive" if tail == "gt_without_pos" else
                 "positives per box")
        groups.setdefault(title, []).append((name.removeprefix("train/"), run.scalars[name]))
    plot_panels(list(groups.items()), out_dir / "assigner.png", columns=len(groups))
    rows = [[html.cell(name.removeprefix("train/")), html.cell(run.scalars[name][0][1]),
             html.cell(run.scalars[name][-1][1]),
             html.cell(sum(v for _, v in run.scalars[name]) / len(run.scalars[name]))]
            for name in keys]
    return "\n".join([
        html.paragraph("What the assigner did during training, as the heads logged it (means "
                       "over each logging interval). The logs hold the share of boxes left "
                       "without a positive over all sizes and classes together; no count per "
                       "object size or per class is logged."),
        html.picture("assigner.png", "assigner statistics against the iteration"),
        html.table(("statistic", "first", "last", "mean"), rows)])


def _images_section(analysis: Analysis) -> str:
    rows = [[html.cell(html.picture(row.file, row.name, width=320), raw=True),
             html.cell(row.img_id), html.cell(row.false_positives + row.missed),
             html.cell(row.false_positives), html.cell(row.missed),
             html.cell(row.true_positives),
             *(html.cell(row.errors.get(kind, 0)) for kind in ERROR_TYPES if kind != "miss")]
            for row in analysis.images]
    headers = ("image", "id", "errors", "false pos.", "missed", "true pos.",
               *(k for k in ERROR_TYPES if k != "miss"))
    return "\n".join([
        html.paragraph(
            f"The {len(rows)} images with the most false positives (score >= "
            f"{analysis.score_thr}) and missed boxes. Green: true positive; red: false "
            "positive with its error type; orange: missed box; grey: matched box; blue: "
            "ignored (crowd region). Click a heading to sort."),
        html.table(headers, rows, page_size=PAGE_SIZE, table_id="worst-images")])


def _summary(analysis: Analysis) -> dict[str, Any]:
    tables, tide = analysis.tables, analysis.tide
    return {
        "run": str(analysis.run.path), "checkpoint": str(analysis.checkpoint),
        "split": analysis.split, "images": analysis.num_images,
        "overall": attrs.asdict(tables.overall),
        "classes": [attrs.asdict(row) for row in tables.classes],
        "by_size": dict(tables.by_size), "by_aspect": dict(tables.by_aspect),
        "tide": {"ap": tide.ap, "dap": tide.dap, "counts": tide.counts,
                 "class_dap": tide.class_dap},
    }


def summary_lines(analysis: Analysis) -> list[str]:
    """The text summary printed by the command."""
    overall, tide = analysis.tables.overall, analysis.tide
    worst = sorted(ERROR_TYPES, key=lambda k: -tide.dap[k])[:3]
    weakest = sorted((r for r in analysis.tables.classes if r.ap is not None),
                     key=lambda r: r.ap or 0.0)[:3]
    return [
        f"{analysis.split}: {analysis.num_images} images, AP {html.number(overall.ap)}, "
        f"AP50 {html.number(overall.ap50)}, AP75 {html.number(overall.ap75)}",
        "largest TIDE errors (dAP at IoU 0.5): "
        + ", ".join(f"{ERROR_NAMES[k]} {tide.dap[k]:.2f}" for k in worst),
        "weakest classes (AP): " + ", ".join(f"{r.name} {html.number(r.ap)}" for r in weakest),
    ]


def _charts(analysis: Analysis, out_dir: Path) -> None:
    tide, tables = analysis.tide, analysis.tables
    save_bars([(ERROR_NAMES.get(k, k), tide.dap[k]) for k in (*ERROR_TYPES, *SPECIAL_TYPES)],
              out_dir / "tide_errors.png", "TIDE: AP gained by fixing each error type",
              "dAP (AP50 points)", horizontal=True)
    save_bars(tables.by_size, out_dir / "ap_by_size.png", "AP by object size (COCO areas)",
              "AP")
    save_bars(tables.by_aspect, out_dir / "ap_by_aspect.png", "AP by aspect ratio", "AP")
    save_recall_iou(tables.iou_thresholds, tables.recall, out_dir / "recall_iou.png")
    panels = curve_panels(analysis.run.scalars)
    if panels:
        plot_panels(panels, out_dir / "curves.png", columns=3)


def write_report(analysis: Analysis, out_dir: Path) -> Path:
    """Write ``out_dir/index.html``, its charts, ``analysis.json`` and (when missing) an empty
    ``comparisons.js``; returns the page's path. ``analysis.plots`` name pictures already in
    ``out_dir`` (PR curves, confusion matrix) as ``(file, caption)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _charts(analysis, out_dir)
    tables = analysis.tables
    curves = (html.picture("curves.png", "training curves (vis_data/scalars.json)")
              if (out_dir / "curves.png").is_file()
              else html.paragraph("no vis_data/scalars.json in the run directory"))
    sections: Sequence[tuple[str, str, str]] = [
        ("run", "Run", _run_section(analysis)),
        ("curves", "Training curves", curves),
        ("classes", "Per class", html.paragraph(
            "COCO box AP of the checkpoint on the split (AP: IoU 0.50:0.95; small < 32², "
            "large > 96² pixels; n/a: no box of that class and size)")
         + html.table(CLASS_HEADERS, [_class_cells(r) for r in
                                      (tables.overall, *tables.classes)])),
        ("errors", "Error breakdown", _tide_section(analysis.tide)),
        ("shapes", "Size, shape and IoU", " ".join([
            html.picture("ap_by_size.png", "AP by object size"),
            html.picture("ap_by_aspect.png", "AP by aspect ratio (width / height)"),
            html.picture("recall_iou.png", "recall against the IoU threshold")])),
        ("plots", "PR curves and confusion matrix",
         " ".join(html.picture(f, c) for f, c in analysis.plots)
         or html.paragraph("not drawn")),
        ("assigner", "Assigner during training", _assigner_section(analysis.run, out_dir)),
        ("images", "Worst images", _images_section(analysis)),
        ("data", "Data", _data_section(analysis)),
        ("config", "Config", html.code(analysis.run.config_text, "config.toml (full form)")),
    ]
    page = html.page(f"Analysis of {analysis.run.name}",
                     f"checkpoint {analysis.checkpoint.name} on the {analysis.split} split",
                     sections, scripts=[COMPARISONS_FILE])
    page = page.replace("</body>", f"<script>{COMPARISONS_SCRIPT}</script></body>")
    (out_dir / SUMMARY_FILE).write_text(json.dumps(_summary(analysis), indent=1),
                                        encoding="utf-8")
    if not (out_dir / COMPARISONS_FILE).is_file():
        write_comparisons(out_dir, [])
    path = out_dir / INDEX_FILE
    path.write_text(page, encoding="utf-8")
    return path


def write_comparisons(report_dir: Path, pages: list[dict[str, str]]) -> None:
    """Write ``comparisons.js``: ``pages`` as ``{"href", "title"}`` (hrefs relative to the
    report)."""
    (report_dir / COMPARISONS_FILE).write_text(
        f"window.PLUGDET_COMPARISONS = {json.dumps(pages)};\n", encoding="utf-8")


def read_comparisons(report_dir: Path) -> list[dict[str, str]]:
    """The pages ``comparisons.js`` lists (none when it is missing or unreadable)."""
    path = report_dir / COMPARISONS_FILE
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8").strip()
    try:
        pages = json.loads(text.removeprefix("window.PLUGDET_COMPARISONS = ").rstrip(";"))
    except json.JSONDecodeError:
        return []
    return [p for p in pages if isinstance(p, dict)]
