"""Image-grid layout shared by the image figures (private).

Images arrive NCHW (or NHW for one channel) in any float range. Given the dataset's
normalisation ``(mean, std)`` (scalars or one per channel, of pixels scaled to [0, 1]) they
are de-normalised to their true colours; otherwise they are shown on one common [0, 1]
scale so that brightness differences between images stay visible. Three channels are
drawn as RGB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

Normalization = tuple[float | Sequence[float], float | Sequence[float]]
"""``(mean, std)`` a dataset standardised its [0, 1] pixels with (``Dataset.normalization``)."""

CELL_INCHES = 1.3
"""Side of one image cell, in inches (the image and, above it, room for a caption)."""

CAPTION_INCHES = 0.36
"""The part of a cell's height above its image, for a two-line caption at 8 points."""

TITLE_INCHES = 0.5
"""Extra figure height for the suptitle, in inches."""

LABEL_INCHES = 0.45
"""Left margin for row labels (a two-line y label beside the first column), in inches."""

MARGIN_INCHES = 0.05
"""Margin on the other sides, in inches."""


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """(rows, cols) holding ``n`` cells; ``ncols`` defaults to a near-square layout."""
    if n < 1:
        raise ValueError("an image grid needs at least one image")
    cols = min(n, ncols or math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def grid_figure(
    nrows: int, ncols: int, extra_width: float = 0.0, row_labels: bool = False
) -> tuple[Figure, np.ndarray]:
    """A Figure with an (nrows, ncols) array of tick-free, frameless image axes.

    ``extra_width`` inches are added on the right for a colour bar; ``row_labels`` keeps
    a left margin for y labels on the first column. The layout is fixed in inches, not
    constrained: the constraint solver took about 1 s per 64 cells when saving.
    """
    left = LABEL_INCHES if row_labels else MARGIN_INCHES
    width = left + ncols * CELL_INCHES + extra_width + MARGIN_INCHES
    height = nrows * CELL_INCHES + TITLE_INCHES + MARGIN_INCHES
    image = CELL_INCHES - CAPTION_INCHES
    fig = Figure(figsize=(width, height))
    layout = {
        "left": left / width,
        "right": (width - extra_width - MARGIN_INCHES) / width,
        "bottom": MARGIN_INCHES / height,
        "top": (height - TITLE_INCHES - CAPTION_INCHES) / height,
        "wspace": CAPTION_INCHES / image,
        "hspace": CAPTION_INCHES / image,
    }
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=layout))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return fig, axes


def remove_unused(fig: Figure, axes: np.ndarray, used: int) -> None:
    """Delete the grid cells after the first ``used`` (row-major), so only images remain."""
    for ax in axes.flat[used:]:
        fig.delaxes(ax)


def to_display(images: np.ndarray, normalization: Normalization | None = None) -> np.ndarray:
    """(N, H, W) or (N, C, H, W) with C in {1, 3} -> (N, H, W) or (N, H, W, 3) in [0, 1].

    With ``normalization`` the images are de-normalised (``x * std + mean``, per channel
    when given per channel) and clipped to [0, 1]; without, the whole batch is min-max
    scaled together (a constant batch becomes zeros).
    """
    images = np.asarray(images, dtype=np.float64)
    if normalization is not None:
        return np.clip(_denormalize(images, normalization), 0.0, 1.0)
    return _min_max(_channels_last(images))


def _denormalize(images: np.ndarray, normalization: Normalization) -> np.ndarray:
    shown = _channels_last(images)
    channels = shown.shape[-1] if shown.ndim == 4 else 1
    mean, std = (np.asarray(v, dtype=np.float64).reshape(-1) for v in normalization)
    for name, values in (("means", mean), ("stds", std)):
        if values.size not in (1, channels):
            raise ValueError(f"normalization has {values.size} {name} for {channels} channels")
    return shown * std[0] + mean[0] if shown.ndim == 3 else shown * std + mean


def class_name(label: int, class_names: Sequence[str] | None) -> str:
    """``class_names[label]`` when known (and in range), else the id as text."""
    if class_names is not None and 0 <= int(label) < len(class_names):
        return str(class_names[int(label)])
    return str(label)


def _min_max(images: np.ndarray) -> np.ndarray:
    low, high = images.min(), images.max()
    return (images - low) / (high - low) if high > low else np.zeros_like(images)


def _channels_last(images: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) -> (N, H, W); (N, 3, H, W) -> (N, H, W, 3); (N, H, W) unchanged."""
    if images.ndim == 4:
        channels = images.shape[1]
        if channels == 1:
            images = images[:, 0]
        elif channels == 3:
            images = images.transpose(0, 2, 3, 1)
        else:
            raise ValueError(f"can show 1 or 3 channels, got {channels} (shape {images.shape})")
    elif images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got shape {images.shape}")
    return images


def show(ax: Axes, image: np.ndarray) -> None:
    """Draw one image from :func:`to_display` (grey for 2-D, RGB for (H, W, 3))."""
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
