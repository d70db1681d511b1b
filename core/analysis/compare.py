"""Comparison of runs: the config keys that differ, metric deltas at each run's best
validation and at a common epoch, per-class AP deltas and overlaid training curves, as a
static page (``index.html`` with its pictures beside it)."""

from __future__ import annotations

import json
import math
import os
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.analysis import html
from core.analysis.report import INDEX_FILE, SUMMARY_FILE, read_comparisons, write_comparisons
from core.analysis.run_dir import Run, Validation
from core.visualization.curves import PER_CLASS, UNDEFINED, Line, plot_panels

REPORT_DIR = "report"
CURVES_FILE = "curves.png"
WALL_TIME_FILE = "wall_time.png"
#: The validation metrics drawn against wall time (when every run logged them).
WALL_TIME_METRICS = ("bbox_mAP", "bbox_mAP_50", "segm_mAP", "segm_mAP_50", "mAP")
MISSING = "(not set)"


def flatten(table: Any, prefix: str = "") -> dict[str, str]:
    """``dotted.key -> value as JSON`` of a config (lists of tables by index: ``a[0].type``)."""
    if isinstance(table, dict):
        flat: dict[str, str] = {}
        for key, value in table.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(table, list) and table and all(isinstance(v, dict) for v in table):
        flat = {}
        for index, value in enumerate(table):
            flat.update(flatten(value, f"{prefix}[{index}]"))
        return flat
    return {prefix: json.dumps(table)}


def config_differences(configs: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """``(key, [value in each config])`` of every key whose values differ (or that some
    configs lack), in key order."""
    flat = [flatten(config) for config in configs]
    keys = sorted(set().union(*flat))
    rows = []
    for key in keys:
        values = [f.get(key, MISSING) for f in flat]
        if len(set(values)) > 1:
            rows.append((key, values))
    return rows


def labels(count: int) -> list[str]:
    """``A``, ``B``, ... (then ``R27``, ... past 26 runs)."""
    return [string.ascii_uppercase[i] if i < 26 else f"R{i + 1}" for i in range(count)]


def _defined(value: float | None) -> float | None:
    return None if value is None or value == UNDEFINED or math.isnan(value) else value


def metric_rows(validations: Sequence[Validation | None],
                per_class: bool = False) -> list[tuple[str, list[float | None]]]:
    """``(metric, [value of each validation])``, overall metrics (``per_class``: the per-class
    ones, named by class); metrics undefined everywhere are left out."""
    names: list[str] = []
    for validation in validations:
        for name in validation.metrics if validation else ():
            if name not in names and bool(PER_CLASS.search(name)) == per_class:
                names.append(name)
    rows = []
    for name in names:
        values = [_defined(v.metrics.get(name)) if v else None for v in validations]
        if any(value is not None for value in values):
            label = PER_CLASS.search(name)["name"] if per_class else name  # type: ignore[index]
            rows.append((label, values))
    return rows


def common_epoch(runs: Sequence[Run]) -> int | None:
    """The last epoch (iteration in iteration-based runs) every run validated at."""
    sets = [{v.epoch or v.step for v in run.validations} for run in runs]
    common = set.intersection(*sets) if sets else set()
    return max(common) if common else None


def _delta_table(names: Sequence[str], rows: Sequence[tuple[str, list[float | None]]],
                 digits: int = 4) -> str:
    """A table of each row's values and each run's difference to the first run."""
    headers = ["metric", *names, *(f"{n} - {names[0]}" for n in names[1:])]
    body = []
    for metric, values in rows:
        deltas = [None if v is None or values[0] is None else v - values[0] for v in values[1:]]
        body.append([html.cell(metric), *(html.cell(v, digits) for v in values),
                     *(html.cell(d, digits, delta=True) for d in deltas)])
    return html.table(headers, body)


def _curve_panels(runs: Sequence[Run], names: Sequence[str]) -> list[tuple[str, list[Line]]]:
    """One panel per series every run logged (total loss, learning rate, the overall
    validation metrics), one line per run."""
    keys = [key for key in runs[0].scalars
            if all(key in run.scalars for run in runs) and not PER_CLASS.search(key)
            and (key in ("train/loss", "train/lr") or key.startswith(("val/", "train/loss_")))
            and any(_defined(v) is not None for run in runs for _, v in run.scalars[key])]
    return [(key, [(name, run.scalars[key]) for name, run in zip(names, runs, strict=True)])
            for key in keys]


def _wall_time_panels(runs: Sequence[Run], names: Sequence[str],
                      ) -> list[tuple[str, list[Line]]]:
    """One panel per overall validation metric every run logged (COCO ``bbox_mAP``,
    ``bbox_mAP_50``, ``segm_*``, VOC ``mAP``): its value against the seconds of wall time
    from the start of the run, one line per run; runs without log times give none."""
    if any(v.seconds is None for run in runs for v in run.validations):
        return []
    panels = []
    for suffix in WALL_TIME_METRICS:
        keys = [next((k for k in v.metrics if k.split("/")[-1] == suffix), None)
                for run in runs for v in run.validations[:1]]
        if len(keys) != len(runs) or None in keys:
            continue
        lines: list[Line] = [
            (name, [(round(v.seconds or 0.0), v.metrics[key]) for v in run.validations
                    if key in v.metrics])
            for name, run, key in zip(names, runs, keys, strict=True)]
        panels.append((suffix, lines))
    return panels


def _time_to_best(runs: Sequence[Run], names: Sequence[str]) -> str:
    """``A: 0.9927 at 416 s; B: ...``: each run's best ``metric`` and when it was reached."""
    parts = []
    for name, run in zip(names, runs, strict=True):
        best = run.best()
        if best is not None and run.metric is not None and best.seconds is not None:
            parts.append(f"{name}: best {run.metric} {best.metrics[run.metric]:.4f} after "
                         f"{best.seconds:.0f} s")
    return "; ".join(parts)


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _runs_table(runs: Sequence[Run], names: Sequence[str], out_dir: Path) -> str:
    rows = []
    for name, run in zip(names, runs, strict=True):
        best = run.best()
        report = run.path / REPORT_DIR / INDEX_FILE
        rows.append([
            html.cell(name), html.cell(run.name), html.cell(run.metric or "n/a"),
            html.cell(None if best is None else best.metrics[run.metric]),  # type: ignore[index]
            html.cell(None if best is None else (best.epoch or best.step)),
            html.cell(html.link(_relative(report, out_dir), "analysis") if report.is_file()
                      else "none (plugdet analyze)", raw=report.is_file())])
    return html.table(("run", "directory", "metric", "best", "at epoch", "report"), rows)


def _analysis_rows(runs: Sequence[Run]) -> list[tuple[str, list[float | None]]] | None:
    """TIDE dAP and AP per class of each run's ``report/analysis.json`` when every run has
    one (``None`` otherwise)."""
    summaries = []
    for run in runs:
        path = run.path / REPORT_DIR / SUMMARY_FILE
        if not path.is_file():
            return None
        summaries.append(json.loads(path.read_text(encoding="utf-8")))
    rows: list[tuple[str, list[float | None]]] = [
        ("AP (report)", [s["overall"]["ap"] for s in summaries]),
        ("TIDE AP50", [s["tide"]["ap"] for s in summaries])]
    for kind in summaries[0]["tide"]["dap"]:
        rows.append((f"TIDE dAP {kind}", [s["tide"]["dap"].get(kind) for s in summaries]))
    return rows


def _link_back(runs: Sequence[Run], page: Path, title: str) -> None:
    """List ``page`` in the ``comparisons.js`` of every run that has a report."""
    for run in runs:
        report = run.path / REPORT_DIR
        if (report / INDEX_FILE).is_file():
            href = _relative(page, report)
            pages = [p for p in read_comparisons(report) if p.get("href") != href]
            write_comparisons(report, [*pages, {"href": href, "title": title}])


def write_comparison(runs: Sequence[Run], out_dir: Path) -> Path:
    """Write the comparison page of ``runs`` (the first is the reference of the deltas) into
    ``out_dir``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = labels(len(runs))
    bests = [run.best() for run in runs]
    epoch = common_epoch(runs)
    at_epoch = [run.at_epoch(epoch) for run in runs] if epoch is not None else []
    panels = _curve_panels(runs, names)
    if panels:
        plot_panels(panels, out_dir / CURVES_FILE, columns=3)
    time_panels = _wall_time_panels(runs, names)
    if time_panels:
        plot_panels(time_panels, out_dir / WALL_TIME_FILE, columns=2,
                    xlabel="seconds of wall time")
    differences = config_differences([run.config for run in runs])
    diff_rows = [[html.cell(key), *(html.cell(v) for v in values)] for key, values in differences]
    analysis = _analysis_rows(runs)
    sections = [
        ("runs", "Runs", _runs_table(runs, names, out_dir)),
        ("config", "Config differences",
         html.paragraph(f"{len(differences)} keys of the saved config.toml differ")
         + html.table(("key", *names), diff_rows)),
        ("best", "At each run's best validation", _delta_table(names, metric_rows(bests))),
        ("epoch", "At the same epoch",
         html.paragraph(f"epoch {epoch}, the last one every run validated at")
         + _delta_table(names, metric_rows(at_epoch)) if epoch is not None
         else html.paragraph("the runs share no validated epoch")),
        ("classes", "AP per class (best validations)",
         _delta_table(names, metric_rows(bests, per_class=True))),
        ("curves", "Training curves",
         html.picture(CURVES_FILE, "overlaid training curves") if panels
         else html.paragraph("the runs share no logged series")),
        ("wall-time", "Validation against wall time",
         html.paragraph(_time_to_best(runs, names))
         + html.picture(WALL_TIME_FILE, "validation metrics against wall time")
         if time_panels else html.paragraph("no shared metric with logged times")),
    ]
    if analysis is not None:
        sections.insert(4, ("analysis", "Error analysis (reports)",
                            _delta_table(names, analysis, digits=3)))
    title = "Comparison of " + ", ".join(f"{n} = {r.name}" for n, r in zip(names, runs,
                                                                           strict=True))
    page = out_dir / INDEX_FILE
    page.write_text(html.page(title, f"{len(runs)} runs; deltas against {names[0]}", sections),
                    encoding="utf-8")
    _link_back(runs, page, title)
    return page
