"""Figures for the small synthetic tasks and for learned representations: fitted curves,
2-D decision boundaries, latent projections and autoencoder reconstructions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from toolkit.viz import _images
from toolkit.viz._axes import new_figure

MAX_LEGEND_CLASSES = 20
"""Integer labels with at most this many values get a legend; otherwise a colour bar."""


def fitted_curves(
    x: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    title: str = "Fitted curves",
) -> Figure:
    """Targets as points and each model's prediction as a line, e.g. sin regression.

    Args:
        x: (N,) inputs, in any order (sorted here).
        truth: (N,) targets at ``x``.
        predictions: model name -> (N,) predictions at ``x``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x)
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    ax.scatter(x[order], np.ravel(truth)[order], s=8, color="0.55", label="truth", zorder=1)
    for name, predicted in predictions.items():
        ax.plot(x[order], np.ravel(predicted)[order], linewidth=2, label=name)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return fig


def _class_colours(n: int) -> tuple[ListedColormap, BoundaryNorm]:
    """A colormap with one distinct colour per class index 0..n-1."""
    palette = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    cmap = ListedColormap([palette(i % palette.N) for i in range(n)])
    return cmap, BoundaryNorm(np.arange(n + 1) - 0.5, n)


def decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    resolution: int = 200,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Predicted class regions over the plane, with the data points on top (XOR, spirals).

    Args:
        predict: (M, 2) float points -> (M,) predicted class labels.
        x: (N, 2) data points; the plotted region is their bounding box plus 10 %.
        y: (N,) true class labels.
        resolution: grid points per axis (``resolution**2`` points go through ``predict``).
        class_names: one name per class id for the legend (else "class <id>").

    The title gives the accuracy of ``predict`` on the N points.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must be (N, 2), got shape {x.shape}")
    low, high = x.min(axis=0), x.max(axis=0)
    pad = 0.1 * np.maximum(high - low, 1e-12)
    axis0 = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    axis1 = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    grid0, grid1 = np.meshgrid(axis0, axis1)
    regions = np.asarray(predict(np.column_stack([grid0.ravel(), grid1.ravel()])))
    if regions.shape != (grid0.size,):
        raise ValueError(f"predict must return shape ({grid0.size},), got {regions.shape}")
    accuracy = float(np.mean(np.asarray(predict(x)) == y))

    classes = np.unique(np.concatenate([y.ravel(), regions]))
    cmap, norm = _class_colours(len(classes))
    fig = new_figure(5.5, 5.0)
    ax = fig.add_subplot()
    region_index = np.searchsorted(classes, regions).reshape(grid0.shape)
    ax.pcolormesh(grid0, grid1, region_index, cmap=cmap, norm=norm, alpha=0.3, shading="auto")
    for index, label in enumerate(classes):
        members = y == label
        if members.any():
            ax.scatter(
                *x[members].T,
                s=14,
                color=cmap(index),
                edgecolor="black",
                linewidth=0.4,
                label=f"class {label}"
                if class_names is None
                else _images.class_name(label, class_names),
            )
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(fontsize="small")
    ax.set_title(f"Decision boundary (accuracy {accuracy:.1%} on {len(y)} points)")
    return fig


def latent_projection(
    latents: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None
) -> Figure:
    """Latent codes projected on their first two principal components, coloured by label.

    Args:
        latents: (N, D) codes with D >= 2 (e.g. an autoencoder's bottleneck).
        labels: (N,) class ids (legend, up to 20 classes) or continuous values (colour bar).
        class_names: one name per class id for the legend (else the ids).

    PCA is an SVD of the centred codes; the axis labels give each component's share of
    the variance.
    """
    latents = np.asarray(latents, dtype=np.float64)
    labels = np.asarray(labels)
    if latents.ndim != 2 or latents.shape[1] < 2:
        raise ValueError(f"latents must be (N, D) with D >= 2, got shape {latents.shape}")
    centred = latents - latents.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:2].T
    variance = singular**2 / max(float(np.sum(singular**2)), 1e-300)

    fig = new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    classes = np.unique(labels)
    if np.issubdtype(labels.dtype, np.integer) and len(classes) <= MAX_LEGEND_CLASSES:
        cmap, _ = _class_colours(len(classes))
        for index, label in enumerate(classes):
            ax.scatter(
                *projected[labels == label].T,
                s=6,
                alpha=0.7,
                color=cmap(index),
                label=_images.class_name(label, class_names),
            )
        ax.legend(title="label", fontsize="small", markerscale=2)
    else:
        points = ax.scatter(*projected.T, s=6, alpha=0.7, c=labels, cmap="viridis")
        fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel(f"PC1 ({variance[0]:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({variance[1]:.1%} of variance)")
    ax.set_title(f"Latent space: PCA of {latents.shape[1]}-D codes ({len(latents)} samples)")
    return fig


def reconstructions(
    originals: np.ndarray,
    reconstructed: np.ndarray,
    n: int = 10,
    normalization: _images.Normalization | None = None,
) -> Figure:
    """The first ``n`` originals (top row) over their reconstructions (bottom row).

    Args:
        originals: (N, H, W) or (N, C, H, W) images, C in {1, 3} (3 drawn as RGB).
        reconstructed: the model's outputs, the same shape or the same size per sample
            (e.g. a dense decoder's flat (N, H*W)).
        n: number of pairs shown.
        normalization: the dataset's ``(mean, std)``: both rows de-normalised to true
            colours (else they share one min-max scale).

    The title gives the mean squared error of the pairs (in the model's units).
    """
    originals = np.asarray(originals, dtype=np.float64)[:n]
    count = len(originals)
    flat = np.asarray(reconstructed, dtype=np.float64)[:count]
    if flat.size != originals.size:
        raise ValueError(
            f"reconstructed {np.shape(reconstructed)} does not match originals "
            f"{originals.shape} per sample"
        )
    outputs = flat.reshape(originals.shape)
    shown = _images.to_display(np.concatenate([originals, outputs]), normalization)
    fig, axes = _images.grid_figure(2, count, row_labels=True)
    for ax, image in zip(axes.flat, shown, strict=True):
        _images.show(ax, image)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstructed")
    mse = float(np.mean((originals - outputs) ** 2))
    fig.suptitle(f"Reconstructions (MSE {mse:.4g} over these {count})")
    return fig
