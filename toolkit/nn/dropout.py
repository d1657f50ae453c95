"""Inverted dropout."""

from __future__ import annotations

import numpy as np

from toolkit.nn.layer import Layer, Shape
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import ConfigError, layers


@layers.register("dropout")
class Dropout(Layer):
    """Zeroes each activation with probability ``rate`` while training and scales the
    survivors by ``1 / (1 - rate)``, so evaluation is the identity. Any shape.

    The mask is drawn from the layer's own generator ``self.rng``, seeded from the model's
    generator at build time, so runs with the same seed draw the same masks.
    """

    kind = "dropout"
    shards_batch = True
    gradcheck_cases = [({"rate": 0.3}, (6,))]
    torch_layout = TorchLayout(module=lambda nn, layer: nn.Dropout(layer.rate))

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"dropout rate must be in [0, 1); got {rate!r}")
        self.rate = float(rate)
        self.rng = np.random.default_rng(0)
        self._mask: np.ndarray | None = None

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        self.rng = np.random.default_rng(rng.integers(2**63))
        return super().build(input_shape, rng, dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy if self._mask is None else dy * self._mask

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
