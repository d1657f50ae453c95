"""Intermediate activations of a sequential CNN, stage by stage."""

from __future__ import annotations

import numpy as np

from toolkit.nn.layer import Layer, Sequential


def stage_outputs(model: Sequential, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``x`` (N, C, H, W) through ``model`` in evaluation mode and keep the output of
    every layer that declares itself a ``feature_stage`` (conv, pool, residual block):
    ``{"0.conv2d": (N, C', H', W'), ...}``."""
    maps = {}
    for index, layer in enumerate(model.layers):
        x = layer.forward(x, training=False)
        if layer.feature_stage:
            maps[f"{index}.{layer.kind}"] = x
    return maps


def first_conv(model: Sequential) -> Layer | None:
    """The first layer (depth first) that declares ``is_conv``, or None."""
    return next((layer for _, layer in model.named_layers() if layer.is_conv), None)


def has_conv(model: Sequential) -> bool:
    return first_conv(model) is not None
