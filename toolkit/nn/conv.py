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
  ``(i, j)`` reads the image shifted by ``(i-p)*W + (j-p)`` in the flattened
  (N*H*W) positions of each channel, so im2col is ``k*k`` contiguous shifted copies and
  col2im ``k*k`` contiguous shifted adds; the taps that fall outside the image (and
  wrap around in the flat view) are zeroed.
* any other geometry: im2col copies strided slices of a zero-padded input (a sliding-
  window view); col2im adds strided slices clipped to the unpadded input.

Layout: the layer works channel-major. ``cols``, the GEMM output and dx live in
(C, N, H, W) memory, and ``forward``/``backward`` return NCHW-shaped *views* of it
(``transpose(1, 0, 2, 3)``), which saves a transpose per call. Element-wise layers keep
that layout (NumPy allocates results in the input's memory order), pooling and the next
convolution use it without copies, and a flatten copies it into NCHW order.

Output size: ``H' = (H + 2p - k) / s + 1`` must be a whole number unless ``floor_mode``
(PyTorch's behaviour: the last rows/columns that do not fit a full stride are dropped).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from toolkit.nn import parallel
from toolkit.nn.checks import positive_int
from toolkit.nn.im2col import col2im_shifted, im2col_shifted, tap_span
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
        self._cols: np.ndarray | None = None  # (C*k*k [+1], N, H', W') patches of the last x
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
        self._cols, self._padded = None, {}
        return self.output_shape

    def _weight_matrix(self) -> np.ndarray:
        """W_aug (F, C*k*k [+1]): the flattened kernels, with the bias as the last column."""
        weights = self.params["W"].reshape(self.out_channels, -1)
        if not self.bias:
            return weights
        return np.concatenate([weights, self.params["b"][:, None]], axis=1)

    def _scratch(self, batch: int) -> np.ndarray:
        """The ``cols`` buffer (C*k*k [+1], N, H', W') for ``batch`` samples, reused across
        calls (its last row of ones multiplies the bias)."""
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

    def _shards(self, n: int) -> list[tuple[int, list[tuple[int, int]]]]:
        """The batch dealt to ``parallel.threads()`` shards of contiguous samples, as
        [(shard, [(start, stop)])]. (Cache-sized chunks of samples within a shard were
        measured slower: smaller GEMMs, and an im2col recomputed or a col2im per chunk.)"""
        ranges = parallel.shard_ranges(n, min_size=4)
        self._chunk = max(stop - start for start, stop in ranges)
        return [(i, [span]) for i, span in enumerate(ranges)]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, F, H', W'), a view of channel-major memory.

        The batch is split into ``parallel.threads()`` shards of samples, each with its
        own im2col columns and GEMM on its own thread; every output element is computed
        from its own sample alone, so the result does not depend on the split.
        """
        n, c = x.shape[:2]
        k = self.kernel_size
        _, out_h, out_w = self.output_shape
        cols = self._scratch(n)
        rows = cols.shape[0]
        by_channel = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
        weights = self._weight_matrix()
        y = np.empty((self.out_channels, n, out_h, out_w), dtype=cols.dtype)
        plan = self._shards(n)

        def shard(index: int, _: int) -> None:
            shard_id, chunks = plan[index]
            for start, stop in chunks:
                patches = cols[: c * k * k, start:stop].reshape(c, k, k, stop - start, out_h, out_w)
                if self._shifts:
                    im2col_shifted(by_channel[:, start:stop], patches, self.pad)
                else:
                    padded = self._padded_scratch(shard_id) if self.pad else None
                    self._im2col_windows(by_channel[:, start:stop], patches, padded)
                out = y[:, start:stop].reshape(self.out_channels, -1)
                np.matmul(weights, cols[:, start:stop].reshape(rows, -1), out=out)

        parallel.run(shard, [(i, i + 1) for i in range(len(plan))])
        return y.transpose(1, 0, 2, 3)

    def _im2col_windows(
        self, x: np.ndarray, patches: np.ndarray, padded: np.ndarray | None
    ) -> None:
        """patches (C, k, k, n, H', W') <- strided windows of x (C, n, H, W) padded by p
        (through the zero-bordered buffer ``padded``)."""
        k, s, p = self.kernel_size, self.stride, self.pad
        _, out_h, out_w = self.output_shape
        if p:
            padded = padded[:, : x.shape[1]]
            padded[:, :, p:-p, p:-p] = x
            x = padded
        windows = sliding_window_view(x, (k, k), axis=(2, 3))
        windows = windows[:, :, : s * out_h : s, : s * out_w : s]  # (C, N, H', W', k, k)
        np.copyto(patches, windows.transpose(0, 4, 5, 1, 2, 3), casting="same_kind")

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, F, H', W') -> dx (N, C, H, W) (None unless ``needs_input_grad``); fills
        grads["W"] (and grads["b"]).

        Sharded like :meth:`forward`: each shard's weight gradient is one GEMM over its
        samples, and the shards' partial sums are added in shard order."""
        rows, n = self._cols.shape[:2]
        f, k, c = self.out_channels, self.kernel_size, self.input_shape[0]
        taps = rows - self.bias
        # (F, N, H', W'): no copy when dy is channel-major (as behind our own output)
        dy = np.ascontiguousarray(dy.transpose(1, 0, 2, 3), dtype=self._cols.dtype)
        needs_dx = self.needs_input_grad  # the first layer of a model skips dL/d(data)
        dx = np.empty((c, n, *self.input_shape[1:]), dy.dtype) if needs_dx else None
        w_t = self.params["W"].reshape(f, taps).T
        plan = self._shards(n)

        def shard(index: int, _: int) -> np.ndarray:
            chunks = plan[index][1]
            first, last = chunks[0][0], chunks[-1][1]
            cols = self._cols[:, first:last].reshape(rows, -1)
            grad = cols @ dy[:, first:last].reshape(f, -1).T  # (rows, F): the faster order
            for start, stop in chunks if dx is not None else ():
                dcols = w_t @ dy[:, start:stop].reshape(f, -1)
                dcols = dcols.reshape(c, k, k, stop - start, *self.output_shape[1:])
                if self._shifts:
                    col2im_shifted(dcols, self.pad, out=dx[:, start:stop])
                else:
                    self._col2im_clipped(dcols, out=dx[:, start:stop])
            return grad

        partial = parallel.run(shard, [(i, i + 1) for i in range(len(plan))])
        grad = partial[0]
        for more in partial[1:]:  # fixed order: the same sums for the same thread count
            grad += more
        self.grads["W"][...] = grad[:taps].T.reshape(self.grads["W"].shape)
        if self.bias:
            self.grads["b"][...] = grad[taps]
        return None if dx is None else dx.transpose(1, 0, 2, 3)

    def _col2im_clipped(self, dcols: np.ndarray, out: np.ndarray) -> np.ndarray:
        """dcols (C, k, k, N, H', W') -> out (C, N, H, W): one strided add per kernel
        offset, clipped to the unpadded input (no padded buffer, no crop)."""
        _, h, w = self.input_shape
        _, out_h, out_w = self.output_shape
        k, s, p = self.kernel_size, self.stride, self.pad
        rows = [tap_span(i, h, out_h, s, p) for i in range(k)]
        cols = [tap_span(j, w, out_w, s, p) for j in range(k)]
        dx = out
        dx[...] = 0
        for i, (out_rows, in_rows) in enumerate(rows):
            for j, (out_cols, in_cols) in enumerate(cols):
                dx[:, :, in_rows, in_cols] += dcols[:, i, j, :, out_rows, out_cols]
        return dx
