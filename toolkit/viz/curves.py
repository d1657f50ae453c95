"""Per-epoch training curves from a Trainer history.

A history is ``dict[str, list[float]]``: ``"epoch"`` -> [1, 2, ...] and one list per metric,
aligned with it: ``"train/loss"``, ``"val/loss"``, ``"train/acc"``, ``"val/acc"`` (accuracy as
a fraction in [0, 1]; absent for regression, val absent without a validation split),
``"lr"`` and ``"grad_norm/<layer path>"`` (L2 norm of that layer's parameter gradients,
averaged over the epoch's steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from toolkit.train.metrics import is_accuracy
from toolkit.viz._axes import new_figure

History = Mapping[str, Sequence[float]]

GRAD_NORM_PREFIX = "grad_norm/"
MARKER_MAX_EPOCHS = 30
"""Curves with at most this many epochs get a marker per point (so one epoch still shows)."""


def _series(history: History, key: str) -> np.ndarray:
    if key not in history:
        raise KeyError(f"history has no {key!r}; it has {sorted(history)}")
    return np.asarray(history[key], dtype=np.float64)


def _plot(ax: Axes, history: History, key: str, label: str) -> np.ndarray:
    """Draw ``history[key]`` against the epochs; return the values drawn."""
    epochs, values = _series(history, "epoch"), _series(history, key)
    marker = "o" if len(epochs) <= MARKER_MAX_EPOCHS else None
    ax.plot(epochs, values, marker=marker, markersize=4, label=label)
    return values


def _spans_decade(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return positive.size > 0 and positive.max() / positive.min() > 10


def _style(ax: Axes, metric: str, values: np.ndarray) -> None:
    """Epoch x-axis; y-label with units and y-scale suited to ``metric``."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if is_accuracy(metric):
        ax.set_ylabel(f"{metric.removesuffix('acc')}accuracy (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    elif metric.startswith(GRAD_NORM_PREFIX):
        ax.set_ylabel("gradient L2 norm (mean over steps)")
        ax.set_yscale("log")
    elif metric == "lr":
        ax.set_ylabel("learning rate")
        if _spans_decade(values):
            ax.set_yscale("log")
    else:
        ax.set_ylabel(metric)


def learning_curves(history: History) -> Figure:
    """Loss and accuracy per epoch, train vs val.

    Two panels (loss, accuracy), or a single loss panel when the history has no accuracy
    (regression). Each panel has one line per split present (``train``, ``val``).
    """
    metrics = ["loss"] + (["acc"] if any(k.endswith("/acc") for k in history) else [])
    fig = new_figure(5.0 * len(metrics), 4.0)
    fig.suptitle("Learning curves")
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        drawn = [
            _plot(ax, history, f"{split}/{metric}", split)
            for split in ("train", "val")
            if f"{split}/{metric}" in history
        ]
        _style(ax, metric, np.concatenate(drawn))
        ax.set_title("Accuracy" if metric == "acc" else "Loss")
        ax.legend()
    return fig


def lr_schedule(history: History) -> Figure:
    """Learning rate per epoch; log y-scale when it spans more than one decade."""
    fig = new_figure(5.5, 3.5)
    ax = fig.add_subplot()
    _style(ax, "lr", _plot(ax, history, "lr", "lr"))
    ax.set_title("Learning-rate schedule")
    return fig


def grad_norms(history: History) -> Figure:
    """Gradient L2 norm per layer and epoch (log y-scale), one line per ``grad_norm/*`` key."""
    keys = [k for k in history if k.startswith(GRAD_NORM_PREFIX)]
    if not keys:
        raise KeyError(f"history has no {GRAD_NORM_PREFIX}* keys; it has {sorted(history)}")
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    drawn = [_plot(ax, history, key, key.removeprefix(GRAD_NORM_PREFIX)) for key in keys]
    _style(ax, keys[0], np.concatenate(drawn))
    ax.set_title("Gradient norms per layer")
    ax.legend(title="layer", fontsize="small", ncols=1 + len(keys) // 8)
    return fig


def overlay_curves(histories: Mapping[str, History], metric: str) -> Figure:
    """One ``metric`` curve per run, labelled by the run's key in ``histories``.

    For studies that compare runs (optimizers, schedules): e.g.
    ``overlay_curves({"sgd": h1, "adam": h2}, "val/loss")``.
    """
    if not histories:
        raise ValueError("overlay_curves needs at least one history")
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    drawn = [_plot(ax, history, metric, label) for label, history in histories.items()]
    _style(ax, metric, np.concatenate(drawn))
    ax.set_title(f"{metric} per epoch by run")
    ax.legend(title="run", fontsize="small")
    return fig
