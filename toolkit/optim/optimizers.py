"""SGD (momentum, Nesterov), RMSprop, Adam and AdamW with PyTorch's update rules.

Presets (``adamw``, ``sgd_momentum``) are registered with ``optimizers.preset``: an entry
with other defaults, built and configured like the others.

Each update is written with in-place ufuncs into per-parameter state so a step allocates
almost nothing; all arithmetic stays in the parameter's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from toolkit.optim.optimizer import Optimizer, Trainable, check_fraction
from toolkit.registry import ParameterError, optimizers


def _decayed(param: np.ndarray, grad: np.ndarray, weight_decay: float) -> np.ndarray:
    """grad + weight_decay * param (a new array only when weight decay is on)."""
    return grad + weight_decay * param if weight_decay else grad


@optimizers.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent: v = momentum * v + g; p -= lr * (g + momentum * v if
    nesterov else v). With momentum 0 this is p -= lr * g."""

    decaying_slots = ("velocity",)

    def __init__(
        self,
        model: Trainable,
        /,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay)
        check_fraction(self, "momentum", momentum)
        if nesterov and momentum == 0:
            raise ParameterError(
                type(self).__name__, "{nesterov}=True needs {momentum} > 0 (e.g. 0.9)"
            )
        self.momentum, self.nesterov = momentum, nesterov

    def init_state(self, param: np.ndarray) -> dict[str, np.ndarray]:
        # zeros: the first step's momentum * 0 + g is exactly PyTorch's copy of g
        return {"velocity": np.zeros_like(param)} if self.momentum else {}

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        grad = _decayed(param, grad, self.weight_decay)
        if self.momentum == 0:
            param -= self.lr * grad
            return
        velocity = state["velocity"]
        velocity *= self.momentum
        velocity += grad
        step = grad + self.momentum * velocity if self.nesterov else velocity
        param -= self.lr * step


@optimizers.register("rmsprop")
class RMSprop(Optimizer):
    """RMSprop: s = alpha * s + (1 - alpha) * g^2; p -= lr * g / (sqrt(s) + eps)."""

    decaying_slots = ("square_avg",)

    def __init__(
        self,
        model: Trainable,
        /,
        lr: float = 0.001,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay)
        check_fraction(self, "alpha", alpha)
        self.alpha, self.eps = alpha, eps

    def init_state(self, param: np.ndarray) -> dict[str, np.ndarray]:
        return {"square_avg": np.zeros_like(param)}

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        grad = _decayed(param, grad, self.weight_decay)
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1.0 - self.alpha) * (grad * grad)
        denom = np.sqrt(square_avg)
        denom += self.eps
        param -= self.lr * (grad / denom)


@optimizers.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is an L2 term added to the
    gradient, or with ``decoupled`` a decay of the weights themselves (AdamW: the
    ``adamw`` preset)."""

    decaying_slots = ("m", "v")

    def __init__(
        self,
        model: Trainable,
        /,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay)
        self.decoupled = bool(decoupled)
        check_fraction(self, "beta1", beta1)
        check_fraction(self, "beta2", beta2)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init_state(self, param: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "m": np.zeros_like(param),
            "v": np.zeros_like(param),
            "scratch": np.empty_like(param),
        }

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if self.decoupled:
            param *= 1.0 - self.lr * self.weight_decay
        else:
            grad = _decayed(param, grad, self.weight_decay)
        m, v, scratch = state["m"], state["v"], state["scratch"]
        t = self.steps
        m *= self.beta1
        np.multiply(grad, 1.0 - self.beta1, out=scratch)
        m += scratch
        v *= self.beta2
        np.multiply(grad, grad, out=scratch)
        scratch *= 1.0 - self.beta2
        v += scratch
        # p -= lr_t * m / (sqrt(v) + eps_t): the bias corrections folded into lr and eps.
        # Python floats (math.sqrt), not NumPy scalars, so float32 arithmetic stays float32.
        correction2 = math.sqrt(1.0 - self.beta2**t)
        step_size = self.lr * correction2 / (1.0 - self.beta1**t)
        np.sqrt(v, out=scratch)
        scratch += self.eps * correction2
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        param -= scratch

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in super().state_dict().items() if not k.endswith("/scratch")}

    def load_state_dict(self, flat: dict[str, np.ndarray]) -> None:
        super().load_state_dict(flat)
        for state in self.state.values():
            if "m" in state:
                state["scratch"] = np.empty_like(state["m"])


optimizers.preset(
    "adamw",
    "adam",
    "AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, "
    "p *= 1 - lr * weight_decay, and PyTorch's default weight_decay=0.01.",
    decoupled=True,
    weight_decay=0.01,
)
optimizers.preset(
    "sgd_momentum",
    "sgd",
    "SGD with momentum 0.9 (Polyak), the optimizers study's second optimizer.",
    momentum=0.9,
)
