"""The two shape layers a convolutional decoder needs: ``unflatten`` and ``upsample2d``.

Both are gradient-checked with every registered layer; the autoencoders use them.
"""

from __future__ import annotations

import math

import numpy as np

from toolkit.nn.checks import positive_int, positive_ints
from toolkit.nn.layer import Layer, Shape
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import layers


@layers.register("unflatten")
class Unflatten(Layer):
    """Gives flat samples a shape: x (N, prod(shape)) -> y (N, *shape), e.g. a dense
    decoder's (N, 1568) -> (N, 32, 7, 7) feature maps.

    Args:
        shape: per-sample output shape.
    """

    kind = "unflatten"
    shards_batch = True
    gradcheck_cases = [({"shape": (2, 3, 3)}, (18,))]
    torch_layout = TorchLayout(module=lambda nn, layer: nn.Unflatten(1, layer.shape))

    def __init__(self, shape: list[int]) -> None:
        super().__init__()
        self.shape = tuple(positive_ints(shape, "shape", "unflatten"))

    def extra_repr(self) -> str:
        return f"{self.shape}"

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        if math.prod(input_shape) != math.prod(self.shape):
            raise self.shape_error(
                f"{math.prod(input_shape)} features cannot be shaped as {self.shape}",
                f"give the layer before it {math.prod(self.shape)} outputs",
            )
        return self.shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(dy.shape[0], *self.input_shape)


@layers.register("upsample2d")
class Upsample2d(Layer):
    """Nearest-neighbour upsampling of NCHW images: x (N, C, H, W) -> y (N, C, sH, sW),
    every pixel repeated in an s x s block (``torch.nn.Upsample(scale_factor=s)``).

    The backward pass sums each s x s block of dy back onto its source pixel.

    Args:
        scale: the factor ``s`` (an int >= 1) for both height and width.
    """

    kind = "upsample2d"
    shards_batch = True
    gradcheck_cases = [({"scale": 2}, (2, 3, 3)), ({"scale": 3}, (1, 2, 2))]
    torch_layout = TorchLayout(
        module=lambda nn, layer: nn.Upsample(scale_factor=layer.scale, mode="nearest")
    )

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = positive_int(scale, "scale", "upsample2d")

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def infer_output_shape(self, input_shape: Shape) -> Shape:
        channels, height, width = self.image_shape(input_shape, "put an unflatten layer before it")
        return (channels, height * self.scale, width * self.scale)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        n, c, h, w = x.shape
        s = self.scale
        blocks = np.broadcast_to(x[:, :, :, None, :, None], (n, c, h, s, w, s))
        return blocks.reshape(n, c, h * s, w * s)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h, w = dy.shape
        s = self.scale
        return dy.reshape(n, c, h // s, s, w // s, s).sum(axis=(3, 5))
