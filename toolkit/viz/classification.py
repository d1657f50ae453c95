"""Classification figures: confusion matrix, misclassified examples, image grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from toolkit.viz import _images
from toolkit.viz._axes import new_figure, set_category_ticks


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str] | None = None) -> Figure:
    """Confusion matrix with counts written in the cells.

    Args:
        matrix: (K, K) integer counts; rows are the true class, columns the predicted class.
        class_names: K names for the ticks; defaults to ``"0" .. "K-1"``.

    Cells are coloured by the row-normalised rate (the fraction of each true class that
    was predicted as each class; a class absent from the data has an all-zero row). The
    title gives the accuracy (trace / total) and the number of samples.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got shape {matrix.shape}")
    k = matrix.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else list(class_names)
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}-class matrix")
    row_totals = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    total = int(matrix.sum())
    accuracy = np.trace(matrix) / total if total else float("nan")

    side = min(max(4.5, 0.55 * k + 2.0), 16.0)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class")
    fontsize = max(5.0, min(9.0, 90.0 / k))
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if rates[row, col] > 0.6 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=fontsize)
    set_category_ticks(ax, "x", names)
    set_category_ticks(ax, "y", names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix: accuracy {accuracy:.2%} (n = {total})")
    return fig


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    title: str | None = None,
    normalization: _images.Normalization | None = None,
) -> Figure:
    """Images in a grid, e.g. augmented samples.

    Args:
        images: (N, H, W) or (N, C, H, W) with C in {1, 3} (3 is drawn as RGB).
        titles: N short captions, one per image.
        ncols: columns of the grid; defaults to a near-square layout.
        title: the figure's suptitle.
        normalization: the dataset's ``(mean, std)`` (scalars or per channel, of [0, 1]
            pixels): images are de-normalised to their true colours. None: all images
            share one min-max scale, so brightness changes stay visible.
    """
    shown = _images.to_display(images, normalization)
    if titles is not None and len(titles) != len(shown):
        raise ValueError(f"{len(titles)} titles for {len(shown)} images")
    fig, axes = _images.grid_figure(*_images.grid_shape(len(shown), ncols))
    for i, (ax, image) in enumerate(zip(axes.flat, shown, strict=False)):
        _images.show(ax, image)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    _images.remove_unused(fig, axes, len(shown))
    if title is not None:
        fig.suptitle(title)
    return fig


def misclassified_grid(
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    probs: np.ndarray | None = None,
    max_images: int = 25,
    class_names: Sequence[str] | None = None,
    normalization: _images.Normalization | None = None,
) -> Figure:
    """The first ``max_images`` misclassified images, captioned "pred Sneaker (0.87)" over
    "true Sandal" (class ids when ``class_names`` is None: "pred 7 (0.87) / true 5").

    Args:
        images: (N, H, W) or (N, C, H, W) float images (C = 3 drawn as RGB).
        true: (N,) true class ids.
        pred: (N,) predicted class ids. Only samples with ``pred != true`` are shown, so
            the whole evaluation set or just its errors can be passed.
        probs: (N,) probability the model gave its predicted class, shown in brackets.
        max_images: most images shown.
        class_names: one name per class id (``Dataset.class_names``).
        normalization: the dataset's ``(mean, std)``, to show true colours (see
            :func:`image_grid`).
    """
    true, pred = np.asarray(true), np.asarray(pred)
    wrong = np.flatnonzero(true != pred)
    shown = wrong[:max_images]
    if shown.size == 0:
        fig = new_figure(4.0, 1.5)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"No misclassified examples among {len(true)}", ha="center")
        return fig
    confidence = (
        [""] * len(shown) if probs is None else [f" ({p:.2f})" for p in np.asarray(probs)[shown]]
    )
    separator = " / " if class_names is None else "\n"
    titles = [
        f"pred {_images.class_name(pred[i], class_names)}{conf}{separator}"
        f"true {_images.class_name(true[i], class_names)}"
        for i, conf in zip(shown, confidence, strict=True)
    ]
    title = f"Misclassified examples ({len(shown)} of {len(wrong)} errors in {len(true)})"
    return image_grid(
        np.asarray(images)[shown],
        titles,
        ncols=min(len(shown), 5),
        title=title,
        normalization=normalization,
    )
