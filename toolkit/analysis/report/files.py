"""Writing a study's report (``report.md``, ``report.html``, figures as PNG) and logging it
to the sweep's parent run under ``report/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.analysis.report import html, markdown
from toolkit.analysis.report.figures import figures_of
from toolkit.analysis.report.runs import StudyData, collect, find_parent_run
from toolkit.analysis.report.stats import aggregate

if TYPE_CHECKING:
    from toolkit.track.client import MlflowClient

ARTIFACT_FOLDER = "report"
REPORT_FILE = "report.md"
HTML_FILE = "report.html"


def write_files(study: StudyData, out_dir: Path, metric: str = "test/acc") -> list[Path]:
    """Write ``out_dir/report.md``, ``out_dir/report.html`` (figures inline) and the figures
    as PNG; return the paths, ``report.md`` first, then ``report.html``."""
    from toolkit.viz import save_figure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = aggregate(study, metric)
    paths = [
        save_figure(fig, out_dir / f"{name}.png")
        for name, fig in figures_of(study, rows, metric).items()
    ]
    report = out_dir / REPORT_FILE
    report.write_text(markdown.render(study, rows, metric, [path.name for path in paths]))
    page = out_dir / HTML_FILE
    page.write_text(html.render(study, rows, metric, paths))
    return [report, page, *paths]


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
    ``out_dir/report.md``, ``report.html`` and the figures, log them to the parent run under
    ``report/`` when ``log_to_parent``, and return the path of ``report.md`` (``report.html``
    lies beside it). ``metric`` ranks the configurations and is the one the figures show."""
    study = collect(client, find_parent_run(client, experiment_or_run))
    paths = write_files(study, Path(out_dir), metric)
    if log_to_parent:
        log_files(client, study.parent_id, paths)
    return paths[0]
