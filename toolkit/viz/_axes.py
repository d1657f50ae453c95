"""Figure and axis helpers shared by every figure family (private)."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter, PercentFormatter, ScalarFormatter

LONG_TICK_LABEL = 8
"""Tick labels longer than this many characters are rotated so neighbours do not collide."""


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free Figure of ``width`` x ``height`` inches with constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def tick_formatter(fmt: str) -> Formatter:
    """Ticks for values written with ``fmt``: percent ticks when ``fmt`` is a percentage
    (``"{:.2%}"``, values are fractions), plain numbers otherwise."""
    return PercentFormatter(xmax=1.0) if fmt.endswith("%}") else ScalarFormatter()


def set_category_ticks(ax: Axes, axis: str, labels: Sequence[str]) -> None:
    """One tick per category on ``axis`` ("x" or "y"), rotating the x labels when long."""
    positions = range(len(labels))
    if axis == "x":
        ax.set_xticks(positions, labels)
        if max((len(label) for label in labels), default=0) > LONG_TICK_LABEL:
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
    else:
        ax.set_yticks(positions, labels)
