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

The round trip is exact (the arrays are copied, the dense weight transposed twice).
``torch`` is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from toolkit.interop.torch_state import STATE_KEYS
from toolkit.nn.layer import Layer
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
    parameter and buffer of ``model``; a layer kind without a known mapping is named."""
    keys = {}
    for path, layer in model.named_layers():
        arrays = {**layer.params, **layer.buffers}
        if not arrays:
            continue
        names = STATE_KEYS.get(layer.kind)
        if names is None:
            raise ConfigError(
                f"layer {path} ({layer.kind}) has no torch state_dict mapping in "
                f"toolkit.interop; mapped kinds: {', '.join(sorted(STATE_KEYS))}"
            )
        for key in arrays:
            kind = "param" if key in layer.params else "buffer"
            keys[f"{kind}/{path}/{key}"] = f"{torch_path(path)}.{names[key]}"
    return keys


def _transposed(array_key: str, model_kinds: dict[str, str]) -> bool:
    """Whether the array is a dense layer's W (stored transposed in torch)."""
    _, path, name = array_key.split("/")
    return name == "W" and model_kinds[path] == "dense"


def to_torch_state(model: Layer) -> dict[str, Any]:
    """The model's parameters and buffers as a torch ``state_dict`` (copies, torch layout),
    with ``num_batches_tracked = 0`` for each batch norm."""
    import torch

    kinds = {path: layer.kind for path, layer in model.named_layers()}
    arrays = model_arrays(model)
    state: dict[str, Any] = {}
    for array_key, torch_key in state_keys(model).items():
        value = arrays[array_key].T if _transposed(array_key, kinds) else arrays[array_key]
        state[torch_key] = torch.from_numpy(np.array(value, order="C"))
        if torch_key.endswith(".running_var"):
            state[torch_key.removesuffix("running_var") + "num_batches_tracked"] = torch.tensor(0)
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
    kinds = {path: layer.kind for path, layer in model.named_layers()}
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
        arrays[array_key] = value.T if _transposed(array_key, kinds) else value
    load_weights(model, arrays, source=source)


def _numpy(value: Any) -> Any:
    """A torch tensor as a NumPy array (other values as they are)."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value
