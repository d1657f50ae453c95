"""Example plugin: the Swish (SiLU) activation, y = x * sigmoid(beta * x).

Dropping this file into ``plugins/`` is all it takes:
``python -m toolkit +model=mlp model.activation=swish`` uses it, ``--help`` lists it, and
the test suite gradient-checks it with every other registered activation.
"""

import numpy as np

from toolkit.nn.activations import Activation
from toolkit.registry import activations


@activations.register("swish")
class Swish(Activation):
    """y = x * s with s = sigmoid(beta * x); dy/dx = s + beta * x * s * (1 - s)."""

    kind = "swish"

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        self._s = 0.5 * (1.0 + np.tanh(0.5 * self.beta * x))
        return x * self._s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        s = self._s
        return dy * (s + self.beta * self._x * s * (1.0 - s))
