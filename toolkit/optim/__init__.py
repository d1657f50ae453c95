"""Optimizers and learning-rate schedules (pure NumPy)."""

from toolkit.optim import optimizers, schedules  # noqa: F401  (importing registers them)
from toolkit.optim.optimizer import Optimizer
from toolkit.optim.schedules import Schedule

__all__ = ["Optimizer", "Schedule"]
