"""The report as Markdown (``report.md``): title, intro, table, best line, test note,
jobs that did not finish, figure links."""

from __future__ import annotations

from toolkit.analysis.report.runs import StudyData
from toolkit.analysis.report.stats import ConfigRow, aggregate
from toolkit.analysis.report.tables import Table, sections


def markdown(study: StudyData, metric: str = "test/acc", figures: list[str] = ()) -> str:
    """The report; ``figures`` are image file names linked at its end."""
    rows = aggregate(study, metric)
    return render(study, rows, metric, figures)


def render(study: StudyData, rows: list[ConfigRow], metric: str, figures: list[str] = ()) -> str:
    found = sections(study, rows, metric)
    parts = [f"# {found.title}", found.intro, _table(found.table), *found.notes]
    if found.unfinished:
        lines = [f"- {line}" for line in found.unfinished]
        parts.append("\n".join(["## Jobs that did not finish", "", *lines]))
    parts += [f"![{name.rsplit('.', 1)[0]}]({name})" for name in figures]
    return "\n\n".join(parts) + "\n"


def _table(found: Table) -> str:
    lines = ["| " + " | ".join(found.header) + " |", "|" + "---|" * len(found.header)]
    for cells, bold in zip(found.rows, found.bold, strict=True):
        if bold:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
