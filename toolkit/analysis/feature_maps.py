"""Intermediate activations of a sequential CNN, stage by stage."""

from __future__ import annotations

import numpy as np

from toolkit.nn.layer import Sequential

#: layer kinds whose outputs are the "stages" worth looking at
STAGE_KINDS = ("conv2d", "maxpool2d", "avgpool2d", "residual_block")


def stage_outputs(model: Sequential, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``x`` (N, C, H, W) through ``model`` in evaluation mode and keep the output of
    every conv/pool/residual layer: ``{"0.conv2d": (N, C', H', W'), ...}``."""
    maps = {}
    for index, layer in enumerate(model.layers):
        x = layer.forward(x, training=False)
        if layer.kind in STAGE_KINDS:
            maps[f"{index}.{layer.kind}"] = x
    return maps


def has_conv(model: Sequential) -> bool:
    return any(layer.kind == "conv2d" for _, layer in model.named_layers())
