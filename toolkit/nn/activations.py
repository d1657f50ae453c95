"""Element-wise activation layers (and softmax over the last axis).

Each is a :class:`Layer` registered in ``toolkit.registry.activations``; any shape in,
the same shape out. ``kinks`` lists the inputs where the function is not differentiable,
so gradient checks can stay away from them.
"""

from __future__ import annotations

import numpy as np

from toolkit.nn.batch_last import in_layout_of
from toolkit.nn.layer import Layer
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import ConfigError, activations, layers


class Activation(Layer):
    """Base of element-wise activations; keeps what backward needs from forward."""

    kind = "activation"
    shards_batch = True
    kinks: tuple[float, ...] = ()


@activations.register("identity")
class Identity(Activation):
    """y = x."""

    kind = "identity"
    torch_layout = TorchLayout(module=lambda nn, layer: nn.Identity())


@activations.register("relu")
class ReLU(Activation):
    """y = max(x, 0); dy/dx = 1 where x > 0 (0 at the kink)."""

    kind = "relu"
    kinks = (0.0,)
    torch_layout = TorchLayout(module=lambda nn, layer: nn.ReLU())

    _zeros: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._positive = x > 0
        return np.maximum(x, zeros_like_cached(self, x))

    def forward_in_place(self, x: np.ndarray) -> np.ndarray:
        """:meth:`forward` writing y over ``x`` (for a caller that owns ``x`` and does not
        need it again, such as a residual block's intermediate maps)."""
        self._positive = x > 0
        return np.maximum(x, zeros_like_cached(self, x), out=x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dy = in_layout_of(dy, self._positive)
        return np.multiply(dy, self._positive, dtype=dy.dtype)


def zeros_like_cached(owner: object, x: np.ndarray) -> np.ndarray:
    """Zeros with ``x``'s shape, dtype and memory layout, kept on ``owner`` for the next
    call: ``np.maximum(x, zeros)`` runs NumPy's vectorised loop, ~2.5x faster than
    ``np.maximum(x, 0)`` (a broadcast scalar) here, with the same results."""
    zeros = getattr(owner, "_zeros", None)
    if (
        zeros is None
        or zeros.shape != x.shape
        or zeros.strides != x.strides
        or zeros.dtype != x.dtype
    ):
        zeros = np.zeros_like(x)
        owner._zeros = zeros
    return zeros


@activations.register("leaky_relu")
class LeakyReLU(Activation):
    """y = x for x > 0, ``negative_slope * x`` otherwise."""

    kind = "leaky_relu"
    kinks = (0.0,)
    torch_layout = TorchLayout(module=lambda nn, layer: nn.LeakyReLU(layer.negative_slope))

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._slope = np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)
        return x * self._slope

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self._slope


@activations.register("sigmoid")
class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2 so it never overflows."""

    kind = "sigmoid"
    torch_layout = TorchLayout(module=lambda nn, layer: nn.Sigmoid())

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = np.tanh(x * 0.5)
        y += 1.0
        y *= 0.5
        self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._y
        return dy * y * (1.0 - y)


@activations.register("tanh")
class Tanh(Activation):
    """y = tanh(x); dy/dx = 1 - y^2."""

    kind = "tanh"
    torch_layout = TorchLayout(module=lambda nn, layer: nn.Tanh())

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._y
        return dy * (1.0 - y * y)


@activations.register("elu")
class ELU(Activation):
    """y = x for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""

    kind = "elu"
    kinks = (0.0,)
    torch_layout = TorchLayout(module=lambda nn, layer: nn.ELU(layer.alpha))

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if alpha <= 0:
            raise ConfigError(f"elu alpha must be > 0; got {alpha!r}")
        self.alpha = alpha

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._positive = x > 0
        negative = self.alpha * np.expm1(np.minimum(x, 0))
        self._y = np.where(self._positive, x, negative).astype(x.dtype, copy=False)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * np.where(self._positive, 1.0, self._y + self.alpha).astype(dy.dtype)


@activations.register("gelu")
class GELU(Activation):
    """Gaussian error linear unit, tanh approximation (PyTorch's ``approximate="tanh"``):
    y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))."""

    kind = "gelu"
    torch_layout = TorchLayout(module=lambda nn, layer: nn.GELU(approximate="tanh"))
    _c = float(np.sqrt(2.0 / np.pi))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        self._t = np.tanh(self._c * (x + 0.044715 * x**3))
        return 0.5 * x * (1.0 + self._t)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, t = self._x, self._t
        dinner = self._c * (1.0 + 3 * 0.044715 * x * x)
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)


@activations.register("softmax")
class Softmax(Activation):
    """Softmax over the last axis: y_i = exp(x_i) / sum_j exp(x_j) (shifted by the max).

    For classification prefer raw logits with the ``cross_entropy`` loss, which fuses the
    softmax in a numerically stable way.
    """

    kind = "softmax"
    torch_layout = TorchLayout(module=lambda nn, layer: nn.Softmax(dim=-1))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self._y = e / e.sum(axis=-1, keepdims=True)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._y
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


@layers.register("activation", gradcheck_cases=[({"name": "tanh"}, (5,))])
def activation_layer(name: str = "relu") -> Activation:
    """An activation chosen by name, as a layer (``layers.build("activation", "tanh")``);
    the model builders use it too."""
    return activations.build(name, key="activation")
