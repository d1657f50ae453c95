"""The basic residual block of ResNet (He et al., 2016) and its plain twin.

::

    x -> conv(k, stride) -> [bn] -> relu -> conv(k, 1) -> [bn] --(+)--> relu -> y
    |                                                             |
    +------------- identity, or conv 1x1 (stride) -> [bn] --------+

The shortcut is the identity when the shapes already match and a strided 1x1
convolution (a "projection") when the channels or the stride change. ``shortcut=False``
drops it (a plain two-conv block with the same layers), which is what residual-vs-plain
studies compare. Convolutions are padded by ``k // 2``; strided ones floor the output
size as PyTorch does (28 -> 14 -> 7 -> 4 with stride 2).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from toolkit.nn.activations import ReLU
from toolkit.nn.batch_last import in_layout_of
from toolkit.nn.checks import positive_int
from toolkit.nn.conv import Conv2d
from toolkit.nn.layer import Layer, Shape
from toolkit.nn.norm import BatchNorm
from toolkit.registry import ConfigError, layers


@layers.register("residual_block")
class ResidualBlock(Layer):
    """Two k x k convolutions with a skip connection: x (N, C, H, W) -> y (N, F, H', W').

    Args:
        out_channels: filters ``F`` of both convolutions (and of the projection).
        stride: stride of the first convolution and of the projection (H' = ceil(H / s)).
        shortcut: add the skip connection; ``False`` gives the plain block.
        batchnorm: batch-normalise after each convolution (their biases are then dropped).
        kernel_size: odd side ``k`` of both kernels.

    Its sub-layers are its children (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``proj``,
    ``proj_bn``), so optimizers and checkpoints see their parameters.
    """

    kind = "residual_block"
    shards_batch = True
    gradcheck_cases = [
        ({"out_channels": 2}, (2, 4, 4)),
        ({"out_channels": 3, "stride": 2}, (2, 4, 4)),
        ({"out_channels": 2, "shortcut": False}, (2, 4, 4)),
    ]
    feature_stage = True

    def __init__(
        self,
        out_channels: int,
        stride: int = 1,
        shortcut: bool = True,
        batchnorm: bool = True,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.out_channels = positive_int(out_channels, "out_channels", self.kind)
        self.stride = positive_int(stride, "stride", self.kind)
        self.kernel_size = positive_int(kernel_size, "kernel_size", self.kind)
        if self.kernel_size % 2 == 0:
            raise ConfigError(
                f"{self.kind}.kernel_size={kernel_size} must be odd so that padding k//2 "
                "keeps the two paths the same size"
            )
        self.shortcut, self.batchnorm = bool(shortcut), bool(batchnorm)
        k, bias = self.kernel_size, not self.batchnorm
        self.conv1 = Conv2d(out_channels, k, self.stride, k // 2, bias=bias, floor_mode=True)
        self.conv2 = Conv2d(out_channels, k, 1, k // 2, bias=bias)
        self.bn1 = BatchNorm() if batchnorm else None
        self.bn2 = BatchNorm() if batchnorm else None
        self.proj: Conv2d | None = None
        self.proj_bn: BatchNorm | None = None
        self._relu1, self._relu2 = ReLU(), ReLU()  # applied in place (forward_in_place)

    def extra_repr(self) -> str:
        return (
            f"{self.out_channels}, stride={self.stride}, shortcut={self.shortcut}, "
            f"batchnorm={self.batchnorm}, kernel_size={self.kernel_size}"
        )

    def spatial_steps(self) -> list[tuple[int, int]]:
        """Its two convolutions in a row (the first carries the stride)."""
        return [(self.kernel_size, self.stride), (self.kernel_size, 1)]

    def children(self) -> Iterator[tuple[str, Layer]]:
        named = {
            "conv1": self.conv1,
            "bn1": self.bn1,
            "conv2": self.conv2,
            "bn2": self.bn2,
            "proj": self.proj,
            "proj_bn": self.proj_bn,
        }
        return ((name, layer) for name, layer in named.items() if layer is not None)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        self.input_shape = tuple(input_shape)
        self.image_shape(
            self.input_shape, "put it after a conv2d layer or reshape the data to (C, H, W) images"
        )
        shape = self.conv1.build(self.input_shape, rng, dtype)
        if self.bn1 is not None:
            self.bn1.build(shape, rng, dtype)
        shape = self.conv2.build(shape, rng, dtype)
        if self.bn2 is not None:
            self.bn2.build(shape, rng, dtype)
        needs_projection = self.stride != 1 or self.input_shape[0] != self.out_channels
        if self.shortcut and needs_projection:
            self.proj = Conv2d(
                self.out_channels, 1, self.stride, bias=not self.batchnorm, floor_mode=True
            )
            self.proj.build(self.input_shape, rng, dtype)
            self.proj_bn = BatchNorm() if self.batchnorm else None
            if self.proj_bn is not None:
                self.proj_bn.build(shape, rng, dtype)
        else:
            self.proj = self.proj_bn = None
        self.output_shape = shape
        return shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, C, H, W) -> y (N, F, H', W')."""
        h = self.conv1.forward(x, training)
        if self.bn1 is not None:
            h = self.bn1.forward(h, training)
        h = self._relu1.forward_in_place(h)
        h = self.conv2.forward(h, training)
        if self.bn2 is not None:
            h = self.bn2.forward(h, training)
        if self.shortcut:
            h += in_layout_of(self._shortcut_forward(x, training), h)
        return self._relu2.forward_in_place(h)

    def _shortcut_forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if self.proj is None:
            return x
        s = self.proj.forward(x, training)
        return self.proj_bn.forward(s, training) if self.proj_bn is not None else s

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, F, H', W') -> dx (N, C, H, W) (None unless ``needs_input_grad``); fills
        the sub-layers' grads."""
        needed = self.needs_input_grad
        for layer in (self.conv1, self.proj):  # the layers that read x
            if layer is not None:
                layer.needs_input_grad = needed
        dh = self._relu2.backward(dy)
        dx_skip = self._shortcut_backward(dh) if self.shortcut else None
        if self.bn2 is not None:
            dh = self.bn2.backward(dh)
        dh = self.conv2.backward(dh)
        dh = self._relu1.backward(dh)
        if self.bn1 is not None:
            dh = self.bn1.backward(dh)
        dx = self.conv1.backward(dh)
        if not needed:
            return None
        if dx_skip is not None:
            dx += in_layout_of(dx_skip, dx)  # dx is conv1's fresh array
        return dx

    def _shortcut_backward(self, dy: np.ndarray) -> np.ndarray | None:
        if self.proj is None:
            return dy
        if self.proj_bn is not None:
            dy = self.proj_bn.backward(dy)
        return self.proj.backward(dy)
