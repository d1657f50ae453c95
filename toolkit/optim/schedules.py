"""Learning-rate schedules: the LR to use in each epoch.

A schedule is built with the optimizer's base LR and the run's total number of epochs
(both injected) and answers ``lr_at(epoch)`` for 0-based epochs.
"""

from __future__ import annotations

import math

from toolkit.optim.optimizer import check_positive
from toolkit.registry import ParameterError, bad_value, schedules


class Schedule:
    """Base class: a constant LR."""

    def __init__(self, base_lr: float, total_epochs: int, /) -> None:
        check_positive(self, "base_lr", base_lr)
        self.base_lr = float(base_lr)
        self.total_epochs = int(total_epochs)

    def lr_at(self, epoch: int) -> float:
        """The LR for 0-based ``epoch``."""
        return self.base_lr

    def values(self) -> list[float]:
        """The LR of every epoch of the run."""
        return [self.lr_at(e) for e in range(self.total_epochs)]


@schedules.register("constant")
class Constant(Schedule):
    """lr = base_lr in every epoch."""


@schedules.register("step")
class Step(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size): e.g. halve every 5 epochs."""

    def __init__(
        self, base_lr: float, total_epochs: int, /, step_size: int = 5, gamma: float = 0.5
    ) -> None:
        super().__init__(base_lr, total_epochs)
        check_positive(self, "step_size", step_size)
        check_positive(self, "gamma", gamma)
        self.step_size, self.gamma = int(step_size), gamma

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


@schedules.register("exponential")
class Exponential(Schedule):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, base_lr: float, total_epochs: int, /, gamma: float = 0.97) -> None:
        super().__init__(base_lr, total_epochs)
        check_positive(self, "gamma", gamma)
        self.gamma = gamma

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma**epoch


@schedules.register("cosine")
class Cosine(Schedule):
    """Cosine annealing from base_lr down to ``min_lr`` over the run:
    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * epoch / total_epochs)) / 2."""

    def __init__(self, base_lr: float, total_epochs: int, /, min_lr: float = 0.0) -> None:
        super().__init__(base_lr, total_epochs)
        if not 0 <= min_lr < base_lr:
            raise bad_value(self, "min_lr", f"in [0, {{base_lr}}={base_lr})", min_lr)
        self.min_lr = min_lr

    def lr_at(self, epoch: int) -> float:
        progress = epoch / max(self.total_epochs, 1)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


@schedules.register("warmup")
class Warmup(Schedule):
    """Linear warm-up from ``base_lr * start_factor`` to base_lr over ``warmup_epochs``,
    then the schedule named ``after`` over the remaining epochs."""

    def __init__(
        self,
        base_lr: float,
        total_epochs: int,
        /,
        warmup_epochs: int = 2,
        start_factor: float = 0.1,
        after: str = "cosine",
    ) -> None:
        super().__init__(base_lr, total_epochs)
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise bad_value(self, "warmup_epochs", "an integer >= 0", warmup_epochs)
        check_positive(self, "start_factor", start_factor)
        if after == "warmup":
            raise ParameterError(
                type(self).__name__, "{after} cannot be 'warmup'; pick constant, step, cosine..."
            )
        self.warmup_epochs, self.start_factor = warmup_epochs, start_factor
        remaining = max(total_epochs - warmup_epochs, 1)
        self.after: Schedule = schedules.build(after, base_lr, remaining, key="after")

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            fraction = epoch / self.warmup_epochs
            return self.base_lr * (self.start_factor + (1 - self.start_factor) * fraction)
        return self.after.lr_at(epoch - self.warmup_epochs)
