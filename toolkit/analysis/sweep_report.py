"""The sweep report's former home: everything now lives in :mod:`toolkit.analysis.report`
(split by job: collect, stats, tables, markdown, html, figures, files); these names stay
importable from here for existing callers (``toolkit.app.sweep`` calls
:func:`write_report`)."""

from toolkit.analysis.report import *  # noqa: F403
from toolkit.analysis.report import __all__  # noqa: F401
