"""Max pooling over NCHW images (``maxpool2d``) and the shared window logic of the
k x k poolings (``avgpool2d`` and ``global_avgpool`` live in ``toolkit/nn/avg_pool.py``).

Windows are ``k x k`` with stride ``s`` (default ``s = k``). Sizes follow PyTorch's floor
mode: ``H' = (H - k) // s + 1``, so rows/columns that do not fill a last window are
dropped and get a zero gradient (7x7 with 2x2/2 pooling -> 3x3).

Average pooling's general case loops over the ``k*k`` window offsets, each offset being
one strided slice ``x[:, :, i::s, j::s]`` of shape (N, C, H', W'); max pooling's takes a
row pass and a column pass (``toolkit/nn/window_max.py``). The common 2x2/stride-2 case on
even sizes is faster still: it pools horizontal neighbours first, viewing the image memory
as a flat list of pairs (two 1-D strided slices), then vertical neighbours, viewing the
result as (rows/2, 2, W') -- long inner loops instead of one short loop per image row.
It works on the memory order of its input, so the batch-last views that ``conv2d``
returns are pooled without a copy (and the output keeps that layout).

Max-pooling ties: the gradient goes to the *first* maximum of the window in row-major
order (the element ``argmax`` would pick, as in PyTorch), never split between equal values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from toolkit.nn import batch_last, norm_pool, parallel
from toolkit.nn.activations import ReLU
from toolkit.nn.checks import positive_int
from toolkit.nn.layer import Layer, Shape
from toolkit.nn.norm import BatchNorm, BatchNorm2d
from toolkit.nn.torch_layout import TorchLayout
from toolkit.nn.window_max import window_max, window_max_grad
from toolkit.registry import layers


def memory_order(x: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """(perm, x.transpose(perm)) with the transpose C-contiguous: perm is (0, 1, 2, 3) for
    NCHW memory, (1, 0, 2, 3) for channel-major memory; other layouts are copied to NCHW.
    Both perms are their own inverse."""
    for perm in ((0, 1, 2, 3), (1, 0, 2, 3)):
        if x.transpose(perm).flags.c_contiguous:
            return perm, x.transpose(perm)
    return (0, 1, 2, 3), np.ascontiguousarray(x)


class Pool2d(Layer):
    """Shared shape logic of the k x k / stride s poolings."""

    feature_stage = True
    shards_batch = True

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = positive_int(kernel_size, "kernel_size", self.kind)
        self.stride = (
            self.kernel_size if stride is None else positive_int(stride, "stride", self.kind)
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def spatial_steps(self) -> list[tuple[int, int]]:
        return [(self.kernel_size, self.stride)]

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        channels, height, width = self.image_shape(
            input_shape, "put it after a conv2d layer or reshape the data to (C, H, W) images"
        )
        k = self.kernel_size
        if height < k or width < k:
            raise self.shape_error(
                f"the {k}x{k} window is larger than the {height}x{width} input",
                f"use kernel_size<={min(height, width)} or remove a pooling layer",
            )
        return (channels, (height - k) // self.stride + 1, (width - k) // self.stride + 1)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        _, height, width = self.input_shape
        # the 2x2/2 fast path on even sizes (see the module notes)
        self._pairs = self.kernel_size == self.stride == 2 and height % 2 == 0 and width % 2 == 0
        self._masks: dict[str, np.ndarray] = {}  # batch-last masks, reused between calls
        self._norm: Layer | None = None  # the batch norm forward_fused ran, if any
        return shape

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
class MaxPool2d(Pool2d):
    """Max over k x k windows: x (N, C, H, W) -> y (N, C, H', W').

    Backward sends each window's gradient to its first maximum (row-major); the general
    geometries (overlapping windows, odd sizes) take two 1-D passes
    (``toolkit/nn/window_max.py``).
    """

    kind = "maxpool2d"
    gradcheck_cases = [
        ({"kernel_size": 2}, (2, 4, 4)),
        ({"kernel_size": 2}, (1, 5, 5)),
        ({"kernel_size": 3, "stride": 2}, (2, 7, 8)),
    ]
    torch_layout = TorchLayout(module=lambda nn, pool: nn.MaxPool2d(pool.kernel_size, pool.stride))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, C, H', W')."""
        self._norm = None
        if self._pairs:
            return self._forward_pairs(x)
        k, s = self.kernel_size, self.stride
        self._x = x
        self._row_max, self._y = window_max(x, k, s, self.output_shape[1:])
        return self._y

    def absorbs(self, before: Sequence[Layer]) -> int:
        """How many of the layers right before this one it runs itself (see
        ``Sequential.fusions``): with the 2x2/2 pooling of even sizes, a plain ReLU (1),
        and a batch norm of images before that ReLU (2); else 0."""
        if not self._pairs or not before or type(before[-1]) is not ReLU:
            return 0
        norm = before[-2] if len(before) > 1 else None
        return 2 if type(norm) in (BatchNorm, BatchNorm2d) and len(norm.input_shape) == 3 else 1

    def forward_fused(
        self, x: np.ndarray, absorbed: tuple[Layer, ...], training: bool = False
    ) -> np.ndarray:
        """The absorbed layers and this pool: ``maxpool(relu(x))`` (:meth:`forward_relu`)
        or ``maxpool(relu(bn(x)))``, the latter as one unit (``toolkit/nn/norm_pool.py``)
        in training mode on batch-last memory, else the batch norm then forward_relu."""
        if len(absorbed) == 1:
            return self.forward_relu(x, training)
        norm = absorbed[0]
        if not (training and batch_last.is_batch_last(x)):
            y = self.forward_relu(norm.forward(x, training), training)
            self._norm, self._norm_pooled = norm, False
            return y
        self._norm, self._norm_pooled = norm, True
        y = norm_pool.forward(norm, x.transpose(batch_last.LAST), self._masks)
        return y.transpose(batch_last.FROM_LAST)

    def forward_relu(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """maxpool(relu(x)) computed as relu(maxpool(x)), with a 4x smaller ReLU.

        The two are the same function with the same gradient: ReLU is non-decreasing,
        so it keeps each window's first maximum; where that maximum is <= 0 every window
        element has a zero ReLU gradient, and the pooled ReLU's gradient is zero too.
        :meth:`backward` then applies the ReLU's mask before routing the gradient."""
        self._norm = None
        return self._forward_pairs(x, relu=True)

    def _forward_pairs(self, x: np.ndarray, relu: bool = False) -> np.ndarray:
        """2x2/2 on even sizes, in x's memory order (A, B, H, W) = (N, C, ...) or (C, N, ...),
        over ``parallel.threads()`` shards of whole output rows; batch-last memory
        (C, H, W, N) goes to ``batch_last.pool_forward`` (contiguous passes)."""
        self._relu = relu
        if batch_last.is_batch_last(x):
            self._perm = None
            y = batch_last.pool_forward(x.transpose(batch_last.LAST), relu, self._masks)
            return y.transpose(batch_last.FROM_LAST)
        self._perm, x = memory_order(x)
        a, b, h, w = x.shape
        out_rows, half = a * b * h // 2, w // 2
        flat = x.reshape(out_rows, 2 * w)  # one output row's two input rows per line
        self._right = np.empty((out_rows, w), dtype=bool)  # pair (left, right): right won
        self._bottom = np.empty((out_rows, half), dtype=bool)  # rows (top, bottom): bottom won
        self._positive = np.empty((out_rows, half), dtype=bool) if relu else None
        y = np.empty((out_rows, half), dtype=x.dtype)

        def shard(start: int, stop: int) -> None:
            pairs = flat[start:stop].reshape(-1, 2)  # horizontal neighbours (left, right)
            np.greater(pairs[:, 1], pairs[:, 0], out=self._right[start:stop].reshape(-1))
            rows = np.maximum(pairs[:, 0], pairs[:, 1]).reshape(-1, 2, half)  # ties: left
            np.greater(rows[:, 1], rows[:, 0], out=self._bottom[start:stop])  # ties: top
            np.maximum(rows[:, 0], rows[:, 1], out=y[start:stop])
            if relu:
                positive = self._positive[start:stop]
                np.greater(y[start:stop], 0, out=positive)
                np.multiply(y[start:stop], positive, out=y[start:stop])

        parallel.run(shard, parallel.shard_ranges(out_rows, min_size=256))
        return y.reshape(a, b, h // 2, half).transpose(self._perm)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, C, H', W') -> dx (N, C, H, W), nonzero only at each window's maximum
        (through the absorbed batch norm's backward when :meth:`forward_fused` ran one)."""
        if self._norm is not None and self._norm_pooled:
            dx = norm_pool.backward(self._norm, batch_last.to_batch_last(dy), self._masks)
            return None if dx is None else dx.transpose(batch_last.FROM_LAST)
        if self._norm is not None:
            return self._norm.backward(self._backward_pairs(dy))
        if self._pairs:
            return self._backward_pairs(dy)
        return window_max_grad(self._x, self._row_max, self._y, dy, self.kernel_size, self.stride)

    def _backward_pairs(self, dy: np.ndarray) -> np.ndarray:
        if self._perm is None:  # batch-last
            dy = batch_last.to_batch_last(dy)
            dx = batch_last.pool_backward(dy, self._masks, self._relu)
            return dx.transpose(batch_last.FROM_LAST)
        dy = np.ascontiguousarray(dy.transpose(self._perm))
        a, b, out_h, out_w = dy.shape
        dy = dy.reshape(-1, out_w)
        dx = np.empty((a, b, 2 * out_h, 2 * out_w), dtype=dy.dtype)
        flat = dx.reshape(len(dy), 4 * out_w)
        positive = self._positive

        def shard(start: int, stop: int) -> None:
            grad = dy[start:stop]
            if positive is not None:  # the absorbed ReLU's gradient
                grad = np.multiply(grad, positive[start:stop], dtype=grad.dtype)
            rows = np.empty((stop - start, 2, out_w), dtype=dy.dtype)
            np.multiply(grad, self._bottom[start:stop], out=rows[:, 1])
            np.subtract(grad, rows[:, 1], out=rows[:, 0])  # exact: dy - dy or dy - 0
            pairs, rows = flat[start:stop].reshape(-1, 2), rows.reshape(-1)
            right = self._right[start:stop].reshape(-1)
            np.multiply(rows, right, out=pairs[:, 1])
            np.subtract(rows, pairs[:, 1], out=pairs[:, 0])

        parallel.run(shard, parallel.shard_ranges(len(dy), min_size=256))
        return dx.transpose(self._perm)
