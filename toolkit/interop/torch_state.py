"""Toolkit models <-> PyTorch: an equivalent ``torch.nn.Sequential`` and its ``state_dict``.

Each top-level layer of a toolkit :class:`~toolkit.nn.Sequential` becomes one torch module
at the same index, so parameter ``"1.dense"/"W"`` is ``state_dict["1.weight"]``:

====================  ==============================  =====================================
toolkit layer         torch module                    parameters
====================  ==============================  =====================================
dense                 ``Linear``                      W (in, out) -> weight (out, in) = W.T
conv2d                ``Conv2d`` (same padding/stride) W (F, C, k, k) -> weight as is
batchnorm             ``BatchNorm1d`` / ``2d``         gamma, beta -> weight, bias; running
                                                      mean/var buffers
maxpool2d, avgpool2d  ``MaxPool2d``, ``AvgPool2d``
global_avgpool        ``Sequential(AdaptiveAvgPool2d(1), Flatten())``
flatten, unflatten    ``Flatten``, ``Unflatten``
upsample2d            ``Upsample`` (nearest)
dropout               ``Dropout``
activations           ``ReLU``, ``Tanh``, ``Sigmoid``, ``LeakyReLU``, ``ELU``, ``GELU("tanh")``,
                      ``Softmax(-1)``, ``Identity``
====================  ==============================  =====================================

Each layer class declares its twin and its arrays' torch names and layout
(``torch_layout``, a :class:`~toolkit.nn.torch_layout.TorchLayout`) beside its code; this
module only reads them, so a new layer with a layout works here unchanged. Layers without
one (``residual_block``, which has sub-layers) are named in a ConfigError. ``torch`` is
imported inside the functions only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.nn.layer import Layer, Sequential
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import ConfigError
from toolkit.train.checkpoint import load_weights

NO_ARRAYS = TorchLayout()


def torch_module(model: Sequential) -> Any:
    """A ``torch.nn.Sequential`` computing what the built ``model`` computes, in its dtype,
    with untrained weights: load :func:`to_state_dict` into it."""
    import torch

    modules = [_torch_layer(torch.nn, layer, f"{i}.{layer.kind}") for i, layer in enumerate(model)]
    dtype = next((p.dtype for _, p in _params(model)), np.dtype("float32"))
    return torch.nn.Sequential(*modules).to(getattr(torch, dtype.name))


def to_state_dict(model: Sequential) -> dict[str, Any]:
    """The model's parameters and buffers as torch tensors under :func:`torch_module`'s
    keys (copies, weights in torch's layout)."""
    import torch

    state = {}
    for index, layer in enumerate(model):
        layout = layer.torch_layout or NO_ARRAYS
        for key, value in {**layer.params, **layer.buffers}.items():
            array = layout.torch_array(key, value)
            state[f"{index}.{layout.names[key]}"] = torch.from_numpy(np.array(array, order="C"))
        if layout.counts_batches:
            state[f"{index}.num_batches_tracked"] = torch.tensor(0)
    return state


def load_state_dict(model: Sequential, state: dict[str, Any]) -> None:
    """Copy a :func:`to_state_dict`-style torch ``state_dict`` into ``model``. Unexpected
    entries, then missing or differently shaped ones, are a ConfigError naming them all."""
    arrays: dict[str, np.ndarray] = {}
    known: set[str] = set()
    for index, layer in enumerate(model):
        layout = layer.torch_layout or NO_ARRAYS
        for key in {**layer.params, **layer.buffers}:
            torch_key = f"{index}.{layout.names[key]}"
            known.add(torch_key)
            if torch_key in state:
                value = state[torch_key].detach().cpu().numpy()
                kind = "param" if key in layer.params else "buffer"
                arrays[f"{kind}/{index}.{layer.kind}/{key}"] = layout.toolkit_array(key, value)
    unexpected = [k for k in state if k not in known and not k.endswith("num_batches_tracked")]
    if unexpected:
        raise ConfigError(f"state_dict does not fit the model: unexpected {', '.join(unexpected)}")
    load_weights(model, arrays, source="state_dict")


def _params(model: Sequential):
    return ((path, p) for path, layer in model.named_layers() for p in layer.params.values())


def _torch_layer(nn: Any, layer: Layer, path: str) -> Any:
    """The torch module for one built toolkit layer (its declared ``torch_layout.module``)."""
    layout = layer.torch_layout
    if layout is None or layout.module is None:
        raise ConfigError(
            f"layer {path} ({layer.kind}) has no PyTorch equivalent in toolkit.interop; "
            "its class declares no torch_layout with a module"
        )
    return layout.module(nn, layer)
