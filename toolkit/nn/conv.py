"""2-D convolution (``conv2d``): im2col + one matrix product (GEMM) over the whole batch.

Shapes (``k x k`` kernel, stride ``s``, padding ``p``, ``F`` filters)::

    x (N, C, H, W) --im2col--> cols (C*k*k + 1, N*H'*W')
    y = W_aug (F, C*k*k + 1) @ cols  -> (F, N*H'*W') -> y (N, F, H', W')

Row ``(c, i, j)`` of ``cols`` holds input channel ``c`` seen through kernel offset
``(i, j)`` at every output position of every sample; the last row is ones, so the bias is
the last column of ``W_aug`` and the bias gradient falls out of the weight gradient.
Backward::

    dW_aug = dy (F, N*H'*W') @ cols^T          -> grads W (F, C, k, k) and b (F,)
    dcols  = W^T (C*k*k, F) @ dy               -> (C*k*k, N*H'*W')
    dx     = col2im(dcols)                     -> (N, C, H, W)

col2im is the adjoint of im2col: each kernel offset adds its rows of ``dcols`` back onto
the input positions it read. Both loop over the ``k*k`` offsets, never over pixels:

* stride 1 with "same" padding (``2p = k - 1``, the LeNet/ResNet case): offset
  ``(i, j)`` reads the image shifted by ``((i-p)*W + (j-p))*N`` in the flattened
  (H*W*N) positions of each channel (batch-last memory), so im2col is ``k*k`` contiguous
  shifted copies. It runs one cache-sized chunk of output rows at a time and keeps no
  patches: backward re-runs it for dW, and dx is the same convolution of dy with the
  kernels turned by 180 degrees (``toolkit/nn/same_conv.py``).
* any other geometry: im2col copies strided slices of a zero-padded input (a sliding-
  window view); col2im adds strided slices clipped to the unpadded input.

Layout: the stride-1 "same" case works batch-last, in (C, H, W, N) memory, and returns
NCHW-shaped views of it (``toolkit/nn/batch_last.py`` says why and which layers keep it);
other geometries work channel-major, in (C, N, H, W) memory (``transpose(1, 0, 2, 3)``).

Output size: ``H' = (H + 2p - k) / s + 1`` must be a whole number unless ``floor_mode``
(PyTorch's behaviour: the last rows/columns that do not fit a full stride are dropped).
"""

from __future__ import annotations

import numpy as np

from toolkit.nn import batch_last, parallel, same_conv
from toolkit.nn.checks import positive_int
from toolkit.nn.im2col import col2im_clipped, im2col_windows
from toolkit.nn.initializers import initialize
from toolkit.nn.layer import Layer, Shape
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import ConfigError, layers


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
    gradcheck_cases = [
        ({"out_channels": 3, "kernel_size": 3, "stride": 1, "padding": 0}, (2, 5, 5)),
        ({"out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1}, (2, 5, 5)),
        ({"out_channels": 2, "kernel_size": 3, "padding": "same", "bias": False}, (2, 4, 4)),
    ]
    weight_names = ("W",)
    is_conv = feature_stage = True
    torch_layout = TorchLayout(
        {"W": "weight", "b": "bias"},  # W (F, C, k, k) as is
        module=lambda nn, conv: nn.Conv2d(
            conv.input_shape[0],
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.pad,
            bias=conv.bias,
        ),
    )

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
        self._cols: np.ndarray | None = None  # patches of the last x (C*k*k [+1], N, H', W')
        self._input: np.ndarray | None = None  # the last x (C, H+2p, W+2p, N), batch-last case
        self._workspace: dict[str, np.ndarray] = {}  # the batch-last case's patch chunks
        self._padded: dict[int, np.ndarray] = {}  # per shard: (C, chunk, H+2p, W+2p) zeros
        self._chunk = 1

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

    def spatial_steps(self) -> list[tuple[int, int]]:
        return [(self.kernel_size, self.stride)]

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        channels, height, width = self.image_shape(
            input_shape, "reshape the data to (C, H, W) images (e.g. (1, 28, 28) for MNIST)"
        )
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
        self._cols, self._input, self._padded = None, None, {}
        return self.output_shape

    def _weight_matrix(self) -> np.ndarray:
        """W_aug (F, C*k*k [+1]): the flattened kernels, with the bias as the last column."""
        weights = self.params["W"].reshape(self.out_channels, -1)
        if not self.bias:
            return weights
        return np.concatenate([weights, self.params["b"][:, None]], axis=1)

    def _scratch(self, batch: int) -> np.ndarray:
        """The reused ``cols`` buffer (C*k*k [+1], N, H', W') for ``batch`` samples
        (the channel-major case); its last row of ones multiplies the bias."""
        c = self.input_shape[0]
        _, out_h, out_w = self.output_shape
        shape = (c * self.kernel_size**2 + self.bias, batch, out_h, out_w)
        if self._cols is None or self._cols.shape != shape:
            self._cols = np.empty(shape, dtype=self.params["W"].dtype)
            if self.bias:
                self._cols[-1] = 1
        return self._cols

    def _padded_scratch(self, shard: int) -> np.ndarray:
        """Shard ``shard``'s zero-bordered input chunk (C, chunk, H+2p, W+2p) for the
        sliding-window path (only its interior is ever written)."""
        c, h, w = self.input_shape
        p = self.pad
        shape = (c, self._chunk, h + 2 * p, w + 2 * p)
        padded = self._padded.get(shard)
        if padded is None or padded.shape != shape:
            self._padded[shard] = padded = np.zeros(shape, dtype=self.params["W"].dtype)
        return padded

    @property
    def _shifts(self) -> bool:
        """Stride 1 with "same" padding: im2col/col2im by flat shifts."""
        return self.stride == 1 and 2 * self.pad == self.kernel_size - 1

    def _shards(self, n: int) -> list[tuple[int, int]]:
        """The batch as ``parallel.threads()`` (start, stop) shards of samples (smaller,
        cache-sized chunks were measured slower)."""
        ranges = parallel.shard_ranges(n, min_size=4)
        self._chunk = max(stop - start for start, stop in ranges)
        return ranges

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, F, H', W'), a view of batch-last (stride-1 "same") or
        channel-major memory. Shards (output rows batch-last, else samples) each run their
        own im2col and GEMM; every output element is the same dot product whatever the split.
        """
        if self._shifts:
            dtype, k = self.params["W"].dtype, self.kernel_size
            padded = same_conv.padded_batch_last(x, self.pad, self._workspace, "padded x", dtype)
            y = same_conv.conv_forward(padded, self._weight_matrix(), k, self._workspace)
            self._input = padded
            return y.transpose(batch_last.FROM_LAST)
        n, c = x.shape[:2]
        k, s, p = self.kernel_size, self.stride, self.pad
        _, out_h, out_w = self.output_shape
        cols = self._scratch(n)
        rows = cols.shape[0]
        by_channel = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
        weights = self._weight_matrix()
        y = np.empty((self.out_channels, n, out_h, out_w), dtype=cols.dtype)
        ranges = self._shards(n)

        def shard(start: int, stop: int) -> None:
            patches = cols[: c * k * k, start:stop].reshape(c, k, k, stop - start, out_h, out_w)
            padded = self._padded_scratch(ranges.index((start, stop))) if p else None
            im2col_windows(by_channel[:, start:stop], patches, padded, s, p)
            out = y[:, start:stop].reshape(self.out_channels, -1)
            np.matmul(weights, cols[:, start:stop].reshape(rows, -1), out=out)

        parallel.run(shard, ranges)
        return y.transpose(1, 0, 2, 3)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, F, H', W') -> dx (N, C, H, W) (None unless ``needs_input_grad``); fills
        grads["W"] (and grads["b"]).

        Sharded like :meth:`forward`: each shard's weight gradient is one GEMM over its
        columns, and the shards' partial sums are added in shard order."""
        if self._shifts:
            return self._backward_batch_last(dy)
        rows, n = self._cols.shape[:2]
        f, k, c = self.out_channels, self.kernel_size, self.input_shape[0]
        taps = rows - self.bias
        # (F, N, H', W'): no copy when dy is channel-major (as behind our own output)
        dy = np.ascontiguousarray(dy.transpose(1, 0, 2, 3), dtype=self._cols.dtype)
        needs_dx = self.needs_input_grad  # the first layer of a model skips dL/d(data)
        dx = np.empty((c, n, *self.input_shape[1:]), dy.dtype) if needs_dx else None
        w_t = self.params["W"].reshape(f, taps).T

        def shard(start: int, stop: int) -> np.ndarray:
            cols = self._cols[:, start:stop].reshape(rows, -1)
            grad = cols @ dy[:, start:stop].reshape(f, -1).T  # (rows, F): the faster order
            if dx is not None:
                dcols = w_t @ dy[:, start:stop].reshape(f, -1)
                dcols = dcols.reshape(c, k, k, stop - start, *self.output_shape[1:])
                col2im_clipped(dcols, self.stride, self.pad, out=dx[:, start:stop])
            return grad

        self._store_grads(parallel.sum_in_order(parallel.run(shard, self._shards(n))))
        return None if dx is None else dx.transpose(1, 0, 2, 3)

    def _store_grads(self, grad: np.ndarray) -> None:
        """grads["W"] (and ["b"]) from grad (C*k*k [+1], F) = cols @ dy^T."""
        taps = grad.shape[0] - self.bias
        self.grads["W"][...] = grad[:taps].T.reshape(self.grads["W"].shape)
        if self.bias:
            self.grads["b"][...] = grad[taps]

    def _backward_batch_last(self, dy: np.ndarray) -> np.ndarray | None:
        """:meth:`backward` of the stride-1 "same" case (``same_conv.conv_backward``, from
        the input kept by forward)."""
        grad, dx = same_conv.conv_backward(
            dy, self._input, self.params["W"], self.bias, self.needs_input_grad, self._workspace
        )
        self._store_grads(grad)
        return None if dx is None else dx.transpose(batch_last.FROM_LAST)
