"""2-D convolution (``conv2d``): im2col + matrix products (GEMMs), on batch-last memory.

Shapes (``k x k`` kernel, stride ``s``, padding ``p``, ``F`` filters)::

    x (N, C, H, W) --im2col--> cols (C*k*k + 1, H'*W'*N)
    y = W_aug (F, C*k*k + 1) @ cols  -> (F, H'*W'*N) -> y (N, F, H', W')

Row ``(c, i, j)`` of ``cols`` holds input channel ``c`` seen through kernel offset
``(i, j)`` at every output position of every sample; the last row is ones, so the bias is
the last column of ``W_aug`` and the bias gradient falls out of the weight gradient.
Backward::

    dW_aug = dy (F, H'*W'*N) @ cols^T          -> grads W (F, C, k, k) and b (F,)
    dx     = the transposed convolution of dy  -> (N, C, H, W)

The columns are ordered (h', w', n): the output is (F, H', W', N) memory, returned as an
NCHW view (``toolkit/nn/batch_last.py`` says why and which layers keep that layout). cols
is never built whole: im2col runs one cache-sized chunk of output rows at a time, backward
re-runs it for dW, and dx is one stride-1 convolution of dy per stride phase
(``toolkit/nn/conv_batch_last.py``).

Output size: ``H' = (H + 2p - k) / s + 1`` must be a whole number unless ``floor_mode``
(PyTorch's behaviour: the last rows/columns that do not fit a full stride are dropped).
"""

from __future__ import annotations

import numpy as np

from toolkit.nn import batch_last, conv_batch_last
from toolkit.nn.checks import positive_int
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
    shards_batch = True
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
        self._taps: np.ndarray | None = None  # the last x's taps (C, k, k, H', W', N), a view
        self._workspace: dict[str, np.ndarray] = {}  # padded x and dy, chunks of patches

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
        self._taps, self._workspace = None, {}
        return self.output_shape

    def _weight_matrix(self) -> np.ndarray:
        """W_aug (F, C*k*k [+1]): the flattened kernels, with the bias as the last column."""
        weights = self.params["W"].reshape(self.out_channels, -1)
        if not self.bias:
            return weights
        return np.concatenate([weights, self.params["b"][:, None]], axis=1)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) in any memory order -> y (N, F, H', W'), a view of batch-last
        memory. Shards of output rows each run their own im2col and GEMMs; every output
        element is the same dot product whatever the split."""
        dtype, k = self.params["W"].dtype, self.kernel_size
        padded = conv_batch_last.padded_batch_last(x, self.pad, self._workspace, "padded x", dtype)
        self._taps = conv_batch_last.taps_view(padded, (k, k), self.stride)
        y = conv_batch_last.conv_forward(self._taps, self._weight_matrix(), self._workspace)
        return y.transpose(batch_last.FROM_LAST)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, F, H', W') -> dx (N, C, H, W) (None unless ``needs_input_grad``), a view
        of batch-last memory; fills grads["W"] (and grads["b"]) from the patches of the
        last forward's input (``conv_batch_last.conv_backward``)."""
        geometry = (self.stride, self.pad, *self.input_shape[1:])
        grad, dx = conv_batch_last.conv_backward(
            dy, self._taps, self.params["W"], self.bias, self._workspace,
            geometry if self.needs_input_grad else None,  # the first layer skips dL/d(data)
        )  # fmt: skip
        self._store_grads(grad)
        return None if dx is None else dx.transpose(batch_last.FROM_LAST)

    def _store_grads(self, grad: np.ndarray) -> None:
        """grads["W"] (and ["b"]) from grad (C*k*k [+1], F) = cols @ dy^T."""
        taps = grad.shape[0] - self.bias
        self.grads["W"][...] = grad[:taps].T.reshape(self.grads["W"].shape)
        if self.bias:
            self.grads["b"][...] = grad[taps]
