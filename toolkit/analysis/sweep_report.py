"""Sweep reports: a study's runs read back from MLflow as a Markdown table and figures.

A sweep is a parent run (tag ``toolkit.sweep=parent``, swept keys as a JSON list in tag
``toolkit.swept_keys``) with one child run per job (see :mod:`toolkit.app.sweep`). The
report groups the finished children by their values of the swept keys other than ``seed``
(one group per configuration) and shows the mean ± sample std over the seeds:

- :func:`markdown`: one table row per configuration with test accuracy, test loss and the
  last epoch's validation accuracy, the best configuration in bold, the jobs that did not
  finish with their reasons; optimizer and schedule studies also get the epoch at which
  the validation accuracy first reached 97%.
- :func:`figures`, chosen by the study's structure: a heatmap for a grid (a key whose
  values are pairs, such as ``model.activation=[relu,tanh]``, or two swept keys) and a bar
  chart with error bars; for optimizer and schedule studies, per-epoch curves of every
  configuration overlaid (val accuracy, val loss, learning rate, gradient norm per layer).

Accuracies are fractions in [0, 1] throughout and written as percentages. MLflow and
matplotlib are imported only inside the functions that use them.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.registry import ConfigError, close_matches

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient
    from mlflow.entities import Run

PARENT_TAG = "toolkit.sweep"
SWEPT_KEYS_TAG = "toolkit.swept_keys"
PARENT_ID_TAG = "mlflow.parentRunId"
FAILURE_TAG = "failure_reason"
SEED_KEY = "seed"
CHOICE_PREFIX = "choice/"
GRAD_NORM_PREFIX = "grad_norm/"
REPORT_METRICS = ("test/acc", "test/loss", "val/acc")
TARGET_VAL_ACC = 0.97
"""The validation accuracy (fraction) whose first epoch optimizer/schedule reports show."""
CURVE_GROUPS = frozenset({"optim", "schedule"})
CURVE_STUDIES = frozenset({"optimizers", "schedules"})
CURVE_METRICS = ("val/acc", "val/loss", "lr")
ARTIFACT_FOLDER = "report"
REPORT_FILE = "report.md"
MISSING = "–"
_RUN_ID = re.compile(r"[0-9a-f]{32}")

Value = str | tuple[str, ...]
"""A swept key's value in one run: the param's text, or a tuple for a JSON list param."""
History = dict[str, Sequence[float]]
"""``{"epoch": [1, 2, ...], metric: [...]}``, as :mod:`toolkit.viz.curves` draws it."""


@dataclass
class ChildRun:
    """One job of a sweep as MLflow recorded it."""

    run_id: str
    name: str
    status: str  # FINISHED, FAILED, KILLED or RUNNING
    values: dict[str, Value]  # swept key -> this job's value ("seed" included)
    metrics: dict[str, float]  # last value of each metric: test/*, last epoch's val/* ...
    histories: dict[str, dict[int, float]] = field(default_factory=dict)
    """Per-epoch metrics of a finished run: metric -> {epoch (1-based): value}."""
    error: str = ""  # the failure_reason tag of a failed run

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"


@dataclass
class StudyData:
    """A sweep's parent run and its children, in the order they started."""

    name: str  # the MLflow experiment, i.e. the study
    parent_id: str
    started: datetime  # the parent run's start (UTC)
    swept_keys: list[str]
    runs: list[ChildRun]

    @property
    def config_keys(self) -> list[str]:
        """The swept keys that define a configuration (all but ``seed``)."""
        return [key for key in self.swept_keys if key != SEED_KEY]

    @property
    def finished(self) -> list[ChildRun]:
        return [run for run in self.runs if run.finished]

    @property
    def unfinished(self) -> list[ChildRun]:
        """Failed, killed or still running jobs, without the failed attempts of jobs that
        finished in another run (a resumed sweep runs a failed job again)."""
        done = {tuple(run.values.values()) for run in self.finished}
        return [
            run for run in self.runs if not run.finished and tuple(run.values.values()) not in done
        ]

    @property
    def compares_curves(self) -> bool:
        """An optimizer or schedule study, whose report compares per-epoch curves."""
        groups = {key.split(".")[0] for key in self.config_keys}
        return self.name in CURVE_STUDIES or bool(groups & CURVE_GROUPS)


@dataclass
class Stat:
    """Mean and sample standard deviation (ddof=1; 0 when n == 1) of a metric over n runs."""

    mean: float
    std: float
    n: int


@dataclass
class ConfigRow:
    """One configuration of a study: its swept values, finished runs and their statistics."""

    config: dict[str, Value]  # swept key (without seed) -> value
    runs: list[ChildRun]  # the finished runs (one per seed); empty when all failed
    stats: dict[str, Stat]  # metric -> over the runs that logged it
    best: bool = False


# --- finding and reading a sweep ---------------------------------------------------------


def find_parent_run(client: MlflowClient, experiment_or_run: str) -> Run:
    """The sweep parent run named by a run id, or the latest one of an experiment (study).

    Raises:
        ConfigError: (one line) no such run or experiment (naming close matches among the
            experiments that exist), the run is not a sweep's parent, or the experiment
            holds no sweep.
    """
    if _RUN_ID.fullmatch(experiment_or_run):
        return _parent_by_id(client, experiment_or_run)
    return _latest_parent(client, experiment_or_run)


def _parent_by_id(client: MlflowClient, run_id: str) -> Run:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"no MLflow run {run_id} in {client.tracking_uri}") from None
    if run.data.tags.get(PARENT_TAG) != "parent":
        parent = run.data.tags.get(PARENT_ID_TAG)
        hint = f"; it is a job of the sweep {parent}" if parent else ""
        raise ConfigError(f"run {run_id} is not the parent run of a sweep{hint}")
    return run


def _latest_parent(client: MlflowClient, name: str) -> Run:
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage != "active":
        raise ConfigError(_unknown_experiment_message(client, name))
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise ConfigError(
            f"experiment '{name}' holds no sweep (no run tagged {PARENT_TAG}=parent); "
            "run one with python -m toolkit -m ..."
        )
    return runs[0]


def _unknown_experiment_message(client: MlflowClient, name: str) -> str:
    names = sorted(experiment.name for experiment in client.search_experiments())
    hint = close_matches(name, names)
    suggestion = f"; did you mean: {', '.join(hint)}?" if hint else ";"
    return (
        f"no experiment '{name}' in {client.tracking_uri}{suggestion} "
        f"experiments: {', '.join(names) or 'none'}"
    )


def collect(client: MlflowClient, parent: Run) -> StudyData:
    """Read a sweep's children: swept values, final metrics, per-epoch histories of the
    finished ones and the failure reason of the others."""
    keys = json.loads(parent.data.tags.get(SWEPT_KEYS_TAG, "[]"))
    return StudyData(
        name=client.get_experiment(parent.info.experiment_id).name,
        parent_id=parent.info.run_id,
        started=datetime.fromtimestamp(parent.info.start_time / 1000, UTC),
        swept_keys=keys,
        runs=[_child(client, run, keys) for run in _child_runs(client, parent)],
    )


def _child_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """All children of ``parent`` (every page of the search), oldest first (then by name)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{PARENT_ID_TAG}` = '{parent.info.run_id}'",
            order_by=["attributes.start_time ASC", "attributes.run_name ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _child(client: MlflowClient, run: Run, keys: list[str]) -> ChildRun:
    child = ChildRun(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        status=run.info.status,
        values={key: swept_value(run.data.params, key) for key in keys},
        metrics=dict(run.data.metrics),
        error=run.data.tags.get(FAILURE_TAG, ""),
    )
    if child.finished:
        child.histories = {
            key: _history(client, child.run_id, key)
            for key in child.metrics
            if not key.startswith("test/")
        }
    return child


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """``{epoch: value}`` of one metric logged with step=epoch (the latest value per step)."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return {point.step: point.value for point in points}


def swept_value(params: dict[str, str], key: str) -> Value:
    """A swept key's value in a run's params: param ``key`` (a JSON list becomes a tuple),
    else the option chosen for the config group ``key`` (param ``choice/<key>``)."""
    text = params.get(key, params.get(CHOICE_PREFIX + key))
    if text is None:
        return MISSING
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return tuple(str(item) for item in parsed) if isinstance(parsed, list) else text


# --- statistics --------------------------------------------------------------------------


def aggregate(study: StudyData, metric: str = "test/acc") -> list[ConfigRow]:
    """One row per configuration, with mean ± std over its finished runs of ``metric`` and
    of test/acc, test/loss and val/acc (last epoch).

    ``metric`` also picks the best configuration (highest mean for an accuracy, lowest
    otherwise). Numeric values are ordered by size, others as the sweep first ran them;
    a configuration whose runs all failed keeps its row, without statistics.
    """
    keys, metrics = study.config_keys, list(dict.fromkeys([metric, *REPORT_METRICS]))
    groups: dict[tuple[Value, ...], list[ChildRun]] = {}
    for run in study.runs:
        runs = groups.setdefault(tuple(run.values[key] for key in keys), [])
        if run.finished:
            runs.append(run)
    rows = [
        ConfigRow(
            dict(zip(keys, config, strict=True)), groups[config], _stats(groups[config], metrics)
        )
        for config in _sorted_configs(list(groups))
    ]
    _mark_best(rows, metric)
    return rows


def _sorted_configs(configs: list[tuple[Value, ...]]) -> list[tuple[Value, ...]]:
    if not configs:
        return []
    ranks = [_value_ranks([config[i] for config in configs]) for i in range(len(configs[0]))]
    return sorted(
        configs, key=lambda config: [rank[v] for rank, v in zip(ranks, config, strict=True)]
    )


def _value_ranks(values: list[Value]) -> dict[Value, float]:
    """Sort keys for one swept key's values: the numbers themselves when every value is a
    number, else the order of first appearance."""
    unique = list(dict.fromkeys(values))
    try:
        return {value: float(value) for value in unique}  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return {value: float(i) for i, value in enumerate(unique)}


def _stats(runs: list[ChildRun], metrics: list[str]) -> dict[str, Stat]:
    stats = {}
    for metric in metrics:
        values = [run.metrics[metric] for run in runs if metric in run.metrics]
        if values:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            stats[metric] = Stat(statistics.fmean(values), std, len(values))
    return stats


def _mark_best(rows: list[ConfigRow], metric: str) -> None:
    scored = [row for row in rows if metric in row.stats and not math.isnan(row.stats[metric].mean)]
    if scored:
        sign = 1.0 if metric.endswith("acc") else -1.0
        max(scored, key=lambda row: sign * row.stats[metric].mean).best = True


def mean_history(runs: list[ChildRun], metric: str) -> History | None:
    """``metric`` per epoch averaged over ``runs`` (over those that logged each epoch), or
    None when no run logged it."""
    series = [run.histories[metric] for run in runs if metric in run.histories]
    if not series:
        return None
    epochs = sorted(set().union(*series))
    means = [statistics.fmean(s[epoch] for s in series if epoch in s) for epoch in epochs]
    return {"epoch": epochs, metric: means}


def epochs_to_reach(row: ConfigRow, target: float = TARGET_VAL_ACC) -> int | None:
    """The first epoch whose val/acc, averaged over the row's runs, is >= ``target``
    (a fraction); None when never reached or not logged."""
    history = mean_history(row.runs, "val/acc")
    if history is None:
        return None
    reached = [
        e for e, acc in zip(history["epoch"], history["val/acc"], strict=True) if acc >= target
    ]
    return reached[0] if reached else None


# --- the Markdown report ------------------------------------------------------------------


def value_label(value: Value) -> str:
    """``"max"``; ``("relu", "tanh")`` -> ``"[relu, tanh]"``."""
    return f"[{', '.join(value)}]" if isinstance(value, tuple) else value


def config_label(config: dict[str, Value]) -> str:
    """A configuration's name: its value for one swept key, ``key=value, ...`` for more."""
    if len(config) == 1:
        return value_label(next(iter(config.values())))
    return ", ".join(f"{key}={value_label(value)}" for key, value in config.items()) or "all runs"


def format_stat(stat: Stat | None, percent: bool) -> str:
    """``"97.85% ± 0.12% (n=3)"``, ``"97.85%"`` for one run, ``"0.0712"`` for a loss."""
    if stat is None:
        return MISSING
    fmt = "{:.2%}" if percent else "{:.4f}"
    if stat.n == 1:
        return fmt.format(stat.mean)
    return f"{fmt.format(stat.mean)} ± {fmt.format(stat.std)} (n={stat.n})"


def markdown(study: StudyData, metric: str = "test/acc") -> str:
    """The report: title, one row per configuration (best in bold), unfinished jobs."""
    rows = aggregate(study, metric)
    parts = [_title(study), _table(study, rows, metric)]
    best = next((row for row in rows if row.best), None)
    if best is not None:
        parts.append(
            f"Best by {metric}: **{config_label(best.config)}**, "
            f"{format_stat(best.stats[metric], metric.endswith('acc'))}."
        )
    if study.unfinished:
        parts.append(_unfinished_section(study.unfinished))
    return "\n\n".join(parts) + "\n"


def _title(study: StudyData) -> str:
    return (
        f"# Study {study.name}\n\n"
        f"Sweep parent run `{study.parent_id}`, started {study.started:%Y-%m-%d %H:%M} UTC; "
        f"{len(study.finished)} jobs finished, {len(study.unfinished)} did not. Swept: "
        + (", ".join(f"`{key}`" for key in study.swept_keys) or "nothing")
        + ". Values are mean ± sample std over seeds (n runs); val/acc is the last epoch's."
    )


def _table(study: StudyData, rows: list[ConfigRow], metric: str) -> str:
    metrics = list(dict.fromkeys([metric, *REPORT_METRICS]))
    header = [*study.config_keys, *metrics]
    if study.compares_curves:
        header.append(f"epochs to {TARGET_VAL_ACC:.0%} val/acc")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [value_label(row.config[key]) for key in study.config_keys]
        cells += [format_stat(row.stats.get(m), m.endswith("acc")) for m in metrics]
        if study.compares_curves:
            cells.append(_epochs_cell(row))
        if row.best:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def _epochs_cell(row: ConfigRow) -> str:
    if not any("val/acc" in run.histories for run in row.runs):
        return MISSING
    epoch = epochs_to_reach(row)
    return "not reached" if epoch is None else str(epoch)


def _unfinished_section(runs: list[ChildRun]) -> str:
    lines = ["## Jobs that did not finish", ""]
    for run in runs:
        reason = run.error.splitlines()[0] if run.error else "no failure_reason recorded"
        lines.append(f"- `{run.name}` (run `{run.run_id}`, {run.status}): {reason}")
    return "\n".join(lines)


# --- figures ------------------------------------------------------------------------------


def figures(study: StudyData, metric: str = "test/acc") -> dict[str, Figure]:
    """The study's figures by file stem.

    - optimizer/schedule studies: ``val_acc``, ``val_loss``, ``lr`` and one
      ``grad_norm_<layer>`` per layer, each overlaying one curve per configuration (mean
      over seeds);
    - otherwise ``bars_<metric>`` (mean ± std per configuration) and, for a grid (values
      that are pairs, or two swept keys), ``heatmap_<metric>`` of the means.
    """
    rows = aggregate(study, metric)
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
    several = any(metric in r.stats and r.stats[metric].n > 1 for r in rows)
    return f"\n{what} over seeds" if several else ""


def _bars(study: StudyData, rows: list[ConfigRow], metric: str) -> Figure:
    """Bars labelled by the swept values ("0.2 / light"), the keys as the x label."""
    from toolkit.viz import bar_chart

    return bar_chart(
        [" / ".join(value_label(v) for v in row.config.values()) or "all runs" for row in rows],
        [row.stats[metric].mean for row in rows],
        [row.stats[metric].std for row in rows],
        title=f"{study.name}: {metric}{over_seeds(rows, metric, 'mean ± std')}",
        xlabel=" / ".join(study.config_keys),
        ylabel=metric,
        fmt="{:.2%}" if metric.endswith("acc") else "{:.4f}",
    )


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
    for (r, c), row in cells.items():
        if metric in row.stats:
            values[row_values.index(r), col_values.index(c)] = row.stats[metric].mean
    return heatmap(
        values,
        [value_label(v) for v in row_values],
        [value_label(v) for v in col_values],
        title=f"{study.name}: {metric}{over_seeds(list(cells.values()), metric, 'mean')}",
        xlabel=xlabel,
        ylabel=ylabel,
        fmt="{:.2%}" if metric.endswith("acc") else "{:.4f}",
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


# --- writing and logging ------------------------------------------------------------------


def write_files(study: StudyData, out_dir: Path, metric: str = "test/acc") -> list[Path]:
    """Write ``out_dir/report.md`` and the figures as PNG; return the paths, report first."""
    from toolkit.viz import save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        save_figure(fig, out_dir / f"{name}.png") for name, fig in figures(study, metric).items()
    ]
    links = "".join(f"\n![{path.stem}]({path.name})\n" for path in paths)
    report = out_dir / REPORT_FILE
    report.write_text(markdown(study, metric) + links)
    return [report, *paths]


def log_files(client: MlflowClient, run_id: str, paths: list[Path]) -> None:
    """Log ``paths`` as artifacts of ``run_id`` under ``report/``."""
    for path in paths:
        client.log_artifact(run_id, str(path), ARTIFACT_FOLDER)


def write_report(
    client: MlflowClient,
    experiment_or_run: str,
    out_dir: Path,
    log_to_parent: bool = True,
    metric: str = "test/acc",
) -> Path:
    """Report on a sweep (a parent run id, or an experiment's latest sweep): write
    ``out_dir/report.md`` and its figures, log them to the parent run under ``report/``
    when ``log_to_parent``, and return the report's path. ``metric`` ranks the
    configurations and is the one the figures show."""
    study = collect(client, find_parent_run(client, experiment_or_run))
    paths = write_files(study, Path(out_dir), metric)
    if log_to_parent:
        log_files(client, study.parent_id, paths)
    return paths[0]
