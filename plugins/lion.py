"""Example plugin: the Lion optimizer (Chen et al., 2023), usable as ``optim=lion``.

update = sign(beta1 * m + (1 - beta1) * g); p -= lr * (update + weight_decay * p);
m = beta2 * m + (1 - beta2) * g. Use a learning rate ~3-10x smaller than Adam's.
"""

import numpy as np

from toolkit.optim.optimizer import Optimizer, check_fraction
from toolkit.registry import optimizers


@optimizers.register("lion")
class Lion(Optimizer):
    """Sign-momentum optimizer with decoupled weight decay."""

    def __init__(
        self,
        model,
        /,
        lr: float = 1e-4,
        beta1: float = 0.9,
        beta2: float = 0.99,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay)
        check_fraction(self, "beta1", beta1)
        check_fraction(self, "beta2", beta2)
        self.beta1, self.beta2 = beta1, beta2

    def init_state(self, param: np.ndarray) -> dict:
        # slots made here (not inside update) let a step split big layers over threads
        return {"m": np.zeros_like(param)}

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        m = state["m"]
        direction = np.sign(self.beta1 * m + (1.0 - self.beta1) * grad)
        if self.weight_decay:
            param *= 1.0 - self.lr * self.weight_decay
        param -= self.lr * direction
        m *= self.beta2
        m += (1.0 - self.beta2) * grad
