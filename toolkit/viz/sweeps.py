"""Study figures: a grid of results over two factors, and one bar per configuration."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from toolkit.viz._axes import new_figure, set_category_ticks, tick_formatter


def heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    xlabel: str,
    ylabel: str,
    fmt: str = "{:.2%}",
    marks: Sequence[Sequence[str]] | None = None,
) -> Figure:
    """A (rows x cols) grid of results with each value written in its cell.

    Args:
        values: (R, C) floats, e.g. test accuracy per (first, second) activation; NaN marks
            a missing or failed run and is drawn grey with "n/a".
        row_labels: R labels (the y factor); col_labels: C labels (the x factor).
        fmt: format of the cell text, e.g. ``"{:.3f}"``; a percentage format also gives
            percent colour-bar ticks.
        marks: (R, C) short marks written under each value ("best", "†"; "" for none).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"values of shape {values.shape} for {len(row_labels)} rows x {len(col_labels)} columns"
        )
    rows, cols = values.shape
    if marks is not None and [len(row) for row in marks] != [cols] * rows:
        raise ValueError(f"marks must be {rows} rows of {cols}")
    fig = new_figure(max(4.5, 1.2 * cols + 2.5), max(3.5, 0.8 * rows + 1.8))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
    fig.colorbar(image, ax=ax, format=tick_formatter(fmt))
    for (row, col), value in np.ndenumerate(values):
        if np.isnan(value):
            text, colour = "n/a", "black"
        else:
            text, colour = fmt.format(value), "white" if image.norm(value) < 0.5 else "black"
        if marks is not None and marks[row][col]:
            text += f"\n{marks[row][col]}"
        ax.text(col, row, text, ha="center", va="center", color=colour)
    set_category_ticks(ax, "x", col_labels)
    set_category_ticks(ax, "y", row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def bar_chart(
    labels: Sequence[str],
    means: Sequence[float],
    stds: Sequence[float] | None = None,
    title: str = "",
    ylabel: str = "",
    fmt: str = "{:.3g}",
    xlabel: str = "",
    marks: Sequence[str] | None = None,
) -> Figure:
    """One bar per configuration with its value written above it.

    Args:
        labels: N configuration names (x ticks).
        xlabel: what the labels are, e.g. the swept keys.
        means: N values, e.g. mean test accuracy over seeds.
        stds: N standard deviations, drawn as error bars and written under the mean as "± std".
        fmt: format of the written values, e.g. ``"{:.2%}"`` for accuracy (which also gives
            percent y ticks).
        marks: N short marks written after each value ("best", "†" for a configuration
            that differs from the best; "" for none).
    """
    means_array = np.asarray(means, dtype=np.float64)
    errors = None if stds is None else np.asarray(stds, dtype=np.float64)
    if len(labels) != len(means_array) or (errors is not None and len(errors) != len(labels)):
        raise ValueError("labels, means and stds must have the same length")
    if marks is not None and len(marks) != len(labels):
        raise ValueError(f"{len(marks)} marks for {len(labels)} bars")
    fig = new_figure(max(4.5, 0.9 * len(labels) + 2.0), 4.0)
    ax = fig.add_subplot()
    positions = np.arange(len(labels))
    ax.bar(positions, means_array, yerr=errors, capsize=4, color="C0", alpha=0.85)
    tops = means_array if errors is None else means_array + errors
    for i, (x, top) in enumerate(zip(positions, tops, strict=True)):
        text = fmt.format(means_array[i])
        if marks is not None and marks[i]:
            text += f" {marks[i]}"
        if errors is not None:
            text += f"\n± {fmt.format(errors[i])}"
        ax.annotate(
            text,
            (x, top),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    lows = means_array if errors is None else means_array - errors
    finite = np.isfinite(lows) & np.isfinite(tops)
    if finite.any() and lows[finite].min() > 0:
        # Zoom to the values: studies compare configurations a few tenths of a percent
        # apart, which bars drawn from zero would hide.
        low, high = lows[finite].min(), tops[finite].max()
        pad = max(high - low, 0.01 * high) * 0.5
        ax.set_ylim(max(0.0, low - pad), high + pad)
    else:
        ax.margins(y=0.15)
    set_category_ticks(ax, "x", labels)
    ax.yaxis.set_major_formatter(tick_formatter(fmt))
    ax.grid(axis="y", alpha=0.3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig
