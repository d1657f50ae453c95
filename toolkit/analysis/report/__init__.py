"""Sweep reports: a study's runs read back from MLflow as a paper-style table and figures.

The report groups a sweep's finished children by their values of the swept keys other than
``seed`` (one configuration each) and gives, over the seeds, the mean ± sample std, the 95%
Student-t confidence interval and, against the best configuration, Welch's t-test with
Holm-corrected p-values; it is written as ``report.md`` and as a self-contained
``report.html`` (figures inline) beside the figures' PNG files.

- :mod:`.runs`: finding the parent run and reading its children (every search page);
- :mod:`.stats`: :class:`Stat`, :func:`aggregate`, the tests;
- :mod:`.tables`: the table's cells and the sentences around it;
- :mod:`.markdown`, :mod:`.html`: the two renderings;
- :mod:`.figures`: heatmap, bars, overlaid curves;
- :mod:`.files`: writing the files and logging them to the parent run.

Accuracies are fractions in [0, 1] throughout and written as percentages. MLflow,
matplotlib and SciPy are imported only inside the functions that use them.
"""

from toolkit.analysis.report.figures import figures
from toolkit.analysis.report.files import (
    ARTIFACT_FOLDER,
    HTML_FILE,
    REPORT_FILE,
    log_files,
    write_files,
    write_report,
)
from toolkit.analysis.report.markdown import markdown
from toolkit.analysis.report.runs import (
    ChildRun,
    StudyData,
    collect,
    find_parent_run,
    swept_value,
)
from toolkit.analysis.report.stats import (
    Comparison,
    ConfigRow,
    Stat,
    aggregate,
    epochs_to_reach,
    holm,
    mean_history,
    stat,
    welch_p,
)
from toolkit.analysis.report.tables import config_label, format_stat, value_label

__all__ = [
    "ARTIFACT_FOLDER",
    "HTML_FILE",
    "REPORT_FILE",
    "ChildRun",
    "Comparison",
    "ConfigRow",
    "Stat",
    "StudyData",
    "aggregate",
    "collect",
    "config_label",
    "epochs_to_reach",
    "figures",
    "find_parent_run",
    "format_stat",
    "holm",
    "log_files",
    "markdown",
    "mean_history",
    "stat",
    "swept_value",
    "value_label",
    "welch_p",
    "write_files",
    "write_report",
]
