"""Pooling over NCHW images: ``maxpool2d``, ``avgpool2d`` and ``global_avgpool``.

Windows are ``k x k`` with stride ``s`` (default ``s = k``). Sizes follow PyTorch's floor
mode: ``H' = (H - k) // s + 1``, so rows/columns that do not fill a last window are
dropped and get a zero gradient (7x7 with 2x2/2 pooling -> 3x3).

Both poolings are written as a loop over the ``k*k`` window offsets, each offset being
one strided slice ``x[:, :, i::s, j::s]`` of shape (N, C, H', W'): for 2x2/2 max pooling
that is three ``np.maximum`` calls on four slices, far faster than reducing a reshaped
window axis.

Max-pooling ties: the gradient goes to the *first* maximum of the window in row-major
order (the same element ``argmax`` would pick), never split between equal values.
"""

from __future__ import annotations

import numpy as np

from toolkit.nn.conv import positive_int
from toolkit.nn.layer import Layer, Shape
from toolkit.registry import layers


class _Pool2d(Layer):
    """Shared shape logic of the k x k / stride s poolings."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = positive_int(kernel_size, "kernel_size", self.kind)
        self.stride = (
            self.kernel_size if stride is None else positive_int(stride, "stride", self.kind)
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self.shape_error(
                f"{self.kind} expects per-sample inputs (channels, height, width)",
                "put it after a conv2d layer or reshape the data to (C, H, W) images",
            )
        channels, height, width = input_shape
        k = self.kernel_size
        if height < k or width < k:
            raise self.shape_error(
                f"the {k}x{k} window is larger than the {height}x{width} input",
                f"use kernel_size<={min(height, width)} or remove a pooling layer",
            )
        return (channels, (height - k) // self.stride + 1, (width - k) // self.stride + 1)

    def _slices(self, x: np.ndarray) -> list[np.ndarray]:
        """The k*k strided views x[:, :, i::s, j::s] (each (N, C, H', W')), row-major."""
        k, s = self.kernel_size, self.stride
        _, out_h, out_w = self.output_shape
        return [
            x[:, :, i : i + s * (out_h - 1) + 1 : s, j : j + s * (out_w - 1) + 1 : s]
            for i in range(k)
            for j in range(k)
        ]

    def _input_gradient(self, n: int, dtype: np.dtype) -> np.ndarray:
        """A buffer for dx: uninitialised when the windows tile the input exactly."""
        c, h, w = self.input_shape
        _, out_h, out_w = self.output_shape
        k, s = self.kernel_size, self.stride
        exact = s == k and out_h * k == h and out_w * k == w
        return (np.empty if exact else np.zeros)((n, c, h, w), dtype=dtype)


@layers.register("maxpool2d")
class MaxPool2d(_Pool2d):
    """Max over k x k windows: x (N, C, H, W) -> y (N, C, H', W').

    Backward sends each window's gradient to its first maximum (row-major), the element
    recorded during forward.
    """

    kind = "maxpool2d"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, C, H', W')."""
        slices = self._slices(x)
        y = slices[0].copy()
        # which: index of the first maximum of each window (uint8 while k*k <= 256)
        which = np.zeros(y.shape, dtype=np.uint8 if len(slices) <= 256 else np.int32)
        larger = np.empty(y.shape, dtype=bool)
        for offset, view in enumerate(slices[1:], start=1):
            np.greater(view, y, out=larger)  # strict: an equal later value does not win
            np.copyto(which, offset, where=larger, casting="unsafe")
            np.maximum(y, view, out=y)
        self._which = which
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C, H', W') -> dx (N, C, H, W), nonzero only at each window's maximum."""
        dx = self._input_gradient(dy.shape[0], dy.dtype)
        overlapping = self.stride < self.kernel_size
        chosen = np.empty(dy.shape, dtype=bool)
        for offset, view in enumerate(self._slices(dx)):
            np.equal(self._which, offset, out=chosen)
            if overlapping:
                view += np.where(chosen, dy, 0)
            else:
                np.multiply(dy, chosen, out=view)
        return dx


@layers.register("avgpool2d")
class AvgPool2d(_Pool2d):
    """Mean over k x k windows: x (N, C, H, W) -> y (N, C, H', W')."""

    kind = "avgpool2d"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, C, H', W')."""
        slices = self._slices(x)
        y = slices[0].copy()
        for view in slices[1:]:
            y += view
        y *= 1.0 / len(slices)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C, H', W') -> dx (N, C, H, W): each window element gets dy / k^2."""
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

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self.shape_error(
                "global_avgpool expects per-sample inputs (channels, height, width)",
                "put it after a conv2d layer",
            )
        return (input_shape[0],)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, C)."""
        return x.mean(axis=(2, 3))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C) -> dx (N, C, H, W), every position getting dy / (H*W)."""
        c, h, w = self.input_shape
        dx = np.empty((dy.shape[0], c, h, w), dtype=dy.dtype)
        dx[...] = (dy * (1.0 / (h * w)))[:, :, None, None]
        return dx
