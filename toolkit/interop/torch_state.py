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

Layers with sub-layers (``residual_block``) have no torch twin here: a ConfigError names
them. ``torch`` is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from toolkit.nn.layer import Layer, Sequential
from toolkit.registry import ConfigError
from toolkit.train.checkpoint import load_weights

# toolkit parameter/buffer key -> torch state_dict key, per layer kind
STATE_KEYS = {
    "dense": {"W": "weight", "b": "bias"},
    "conv2d": {"W": "weight", "b": "bias"},
    "batchnorm": {
        "gamma": "weight",
        "beta": "bias",
        "running_mean": "running_mean",
        "running_var": "running_var",
    },
}
STATE_KEYS["batchnorm1d"] = STATE_KEYS["batchnorm2d"] = STATE_KEYS["batchnorm"]


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
        names = STATE_KEYS.get(layer.kind, {})
        for key, value in {**layer.params, **layer.buffers}.items():
            array = value.T if layer.kind == "dense" and key == "W" else value
            state[f"{index}.{names[key]}"] = torch.from_numpy(np.array(array, order="C"))
        if layer.kind.startswith("batchnorm"):
            state[f"{index}.num_batches_tracked"] = torch.tensor(0)
    return state


def load_state_dict(model: Sequential, state: dict[str, Any]) -> None:
    """Copy a :func:`to_state_dict`-style torch ``state_dict`` into ``model``. Unexpected
    entries, then missing or differently shaped ones, are a ConfigError naming them all."""
    arrays: dict[str, np.ndarray] = {}
    known: set[str] = set()
    for index, layer in enumerate(model):
        names = STATE_KEYS.get(layer.kind, {})
        for key in {**layer.params, **layer.buffers}:
            torch_key = f"{index}.{names[key]}"
            known.add(torch_key)
            if torch_key in state:
                value = state[torch_key].detach().cpu().numpy()
                kind = "param" if key in layer.params else "buffer"
                transposed = layer.kind == "dense" and key == "W"
                arrays[f"{kind}/{index}.{layer.kind}/{key}"] = value.T if transposed else value
    unexpected = [k for k in state if k not in known and not k.endswith("num_batches_tracked")]
    if unexpected:
        raise ConfigError(f"state_dict does not fit the model: unexpected {', '.join(unexpected)}")
    load_weights(model, arrays, source="state_dict")


def _params(model: Sequential):
    return ((path, p) for path, layer in model.named_layers() for p in layer.params.values())


def _torch_layer(nn: Any, layer: Layer, path: str) -> Any:
    """The torch module for one built toolkit layer."""
    factory = _FACTORIES.get(layer.kind)
    if factory is None:
        raise ConfigError(
            f"layer {path} ({layer.kind}) has no PyTorch equivalent in toolkit.interop; "
            f"supported: {', '.join(sorted(_FACTORIES))}"
        )
    return factory(nn, layer)


def _conv(nn: Any, layer: Layer) -> Any:
    return nn.Conv2d(
        layer.input_shape[0],
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.pad,
        bias=layer.bias,
    )


def _batchnorm(nn: Any, layer: Layer) -> Any:
    cls = nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d
    return cls(layer.input_shape[0], eps=layer.eps, momentum=layer.momentum)


_FACTORIES: dict[str, Callable[[Any, Layer], Any]] = {
    "dense": lambda nn, layer: nn.Linear(layer.input_shape[0], layer.units, bias=layer.bias),
    "conv2d": _conv,
    "batchnorm": _batchnorm,
    "batchnorm1d": _batchnorm,
    "batchnorm2d": _batchnorm,
    "maxpool2d": lambda nn, layer: nn.MaxPool2d(layer.kernel_size, layer.stride),
    "avgpool2d": lambda nn, layer: nn.AvgPool2d(layer.kernel_size, layer.stride),
    "global_avgpool": lambda nn, layer: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    "flatten": lambda nn, layer: nn.Flatten(),
    "unflatten": lambda nn, layer: nn.Unflatten(1, layer.shape),
    "upsample2d": lambda nn, layer: nn.Upsample(scale_factor=layer.scale, mode="nearest"),
    "dropout": lambda nn, layer: nn.Dropout(layer.rate),
    "relu": lambda nn, layer: nn.ReLU(),
    "tanh": lambda nn, layer: nn.Tanh(),
    "sigmoid": lambda nn, layer: nn.Sigmoid(),
    "leaky_relu": lambda nn, layer: nn.LeakyReLU(layer.negative_slope),
    "elu": lambda nn, layer: nn.ELU(layer.alpha),
    "gelu": lambda nn, layer: nn.GELU(approximate="tanh"),
    "softmax": lambda nn, layer: nn.Softmax(dim=-1),
    "identity": lambda nn, layer: nn.Identity(),
}
