"""Models whose layer paths are PyTorch module paths <-> a torch ``state_dict``.

For a model built from :class:`~toolkit.nn.named_sequential.NamedSequential` (the
torchvision ResNets, :mod:`toolkit.models.torchvision_resnet`) every leaf layer's path
is the path of the equivalent torch module, after renaming the sub-layers that torch
groups differently (a residual block's projection ``proj``/``proj_bn`` is torchvision's
``downsample.0``/``downsample.1``). A parameter's key is then the path plus its torch name:

==========================  ==========================================================
toolkit array               torch ``state_dict`` key
==========================  ==========================================================
``param/conv1/W``           ``conv1.weight`` (F, C, k, k), as is
``param/bn1/gamma, beta``   ``bn1.weight``, ``bn1.bias``
``buffer/bn1/running_*``    ``bn1.running_mean``, ``bn1.running_var`` (and
                            ``bn1.num_batches_tracked``, ignored on import, 0 on export)
``param/layer2.0.proj/W``   ``layer2.0.downsample.0.weight``
``param/fc/W`` (in, out)    ``fc.weight`` (out, in) = W.T
==========================  ==========================================================

The torch names and layouts are those each layer class declares (``torch_layout``, a
:class:`~toolkit.nn.torch_layout.TorchLayout`). The round trip is exact (the arrays are
copied, the dense weight transposed twice).
``torch`` is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from toolkit.nn.layer import Layer
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import ConfigError
from toolkit.train.checkpoint import load_weights, model_arrays

#: toolkit sub-layer names -> torch module names, where they differ
RENAMED = {"proj": "downsample.0", "proj_bn": "downsample.1"}


def torch_path(path: str) -> str:
    """The torch module path of a toolkit layer path (``layer2.0.proj`` ->
    ``layer2.0.downsample.0``)."""
    return ".".join(RENAMED.get(part, part) for part in path.split("."))


def state_keys(model: Layer) -> dict[str, str]:
    """``{toolkit array key ("param/<path>/<name>"): torch state_dict key}`` for every
    parameter and buffer of ``model``; a layer with arrays but no declared layout is named."""
    keys = {}
    for path, layer in model.named_layers():
        arrays = {**layer.params, **layer.buffers}
        if not arrays:
            continue
        if layer.torch_layout is None:
            raise ConfigError(
                f"layer {path} ({layer.kind}) has no torch state_dict mapping in "
                "toolkit.interop: its class declares no torch_layout"
            )
        for key in arrays:
            kind = "param" if key in layer.params else "buffer"
            keys[f"{kind}/{path}/{key}"] = f"{torch_path(path)}.{layer.torch_layout.names[key]}"
    return keys


def _layouts(model: Layer) -> dict[str, TorchLayout]:
    """Each leaf layer's declared torch layout by path (layers without one left out)."""
    return {path: layer.torch_layout for path, layer in model.named_layers() if layer.torch_layout}


def _to_torch(array_key: str, array: np.ndarray, layouts: dict[str, TorchLayout]) -> np.ndarray:
    _, path, name = array_key.split("/")
    return layouts[path].torch_array(name, array)


def _from_torch(array_key: str, array: np.ndarray, layouts: dict[str, TorchLayout]) -> np.ndarray:
    _, path, name = array_key.split("/")
    return layouts[path].toolkit_array(name, array)


def to_torch_state(model: Layer) -> dict[str, Any]:
    """The model's parameters and buffers as a torch ``state_dict`` (copies, torch layout),
    with ``num_batches_tracked = 0`` for each batch norm."""
    import torch

    layouts = _layouts(model)
    arrays = model_arrays(model)
    state: dict[str, Any] = {}
    for array_key, torch_key in state_keys(model).items():
        value = _to_torch(array_key, arrays[array_key], layouts)
        state[torch_key] = torch.from_numpy(np.array(value, order="C"))
    for path, layout in layouts.items():
        if layout.counts_batches:
            state[f"{torch_path(path)}.num_batches_tracked"] = torch.tensor(0)
    return state


def from_torch_state(
    model: Layer, state: dict[str, Any], skip: Iterable[str] = (), source: str = "state_dict"
) -> None:
    """Copy a torch ``state_dict`` into ``model`` in place, casting to the model's dtype.

    Args:
        model: the built model.
        state: torch tensors (or arrays) by key, e.g. torchvision's pretrained weights.
        skip: toolkit layer paths whose arrays are left as they are (and whose torch keys
            are ignored): a head that is replaced.
        source: what ``state`` is, for messages.

    Missing, unexpected or differently shaped entries are one ConfigError naming them all.
    """
    skipped = tuple(f"{kind}/{path}/" for path in skip for kind in ("param", "buffer"))
    layouts = _layouts(model)
    keys = {k: v for k, v in state_keys(model).items() if not k.startswith(skipped)}
    ignored = {torch_path(path) + "." for path in skip}
    known = set(keys.values())
    unexpected = [
        k
        for k in state
        if k not in known
        and not k.endswith("num_batches_tracked")
        and not k.startswith(tuple(ignored))
    ]
    missing = [torch_key for torch_key in keys.values() if torch_key not in state]
    if unexpected or missing:
        problems = [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected]
        raise ConfigError(
            f"{source} does not fit the model: {'; '.join(problems[:8])}"
            + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else "")
        )
    current = model_arrays(model)
    arrays = {k: v for k, v in current.items() if k.startswith(skipped)}
    for array_key, torch_key in keys.items():
        value = np.asarray(_numpy(state[torch_key]))
        arrays[array_key] = _from_torch(array_key, value, layouts)
    load_weights(model, arrays, source=source)


def _numpy(value: Any) -> Any:
    """A torch tensor as a NumPy array (other values as they are)."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value
