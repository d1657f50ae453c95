"""Fully connected layer: ``y = x @ W + b``."""

from __future__ import annotations

import numpy as np

from toolkit.nn.initializers import initialize
from toolkit.nn.layer import Layer, Shape
from toolkit.registry import ConfigError, layers


@layers.register("dense")
class Dense(Layer):
    """Affine map of flat features.

    Shapes: x (N, in_features) -> y (N, units); ``params["W"]`` is (in_features, units)
    (the transpose of ``torch.nn.Linear.weight``) and ``params["b"]`` is (units,).

    Args:
        units: number of output features.
        bias: learn an additive bias.
        init: initializer name for W (``he``, ``xavier``, ``normal``...); b starts at zero.
    """

    kind = "dense"

    def __init__(self, units: int, bias: bool = True, init: str = "he") -> None:
        super().__init__()
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ConfigError(f"dense units must be a positive integer; got {units!r}")
        self.units, self.bias, self.init = units, bias, init
        self._x: np.ndarray | None = None

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise self.shape_error(
                f"dense expects flat features (F,), got {len(input_shape)}-d samples",
                "put a flatten layer before it",
            )
        return (self.units,)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        fan_in = input_shape[0]
        self.params["W"] = initialize(
            self.init, (fan_in, self.units), fan_in, self.units, rng, dtype
        )
        self.grads["W"] = np.zeros_like(self.params["W"])
        if self.bias:
            self.params["b"] = np.zeros(self.units, dtype=dtype)
            self.grads["b"] = np.zeros_like(self.params["b"])
        return shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        y = x @ self.params["W"]
        if self.bias:
            y += self.params["b"]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        np.matmul(self._x.T, dy, out=self.grads["W"])
        if self.bias:
            np.sum(dy, axis=0, out=self.grads["b"])
        return dy @ self.params["W"].T if self.needs_input_grad else None

    def extra_repr(self) -> str:
        return f"units={self.units}, bias={self.bias}, init={self.init!r}"
