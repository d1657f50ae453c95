"""Average pooling over NCHW images: ``avgpool2d`` (k x k windows, stride s; see
``toolkit/nn/pool.py`` for the window sizes and the 2x2/2 fast path on even sizes) and
``global_avgpool`` (the mean of each channel).
"""

from __future__ import annotations

import numpy as np

from toolkit.nn.layer import Layer, Shape
from toolkit.nn.pool import Pool2d, memory_order
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import layers


@layers.register("avgpool2d")
class AvgPool2d(Pool2d):
    """Mean over k x k windows: x (N, C, H, W) -> y (N, C, H', W')."""

    kind = "avgpool2d"
    gradcheck_cases = [
        ({"kernel_size": 2}, (2, 4, 4)),
        ({"kernel_size": 3, "stride": 2}, (1, 7, 7)),
    ]
    torch_layout = TorchLayout(module=lambda nn, pool: nn.AvgPool2d(pool.kernel_size, pool.stride))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, C, H', W')."""
        if self._pairs:  # 2x2/2 on even sizes, in x's memory order
            self._perm, x = memory_order(x)
            a, b, h, w = x.shape
            pairs = x.reshape(-1, 2)
            rows = np.add(pairs[:, 0], pairs[:, 1]).reshape(-1, 2, w // 2)
            y = np.add(rows[:, 0], rows[:, 1])
            y *= 0.25
            return y.reshape(a, b, h // 2, w // 2).transpose(self._perm)
        slices = self._slices(x)
        y = slices[0].copy()
        for view in slices[1:]:
            y += view
        y *= 1.0 / len(slices)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C, H', W') -> dx (N, C, H, W): each window element gets dy / k^2."""
        if self._pairs:
            share = np.multiply(dy.transpose(self._perm), 0.25, order="C")
            a, b, out_h, out_w = share.shape
            pairs = np.repeat(share.reshape(-1, 1, out_w), 2, axis=2)  # (A*B*H', 1, W)
            dx = np.repeat(pairs, 2, axis=1)  # (A*B*H', 2, W)
            return dx.reshape(a, b, 2 * out_h, 2 * out_w).transpose(self._perm)
        dx = self._input_gradient(dy.shape[0], dy.dtype)
        share = dy * (1.0 / self.kernel_size**2)
        for view in self._slices(dx):
            if self.stride < self.kernel_size:
                view += share
            else:
                view[...] = share
        return dx


@layers.register("global_avgpool")
class GlobalAvgPool(Layer):
    """Mean over all positions of each channel: x (N, C, H, W) -> y (N, C)."""

    kind = "global_avgpool"
    shards_batch = True
    gradcheck_cases = [({}, (3, 4, 4))]
    torch_layout = TorchLayout(
        module=lambda nn, pool: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    )

    def spatial_steps(self) -> list[tuple[int, int]]:
        """One window over the whole map."""
        return [(self.input_shape[-1], self.input_shape[-1])]

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        channels, _, _ = self.image_shape(input_shape, "put it after a conv2d layer")
        return (channels,)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, C)."""
        return x.mean(axis=(2, 3))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C) -> dx (N, C, H, W), every position getting dy / (H*W)."""
        c, h, w = self.input_shape
        dx = np.empty((dy.shape[0], c, h, w), dtype=dy.dtype)
        dx[...] = (dy * (1.0 / (h * w)))[:, :, None, None]
        return dx
