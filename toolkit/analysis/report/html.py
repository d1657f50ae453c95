"""The report as one self-contained HTML page (``report.html``): the same title, table and
sentences as ``report.md``, with the figures inline as base64 PNG, so MLflow's artifact
view (MLflow 3 loads an HTML artifact into an iframe from a ``blob:`` URL, where relative
links to sibling artifacts do not resolve) and a browser opening the file alone both show
everything."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from toolkit.analysis.report.runs import StudyData
from toolkit.analysis.report.stats import ConfigRow
from toolkit.analysis.report.tables import Table, sections

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; text-align: left; font-size: 0.85em; color: #555;
  padding-top: 0.5em; max-width: 60em; }
th, td { padding: 0.3em 0.8em; text-align: right; white-space: nowrap; }
th { border-bottom: 1px solid #222; }
thead th { border-top: 2px solid #222; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
td.key, th.key { text-align: left; }
tr.best td { font-weight: bold; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
img { max-width: 100%; }
code { font-size: 0.95em; }
""".strip()


def inline(text: str) -> str:
    """Escape ``text`` and turn Markdown ``**bold**`` and `` `code` `` into HTML."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def image_tag(path: Path) -> str:
    """An ``<img>`` holding the PNG at ``path`` as a base64 data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def render(study: StudyData, rows: list[ConfigRow], metric: str, figures: list[Path] = ()) -> str:
    """The page for ``rows`` (from :func:`~toolkit.analysis.report.stats.aggregate`) with
    the PNG ``figures`` inlined."""
    found = sections(study, rows, metric)
    body = [f"<h1>{html.escape(found.title)}</h1>", f"<p>{inline(found.intro)}</p>"]
    body.append(_table(found.table, len(study.config_keys), found.notes))
    if found.unfinished:
        items = "".join(f"<li>{inline(line)}</li>" for line in found.unfinished)
        body.append(f"<h2>Jobs that did not finish</h2><ul>{items}</ul>")
    for path in figures:
        body.append(
            f"<figure>{image_tag(path)}<figcaption>{html.escape(path.stem)}</figcaption></figure>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(found.title)}</title><style>{STYLE}</style></head>\n"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _table(found: Table, key_columns: int, notes: list[str]) -> str:
    def cell(tag: str, i: int, text: str) -> str:
        kind = ' class="key"' if i < key_columns else ""
        return f"<{tag}{kind}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", i, text) for i, text in enumerate(found.header))
    lines = []
    for cells, bold in zip(found.rows, found.bold, strict=True):
        css = ' class="best"' if bold else ""
        lines.append(
            f"<tr{css}>" + "".join(cell("td", i, c) for i, c in enumerate(cells)) + "</tr>"
        )
    caption = "".join(f"<p>{inline(note)}</p>" for note in notes)
    return (
        f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(lines)}</tbody></table>"
    )
