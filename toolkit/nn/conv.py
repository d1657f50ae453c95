"""2-D convolution (``conv2d``) by im2col + one matrix product per sample.

Forward, for a stride-``s`` convolution with a ``k x k`` kernel::

    x (N, C, H, W) --pad--> (N, C, H+2p, W+2p) --im2col--> cols (N, C*k*k + 1, H'*W')
    y[n] = W_aug (F, C*k*k + 1) @ cols[n]          -> y (N, F, H', W')

``cols`` holds, for every output position, the ``C*k*k`` input values its kernel sees,
plus a row of ones so that the bias is the last column of ``W_aug`` (one GEMM does the
product and the bias; the bias gradient falls out of the weight gradient). The copy into
``cols`` is ``k*k`` shifted strided slices of the padded input (a sliding-window view), so
its inner loop runs along image rows. Backward::

    dW_aug = sum_n dy[n] (F, H'*W') @ cols[n]^T       -> dW (F, C, k, k), db (F,)
    dcols[n] = W^T (C*k*k, F) @ dy[n]                  -> (N, C*k*k, H'*W')
    dx = col2im(dcols): for each of the k*k kernel offsets add its slice into the
         padded input gradient (a loop over offsets, never over pixels), then crop.

Output size: ``H' = (H + 2p - k) / s + 1`` must be a whole number unless ``floor_mode``
(PyTorch's behaviour: the last rows/columns that do not fit a full stride are dropped).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from toolkit.nn.initializers import initialize
from toolkit.nn.layer import Layer, Shape
from toolkit.registry import ConfigError, layers


def positive_int(value: object, name: str, owner: str) -> int:
    """``value`` if it is an int >= 1, else a ConfigError naming ``owner.name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{owner}.{name}={value!r} must be a positive integer")
    return int(value)


@layers.register("conv2d")
class Conv2d(Layer):
    """2-D convolution over NCHW images: x (N, C, H, W) -> y (N, F, H', W').

    Args:
        out_channels: number of filters ``F``.
        kernel_size: side ``k`` of the square kernel.
        stride: step ``s`` between kernel positions.
        padding: zeros added on every side (an int), or ``"same"`` (``k // 2``; needs an odd
            kernel and stride 1, and keeps H and W).
        bias: learn a per-filter offset ``b`` (F,).
        init: weight initializer name (``he``, ``xavier``, ...); the bias starts at zero.
        in_channels: expected ``C``; inferred from the input shape when ``None``.
        floor_mode: when the strided kernel positions do not tile the padded input
            exactly, drop the leftover rows/columns (as PyTorch does) instead of raising.

    ``params["W"]`` has shape (F, C, k, k) like PyTorch's ``Conv2d.weight``.
    """

    kind = "conv2d"

    def __init__(
        self,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | str = 0,
        bias: bool = True,
        init: str = "he",
        in_channels: int | None = None,
        floor_mode: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels = positive_int(out_channels, "out_channels", "conv2d")
        self.kernel_size = positive_int(kernel_size, "kernel_size", "conv2d")
        self.stride = positive_int(stride, "stride", "conv2d")
        self.padding = padding
        self.pad = self._padding_amount(padding)
        self.bias = bool(bias)
        self.init = init
        self.in_channels = (
            None if in_channels is None else positive_int(in_channels, "in_channels", "conv2d")
        )
        self.floor_mode = bool(floor_mode)
        self._padded: np.ndarray | None = None  # (N, C, H+2p, W+2p) zero-bordered scratch
        self._cols: np.ndarray | None = None  # (N, C*k*k [+1], H'*W') patches of the last x

    def _padding_amount(self, padding: int | str) -> int:
        if padding == "same":
            if self.stride != 1 or self.kernel_size % 2 == 0:
                raise ConfigError(
                    f"conv2d.padding='same' needs stride=1 and an odd kernel_size (got "
                    f"stride={self.stride}, kernel_size={self.kernel_size}); "
                    f"use an integer padding instead"
                )
            return self.kernel_size // 2
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ConfigError(f"conv2d.padding={padding!r} must be an integer >= 0 or 'same'")
        return int(padding)

    def extra_repr(self) -> str:
        return (
            f"{self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding!r}"
        )

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self.shape_error(
                "conv2d expects per-sample inputs (channels, height, width)",
                "reshape the data to (C, H, W) images (e.g. (1, 28, 28) for MNIST)",
            )
        channels, height, width = input_shape
        if self.in_channels is not None and self.in_channels != channels:
            raise self.shape_error(
                f"in_channels={self.in_channels} but the input has {channels} channels",
                f"use in_channels={channels} or leave it unset to infer it",
            )
        return (self.out_channels, self._output_size(height), self._output_size(width))

    def _output_size(self, size: int) -> int:
        k, s, p = self.kernel_size, self.stride, self.pad
        if size + 2 * p < k:
            raise self.shape_error(
                f"the {k}x{k} kernel is larger than the padded input ({size}+2*{p})",
                f"use kernel_size<={size + 2 * p} or padding>={-(-(k - size) // 2)}",
            )
        if (size + 2 * p - k) % s and not self.floor_mode:
            fits = [q for q in range(p, p + s) if (size + 2 * q - k) % s == 0]
            better = f"padding={fits[0]} or " if fits else ""
            raise self.shape_error(
                f"non-integer output size ({size} + 2*{p} - {k}) / {s} + 1",
                f"use {better}stride=1 (or floor_mode=True to drop the leftover rows)",
            )
        return (size + 2 * p - k) // s + 1

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        self.input_shape = tuple(input_shape)
        self.output_shape = self.infer_output_shape(self.input_shape)
        channels, k, f = self.input_shape[0], self.kernel_size, self.out_channels
        self.params = {
            "W": initialize(self.init, (f, channels, k, k), channels * k * k, f * k * k, rng, dtype)
        }
        if self.bias:
            self.params["b"] = np.zeros(f, dtype=dtype)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self._padded = self._cols = None
        return self.output_shape

    def _weight_matrix(self) -> np.ndarray:
        """W_aug (F, C*k*k [+1]): the flattened kernels, with the bias as the last column."""
        weights = self.params["W"].reshape(self.out_channels, -1)
        if not self.bias:
            return weights
        return np.concatenate([weights, self.params["b"][:, None]], axis=1)

    def _scratch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The padded-input and ``cols`` buffers for a batch like ``x`` (reused across calls)."""
        n, c, h, w = x.shape
        k, p, dtype = self.kernel_size, self.pad, self.params["W"].dtype
        _, out_h, out_w = self.output_shape
        rows = c * k * k + self.bias
        if self._cols is None or self._cols.shape != (n, rows, out_h * out_w):
            self._cols = np.empty((n, rows, out_h * out_w), dtype=dtype)
            if self.bias:
                self._cols[:, -1] = 1
            self._padded = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=dtype) if p else None
        return self._padded, self._cols

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, F, H', W')."""
        n, c = x.shape[:2]
        k, s, p = self.kernel_size, self.stride, self.pad
        _, out_h, out_w = self.output_shape
        padded, cols = self._scratch(x)
        if p:
            padded[:, :, p:-p, p:-p] = x
        else:
            padded = x
        windows = sliding_window_view(padded, (k, k), axis=(2, 3))
        windows = windows[:, :, : s * out_h : s, : s * out_w : s]  # (N, C, H', W', k, k)
        patches = cols[:, : c * k * k].reshape(n, c, k, k, out_h, out_w)
        np.copyto(patches, windows.transpose(0, 1, 4, 5, 2, 3), casting="same_kind")
        y = np.matmul(self._weight_matrix(), cols)
        return y.reshape(n, self.out_channels, out_h, out_w)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, F, H', W') -> dx (N, C, H, W); fills grads["W"] (and grads["b"])."""
        cols = self._cols
        n, f = dy.shape[:2]
        c, h, w = self.input_shape
        dy = np.ascontiguousarray(dy, dtype=cols.dtype).reshape(n, f, -1)
        # sum_n dy[n] @ cols[n]^T as one GEMM: (F, N*P) @ (N*P, rows)
        grad = np.einsum("nfp,nrp->fr", dy, cols, optimize=True)
        k2 = c * self.kernel_size**2
        self.grads["W"][...] = grad[:, :k2].reshape(self.grads["W"].shape)
        if self.bias:
            self.grads["b"][...] = grad[:, k2]
        dcols = np.matmul(self.params["W"].reshape(f, k2).T, dy)
        return self._col2im(dcols, n)

    def _col2im(self, dcols: np.ndarray, n: int) -> np.ndarray:
        """Sum the patch gradients dcols (N, C*k*k, H'*W') back onto dx (N, C, H, W)."""
        c, h, w = self.input_shape
        k, s, p = self.kernel_size, self.stride, self.pad
        _, out_h, out_w = self.output_shape
        dpadded = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=dcols.dtype)
        patches = dcols.reshape(n, c, k, k, out_h, out_w)
        for i in range(k):
            for j in range(k):
                dpadded[:, :, i : i + s * out_h : s, j : j + s * out_w : s] += patches[:, :, i, j]
        return dpadded[:, :, p : p + h, p : p + w] if p else dpadded
