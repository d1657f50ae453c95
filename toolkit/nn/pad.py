"""Constant padding of NCHW images (``pad2d``): the border a padded max-pool needs.

::

    x (N, C, H, W) -> y (N, C, H + 2p, W + 2p),   y[:, :, p:p+H, p:p+W] = x, border = value

Backward crops the gradient back to the interior (the border's entries are constants).
Composed with ``maxpool2d`` and ``value=-inf`` it is PyTorch's ``MaxPool2d(k, s, padding=p)``
(the padded positions never win a window), which is ResNet's 3x3/2 stem pool.

The output keeps the input's memory order (NCHW, or the batch-last layout that
``conv2d`` returns), so the following pooling reads it without a copy.
"""

from __future__ import annotations

import numpy as np

from toolkit.nn.layer import Layer, Shape
from toolkit.nn.pool import memory_order
from toolkit.registry import ConfigError, layers


@layers.register("pad2d")
class Pad2d(Layer):
    """Pad height and width by ``padding`` on every side with ``value``.

    Args:
        padding: border width ``p`` in pixels, an int >= 0.
        value: the border's value (``float("-inf")`` before a max-pool).
    """

    kind = "pad2d"
    shards_batch = True
    gradcheck_cases = [({"padding": 1}, (2, 3, 3)), ({"padding": 2, "value": 0.5}, (1, 2, 4))]

    def __init__(self, padding: int = 1, value: float = 0.0) -> None:
        super().__init__()
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ConfigError(f"pad2d.padding={padding!r} must be an integer >= 0")
        self.padding = int(padding)
        self.value = float(value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value:g}"

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = self.image_shape(
            input_shape, "put it after a conv2d layer or reshape the data to (C, H, W) images"
        )
        return (c, h + 2 * self.padding, w + 2 * self.padding)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, C, H + 2p, W + 2p), in x's memory order."""
        p = self.padding
        if not p:
            return x
        perm, inner = memory_order(x)  # (A, B, H, W) contiguous, a view of x
        a, b, h, w = inner.shape
        out = np.empty((a, b, h + 2 * p, w + 2 * p), dtype=x.dtype)
        out[:, :, :p] = self.value
        out[:, :, -p:] = self.value
        out[:, :, p:-p, :p] = self.value
        out[:, :, p:-p, -p:] = self.value
        out[:, :, p:-p, p:-p] = inner
        return out.transpose(perm)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C, H + 2p, W + 2p) -> dx (N, C, H, W): the interior (a view)."""
        p = self.padding
        return dy[:, :, p:-p, p:-p] if p else dy
