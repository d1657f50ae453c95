"""What a layer declares for PyTorch interop: its torch twin and where its arrays go.

A layer class sets ``torch_layout = TorchLayout(...)`` beside its code, and
:mod:`toolkit.interop` reads it (nothing here imports torch: ``module`` receives the
``torch.nn`` namespace)::

    class Dense(Layer):
        torch_layout = TorchLayout(
            {"W": "weight", "b": "bias"},
            transposed=frozenset({"W"}),  # W (in, out); Linear.weight (out, in)
            module=lambda nn, dense: nn.Linear(dense.input_shape[0], dense.units, dense.bias),
        )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TorchLayout:
    """A layer's PyTorch twin and the keys and layout of its arrays there.

    Attributes:
        names: the layer's ``params``/``buffers`` key -> the torch ``state_dict`` name
            (``{"W": "weight", "b": "bias"}``); empty for a layer without arrays.
        transposed: keys whose torch array is the transpose of the toolkit one.
        counts_batches: the torch module also keeps ``num_batches_tracked`` (batch
            norms): written as 0 on export, ignored on import.
        module: ``module(torch.nn, built_layer)`` -> a torch module computing what the
            layer computes (untrained), or None when one module cannot (then only
            :mod:`toolkit.interop.named_state`, which maps arrays, supports it).
    """

    names: Mapping[str, str] = field(default_factory=dict)
    transposed: frozenset[str] = frozenset()
    counts_batches: bool = False
    module: Callable[[Any, Any], Any] | None = None

    def torch_array(self, key: str, array: np.ndarray) -> np.ndarray:
        """Array ``key`` in torch's layout (a view: transposed or as is)."""
        return array.T if key in self.transposed else array

    def toolkit_array(self, key: str, array: np.ndarray) -> np.ndarray:
        """A torch array of key ``key`` in the layer's layout (the inverse of
        :meth:`torch_array`)."""
        return array.T if key in self.transposed else array
