"""Trainer callbacks: hooks called around training; the tracker and early stopping are ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.train.trainer import Trainer


class Callback:
    """Base class: every hook does nothing. ``logs`` maps metric names to floats."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer, logs: dict[str, float]) -> None: ...
