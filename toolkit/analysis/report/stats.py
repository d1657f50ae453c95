"""A study's statistics: one row per configuration with mean, sample std and a 95%
Student-t confidence interval over its seeds, and Welch's t-test of each configuration
against the best one, Holm-corrected over the comparisons.

SciPy (installed with MLflow) gives the t quantiles and p-values; it is imported inside
the functions that need it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from toolkit.analysis.report.runs import ChildRun, History, StudyData, Value
from toolkit.train.metrics import higher_is_better

REPORT_METRICS = ("test/acc", "test/loss", "val/acc")
CONFIDENCE = 0.95
"""The confidence level of the intervals."""
ALPHA = 0.05
"""The family-wise error rate of the Holm-corrected comparisons with the best row."""
TARGET_VAL_ACC = 0.97
"""The validation accuracy (fraction) whose first epoch optimizer/schedule reports show."""


@dataclass
class Stat:
    """A metric over the n runs of a configuration: mean, sample standard deviation (ddof=1;
    0 when n == 1) and the 95% Student-t confidence interval of the mean (None when n == 1)."""

    mean: float
    std: float
    n: int
    ci: tuple[float, float] | None = None


@dataclass
class Comparison:
    """Welch's t-test of a configuration against the best one on the ranking metric."""

    p: float  # two-sided p-value of Welch's t-test
    p_holm: float  # Holm-adjusted over all the comparisons with the best
    distinct: bool  # p_holm < ALPHA: distinguishable from the best


@dataclass
class ConfigRow:
    """One configuration of a study: its swept values, finished runs and their statistics."""

    config: dict[str, Value]  # swept key (without seed) -> value
    runs: list[ChildRun]  # the finished runs (one per seed); empty when all failed
    stats: dict[str, Stat]  # metric -> over the runs that logged it
    best: bool = False
    versus_best: Comparison | None = field(default=None)
    """None for the best row and rows without two runs (or with zero spread on both sides)."""


def stat(values: list[float], confidence: float = CONFIDENCE) -> Stat:
    """Mean, sample std and the Student-t interval ``mean ± t_{(1+c)/2, n-1} * std / sqrt(n)``
    of ``values`` (at least one)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return Stat(mean, 0.0, 1)
    from scipy import stats as scipy_stats

    std = statistics.stdev(values)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Stat(mean, std, n, (mean - half, mean + half))


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of Welch's unequal-variance t-test; NaN when either sample has
    fewer than two values or both have zero variance."""
    if len(a) < 2 or len(b) < 2 or (statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0):
        return math.nan
    from scipy import stats as scipy_stats

    return float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest of m is
    multiplied by m - i (i from 0), made monotone, capped at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def aggregate(study: StudyData, metric: str = "test/acc") -> list[ConfigRow]:
    """One row per configuration, with the statistics over its finished runs of ``metric``
    and of test/acc, test/loss and val/acc (last epoch), the best configuration marked and
    every other one compared with it (Welch, Holm-corrected).

    ``metric`` picks the best configuration (highest mean for an accuracy, lowest
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
    best = _mark_best(rows, metric)
    if best is not None:
        _compare_with_best(rows, best, metric)
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
    found = {}
    for metric in metrics:
        values = [run.metrics[metric] for run in runs if metric in run.metrics]
        if values:
            found[metric] = stat(values)
    return found


def _mark_best(rows: list[ConfigRow], metric: str) -> ConfigRow | None:
    scored = [row for row in rows if metric in row.stats and not math.isnan(row.stats[metric].mean)]
    if not scored:
        return None
    sign = 1.0 if higher_is_better(metric) else -1.0
    best = max(scored, key=lambda row: sign * row.stats[metric].mean)
    best.best = True
    return best


def _compare_with_best(rows: list[ConfigRow], best: ConfigRow, metric: str) -> None:
    """Set ``versus_best`` on every testable row but the best (one Holm family)."""
    best_values = metric_values(best, metric)
    tested = []
    for row in rows:
        if row is best:
            continue
        p = welch_p(metric_values(row, metric), best_values)
        if not math.isnan(p):
            tested.append((row, p))
    for (row, p), adjusted in zip(tested, holm([p for _, p in tested]), strict=True):
        row.versus_best = Comparison(p, adjusted, adjusted < ALPHA)


def metric_values(row: ConfigRow, metric: str) -> list[float]:
    """``metric`` of each finished run of ``row`` that logged it (NaN left out)."""
    return [
        run.metrics[metric]
        for run in row.runs
        if metric in run.metrics and not math.isnan(run.metrics[metric])
    ]


def seeds_per_config(rows: list[ConfigRow], metric: str) -> tuple[int, int]:
    """The fewest and most runs behind ``metric`` over the rows that have it ((0, 0) when
    none)."""
    counts = [row.stats[metric].n for row in rows if metric in row.stats]
    return (min(counts), max(counts)) if counts else (0, 0)


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
