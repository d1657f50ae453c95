"""The report's text: a paper-style table (one row per configuration: mean ± std, the 95%
confidence interval, the comparison with the best row, the other metrics) and the
sentences around it, as plain cells that :mod:`.markdown` and :mod:`.html` render.

Accuracies are fractions in [0, 1] and written as percentages.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.analysis.report.runs import MISSING, ChildRun, StudyData, Value
from toolkit.analysis.report.stats import (
    ALPHA,
    CONFIDENCE,
    REPORT_METRICS,
    TARGET_VAL_ACC,
    ConfigRow,
    Stat,
    epochs_to_reach,
    seeds_per_config,
)
from toolkit.train.metrics import higher_is_better

DISTINCT_MARK = "†"
"""Marks a configuration distinguishable from the best one (Holm-corrected Welch p < 0.05)."""


@dataclass
class Table:
    """Header cells and one list of cells per configuration; ``bold`` marks the best row."""

    header: list[str]
    rows: list[list[str]]
    bold: list[bool]


def value_label(value: Value) -> str:
    """``"max"``; ``("relu", "tanh")`` -> ``"relu,tanh"`` (as the run names write it)."""
    return ",".join(value) if isinstance(value, tuple) else value


def config_label(config: dict[str, Value]) -> str:
    """A configuration's name: its value for one swept key, ``key=value, ...`` for more."""
    if len(config) == 1:
        return value_label(next(iter(config.values())))
    return ", ".join(f"{key}={value_label(value)}" for key, value in config.items()) or "all runs"


def number(value: float, percent: bool) -> str:
    """``"97.85%"`` for an accuracy (a fraction), ``"0.0712"`` otherwise."""
    return f"{value:.2%}" if percent else f"{value:.4f}"


def format_stat(stat: Stat | None, percent: bool) -> str:
    """``"97.85% ± 0.12% (n=3)"``, ``"97.85%"`` for one run, ``"0.0712"`` for a loss."""
    if stat is None:
        return MISSING
    if stat.n == 1:
        return number(stat.mean, percent)
    return f"{number(stat.mean, percent)} ± {number(stat.std, percent)} (n={stat.n})"


def format_ci(stat: Stat | None, percent: bool) -> str:
    """``"[97.55%, 98.15%]"``; the missing mark for one run."""
    if stat is None or stat.ci is None:
        return MISSING
    return f"[{number(stat.ci[0], percent)}, {number(stat.ci[1], percent)}]"


def format_versus_best(row: ConfigRow) -> str:
    """``"best"``, ``"p=0.003 †"`` (distinguishable), ``"p=0.41"`` (not), or the missing
    mark (fewer than two runs on a side, or no spread at all)."""
    if row.best:
        return "best"
    if row.versus_best is None:
        return MISSING
    mark = f" {DISTINCT_MARK}" if row.versus_best.distinct else ""
    return f"p={row.versus_best.p_holm:.2g}{mark}"


def has_seeds(rows: list[ConfigRow], metric: str) -> bool:
    """Whether some configuration ran more than once (then the table shows spread)."""
    return seeds_per_config(rows, metric)[1] > 1


def table(study: StudyData, rows: list[ConfigRow], metric: str) -> Table:
    """The study's table: swept keys, ``metric`` (with its 95% CI and the comparison with
    the best row when there are seeds), the other report metrics, and for optimizer and
    schedule studies the epoch at which val/acc first reached 97%."""
    metrics = list(dict.fromkeys([metric, *REPORT_METRICS]))
    seeds = has_seeds(rows, metric)
    header = [*study.config_keys, metric]
    if seeds:
        header += [f"{CONFIDENCE:.0%} CI", "vs best (Holm p)"]
    header += metrics[1:]
    if study.compares_curves:
        header.append(f"epochs to {TARGET_VAL_ACC:.0%} val/acc")
    reference = study.reference or {}
    if reference:
        header.append(f"reference {reference.get('metric', metric)}")
    cells = []
    for row in rows:
        line = [value_label(row.config[key]) for key in study.config_keys]
        line.append(format_stat(row.stats.get(metric), higher_is_better(metric)))
        if seeds:
            line += [
                format_ci(row.stats.get(metric), higher_is_better(metric)),
                format_versus_best(row),
            ]
        line += [format_stat(row.stats.get(m), higher_is_better(m)) for m in metrics[1:]]
        if study.compares_curves:
            line.append(_epochs_cell(row))
        if reference:
            line.append(_reference_cell(reference, config_label(row.config)))
        cells.append(line)
    return Table(header, cells, [row.best for row in rows])


def _reference_cell(reference: dict, label: str) -> str:
    """The published value for the row named ``label``, formatted like the row's own."""
    value = reference.get("values", {}).get(label)
    metric = str(reference.get("metric", ""))
    return MISSING if value is None else number(float(value), higher_is_better(metric))


def reference_note(study: StudyData) -> str | None:
    """Where the reference column's numbers come from."""
    reference = study.reference
    if not reference:
        return None
    return f"reference: {reference.get('source', 'published results')}."


def _epochs_cell(row: ConfigRow) -> str:
    if not any("val/acc" in run.histories for run in row.runs):
        return MISSING
    epoch = epochs_to_reach(row)
    return "not reached" if epoch is None else str(epoch)


def intro(study: StudyData, rows: list[ConfigRow], metric: str) -> str:
    """The sentence under the title: the parent run, the jobs, what was swept and what the
    numbers are (with the actual seed and run counts)."""
    swept = ", ".join(f"`{key}`" for key in study.swept_keys) or "nothing"
    low, high = seeds_per_config(rows, metric)
    runs = sum(len(row.runs) for row in rows)
    configs = sum(1 for row in rows if row.runs)
    if high > 1:
        seeds = f"{low}" if low == high else f"{low}-{high}"
        numbers = (
            f"Values are mean ± sample std over {seeds} seeds per configuration "
            f"({runs} runs, {configs} configurations); the {CONFIDENCE:.0%} CI is Student's t "
            f"interval of the mean; val/acc is the last epoch's."
        )
    else:
        numbers = (
            f"One run per configuration ({runs} runs): no spread or test is shown; "
            "val/acc is the last epoch's."
        )
    return (
        f"Sweep parent run `{study.parent_id}`, started {study.started:%Y-%m-%d %H:%M} UTC; "
        f"{len(study.finished)} jobs finished, {len(study.unfinished)} did not. "
        f"Swept: {swept}. {numbers}"
    )


def best_sentence(rows: list[ConfigRow], metric: str) -> str | None:
    """``Best by test/acc: relu,tanh, 97.85% ± 0.12% (n=3); distinguishable from 4 of 8
    configurations (...)``, or None when nothing scored."""
    best = next((row for row in rows if row.best), None)
    if best is None:
        return None
    text = (
        f"Best by {metric}: **{config_label(best.config)}**, "
        f"{format_stat(best.stats[metric], higher_is_better(metric))}"
    )
    tested = [row for row in rows if row.versus_best is not None]
    if tested:
        distinct = [config_label(row.config) for row in tested if row.versus_best.distinct]
        same = [config_label(row.config) for row in tested if not row.versus_best.distinct]
        text += (
            f"; distinguishable ({DISTINCT_MARK}) from {len(distinct)} of {len(tested)} "
            f"configurations"
            + (f" ({'; '.join(distinct)})" if distinct else "")
            + (f"; not from {'; '.join(same)}" if same else "")
        )
    return text + "."


def test_note(rows: list[ConfigRow], metric: str) -> str | None:
    """What the "vs best" column means, when the table has it."""
    if not has_seeds(rows, metric):
        return None
    return (
        f"vs best: Welch's t-test of each configuration's {metric} against the best one's, "
        f"p-values Holm-corrected over the {sum(r.versus_best is not None for r in rows)} "
        f"comparisons; {DISTINCT_MARK} marks p < {ALPHA:g} (distinguishable from the best); "
        f"{MISSING} where a side has fewer than two runs."
    )


@dataclass
class Sections:
    """What every rendering of a study report shows, in order (Markdown, HTML)."""

    title: str
    intro: str
    table: Table
    notes: list[str]  # the best line and the test note, where they apply
    unfinished: list[str]  # one line per job that did not finish


def sections(study: StudyData, rows: list[ConfigRow], metric: str) -> Sections:
    """The report's parts for ``rows`` (from
    :func:`~toolkit.analysis.report.stats.aggregate`), ranked by ``metric``."""
    notes = [
        text
        for text in (best_sentence(rows, metric), test_note(rows, metric), reference_note(study))
        if text
    ]
    return Sections(
        f"Study {study.name}",
        intro(study, rows, metric),
        table(study, rows, metric),
        notes,
        unfinished_lines(study.unfinished) if study.unfinished else [],
    )


def unfinished_lines(runs: list[ChildRun]) -> list[str]:
    """One line per job that did not finish: name, run id, status, first line of the error."""
    lines = []
    for run in runs:
        reason = run.error.splitlines()[0] if run.error else "no failure_reason recorded"
        lines.append(f"`{run.name}` (run `{run.run_id}`, {run.status}): {reason}")
    return lines
