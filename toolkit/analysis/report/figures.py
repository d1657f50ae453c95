"""The study's figures, chosen by its structure: a heatmap for a grid (a key whose values
are pairs, such as ``model.activation=relu,tanh``, or two swept keys) and a bar chart (error
bars only where a configuration ran over several seeds); for optimizer and schedule
studies, per-epoch curves of every configuration overlaid (val accuracy, val loss,
learning rate, gradient norm per layer). Matplotlib is imported only when drawing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from toolkit.analysis.report.runs import StudyData
from toolkit.analysis.report.stats import (
    ALPHA,
    ConfigRow,
    aggregate,
    mean_history,
)
from toolkit.analysis.report.tables import DISTINCT_MARK, config_label, has_seeds, value_label
from toolkit.train.metrics import higher_is_better

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GRAD_NORM_PREFIX = "grad_norm/"
CURVE_METRICS = ("val/acc", "val/loss", "lr")


def figures(study: StudyData, metric: str = "test/acc") -> dict[str, Figure]:
    """The study's figures by file stem.

    - optimizer/schedule studies: ``val_acc``, ``val_loss``, ``lr`` and one
      ``grad_norm_<layer>`` per layer, each overlaying one curve per configuration (mean
      over seeds);
    - otherwise ``bars_<metric>`` (mean, ± std when there are seeds) and, for a grid
      (values that are pairs, or two swept keys), ``heatmap_<metric>`` of the means.
    """
    return figures_of(study, aggregate(study, metric), metric)


def figures_of(study: StudyData, rows: list[ConfigRow], metric: str) -> dict[str, Figure]:
    """:func:`figures` from rows already aggregated by ``metric``."""
    if study.compares_curves:
        return _curve_figures(rows)
    scored = [row for row in rows if metric in row.stats]
    if not scored:
        return {}
    drawn = {f"bars_{file_stem(metric)}": _bars(study, scored, metric)}
    heatmap = _heatmap(study, rows, metric)
    if heatmap is not None:
        drawn = {f"heatmap_{file_stem(metric)}": heatmap, **drawn}
    return drawn


def file_stem(name: str) -> str:
    """``"grad_norm/1.dense"`` -> ``"grad_norm_1.dense"``: safe as a file name."""
    return re.sub(r"[^\w.-]", "_", name)


def over_seeds(rows: list[ConfigRow], metric: str, what: str) -> str:
    """A figure's subtitle: ``what`` over seeds when some configuration ran several."""
    return f"\n{what} over seeds" if has_seeds(rows, metric) else ""


def _fmt(metric: str) -> str:
    return "{:.2%}" if higher_is_better(metric) else "{:.4f}"


def _bars(study: StudyData, rows: list[ConfigRow], metric: str) -> Figure:
    """Bars labelled by the swept values ("0.2 / light"), the keys as the x label; error
    bars (± sample std) only when some configuration ran over several seeds."""
    from toolkit.viz import bar_chart

    seeds = has_seeds(rows, metric)
    tested = any(row.versus_best is not None for row in rows)
    note = f"; {DISTINCT_MARK}: differs from the best (Holm p < {ALPHA:g})" if tested else ""
    return bar_chart(
        [" / ".join(value_label(v) for v in row.config.values()) or "all runs" for row in rows],
        [row.stats[metric].mean for row in rows],
        [row.stats[metric].std for row in rows] if seeds else None,
        title=f"{study.name}: {metric}{over_seeds(rows, metric, 'mean ± std')}{note}",
        xlabel=" / ".join(study.config_keys),
        ylabel=metric,
        fmt=_fmt(metric),
        marks=[_mark(row) for row in rows] if tested else None,
    )


def _mark(row: ConfigRow) -> str:
    if row.best:
        return "best"
    return DISTINCT_MARK if row.versus_best is not None and row.versus_best.distinct else ""


def _grid_axes(study: StudyData, rows: list[ConfigRow]) -> tuple[dict, str, str] | None:
    """``({(row value, column value): ConfigRow}, y label, x label)`` when the study is a
    grid: one key whose values are pairs (first x second), or two keys; else None."""
    keys = study.config_keys
    if len(keys) == 2:
        return {(row.config[keys[0]], row.config[keys[1]]): row for row in rows}, keys[0], keys[1]
    pairs = [row.config[keys[0]] for row in rows] if len(keys) == 1 else []
    if pairs and all(isinstance(value, tuple) and len(value) == 2 for value in pairs):
        cells = {tuple(pair): row for pair, row in zip(pairs, rows, strict=True)}
        return cells, f"first of {keys[0]}", f"second of {keys[0]}"
    return None


def _heatmap(study: StudyData, rows: list[ConfigRow], metric: str) -> Figure | None:
    import numpy as np

    from toolkit.viz import heatmap

    grid = _grid_axes(study, rows)
    if grid is None:
        return None
    cells, ylabel, xlabel = grid
    row_values = list(dict.fromkeys(r for r, _ in cells))
    col_values = list(dict.fromkeys(c for _, c in cells))
    values = np.full((len(row_values), len(col_values)), np.nan)
    marks = [[""] * len(col_values) for _ in row_values]
    for (r, c), row in cells.items():
        if metric in row.stats:
            values[row_values.index(r), col_values.index(c)] = row.stats[metric].mean
            marks[row_values.index(r)][col_values.index(c)] = _mark(row)
    tested = any(row.versus_best is not None for row in cells.values())
    note = f"\n{DISTINCT_MARK}: differs from the best (Holm p < {ALPHA:g})" if tested else ""
    return heatmap(
        values,
        [value_label(v) for v in row_values],
        [value_label(v) for v in col_values],
        title=f"{study.name}: {metric}{over_seeds(list(cells.values()), metric, 'mean')}{note}",
        xlabel=xlabel,
        ylabel=ylabel,
        fmt=_fmt(metric),
        marks=marks if tested else None,
    )


def _curve_figures(rows: list[ConfigRow]) -> dict[str, Figure]:
    from toolkit.viz import overlay_curves

    layers = dict.fromkeys(
        key
        for row in rows
        for run in row.runs
        for key in run.histories
        if key.startswith(GRAD_NORM_PREFIX)
    )
    drawn = {}
    for metric in [*CURVE_METRICS, *layers]:
        histories = {config_label(row.config): mean_history(row.runs, metric) for row in rows}
        histories = {label: h for label, h in histories.items() if h is not None}
        if histories:
            drawn[file_stem(metric)] = overlay_curves(histories, metric)
    return drawn
