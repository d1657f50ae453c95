"""Shape-only layers."""

from __future__ import annotations

import math

import numpy as np

from toolkit.nn.layer import Layer, Shape
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import layers


@layers.register("flatten")
class Flatten(Layer):
    """Flattens every sample: x (N, d1, d2, ...) -> y (N, d1*d2*...)."""

    kind = "flatten"
    shards_batch = True
    gradcheck_cases = [({}, (2, 3, 3))]
    torch_layout = TorchLayout(module=lambda nn, layer: nn.Flatten())

    def spatial_steps(self) -> list[tuple[int, int]]:
        """A flattened (C, H, W) map is mixed whole: one window over it."""
        if self.input_shape is None or len(self.input_shape) != 3:
            return []
        return [(self.input_shape[-1], self.input_shape[-1])]

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape((dy.shape[0], *self.input_shape))
