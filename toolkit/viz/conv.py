"""Convolution figures: learned filters and feature maps."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from toolkit.viz import _images


def filters_figure(
    weights: np.ndarray, channel: int | None = None, rgb: bool | None = None
) -> Figure:
    """A conv layer's filters as a grid of small images, one per output channel.

    Args:
        weights: (out_channels, in_channels, kh, kw) conv2d weights.
        channel: input channel to show; None shows the mean over input channels (for a
            first layer on greyscale images both are the single channel).
        rgb: draw each filter's 3 input channels as one colour image (a first layer on
            RGB images); None: when there are 3 input channels and no ``channel``.

    One channel: a diverging map symmetric around 0 (red positive, blue negative), shared
    by all filters so their magnitudes compare. RGB: grey is 0 and each colour channel
    brightens with its weight, on one scale shared by all filters.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 4:
        raise ValueError(f"weights must be (out, in, kh, kw), got shape {weights.shape}")
    out_channels, in_channels = weights.shape[:2]
    if rgb is None:
        rgb = in_channels == 3 and channel is None
    if rgb:
        return _rgb_filters(weights)
    if channel is None:
        kernels, source = weights.mean(axis=1), f"mean over {in_channels} input channels"
    else:
        kernels, source = weights[:, channel], f"input channel {channel} of {in_channels}"
    limit = float(np.abs(kernels).max()) or 1.0

    fig, axes = _images.grid_figure(*_images.grid_shape(out_channels), extra_width=1.0)
    for ax, kernel in zip(axes.flat, kernels, strict=False):
        image = ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    _images.remove_unused(fig, axes, out_channels)
    inch = 1 / fig.get_figwidth()  # the colour bar in the grid's extra inch on the right
    bar = fig.add_axes((fig.subplotpars.right + 0.3 * inch, 0.15, 0.15 * inch, 0.65))
    fig.colorbar(image, cax=bar, label="weight")
    fig.suptitle(f"{out_channels} filters, {weights.shape[2]}x{weights.shape[3]} ({source})")
    return fig


def _rgb_filters(weights: np.ndarray) -> Figure:
    """Filters of 3 input channels as colour images: 0.5 + w / (2 max|w|) per channel."""
    out_channels, in_channels, kh, kw = weights.shape
    if in_channels != 3:
        raise ValueError(f"rgb filters need 3 input channels, got {in_channels}")
    limit = float(np.abs(weights).max()) or 1.0
    colours = 0.5 + weights.transpose(0, 2, 3, 1) / (2 * limit)
    fig, axes = _images.grid_figure(*_images.grid_shape(out_channels))
    for ax, kernel in zip(axes.flat, colours, strict=False):
        ax.imshow(kernel, interpolation="nearest")
    _images.remove_unused(fig, axes, out_channels)
    fig.suptitle(f"{out_channels} filters, {kh}x{kw} (RGB; grey = 0, max |w| = {limit:.3g})")
    return fig


def feature_maps_figure(
    maps: Mapping[str, np.ndarray],
    image: np.ndarray | None = None,
    max_channels: int = 8,
    normalization: _images.Normalization | None = None,
) -> Figure:
    """Activations of one input through the network, one row per stage.

    Args:
        maps: stage name -> (C, H, W) activation of a single sample, in network order.
        image: the input, (C, H, W) with C in {1, 3} or (H, W); drawn first, in its own row
            (3 channels as RGB).
        max_channels: the first this many channels of each stage are shown.
        normalization: the dataset's ``(mean, std)``: the input is shown de-normalised.

    Each channel has its own colour scale (viridis; bright = high activation).
    """
    if not maps:
        raise ValueError("feature_maps_figure needs at least one stage")
    shapes = {name: np.shape(activation) for name, activation in maps.items()}
    for name, shape in shapes.items():
        if len(shape) != 3:
            raise ValueError(f"stage {name!r} must be (C, H, W), got shape {shape}")
    ncols = min(max_channels, max(shape[0] for shape in shapes.values()))
    first_row = 0 if image is None else 1
    fig, axes = _images.grid_figure(first_row + len(maps), ncols, row_labels=True)

    if image is not None:
        _images.show(axes[0, 0], _images.to_display(np.asarray(image)[None], normalization)[0])
        axes[0, 0].set_ylabel("input")
        for ax in axes[0, 1:]:
            ax.set_axis_off()
    for row, (name, activation) in zip(axes[first_row:], maps.items(), strict=True):
        channels, height, width = shapes[name]
        row[0].set_ylabel(f"{name}\n{channels}x{height}x{width}", fontsize=8)
        for col, ax in enumerate(row):
            if col < channels:
                ax.imshow(activation[col], cmap="viridis", interpolation="nearest")
            else:
                ax.set_axis_off()
    fig.suptitle(f"Feature maps (first {ncols} channels per stage)")
    return fig
