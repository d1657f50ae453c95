"""Trainer callbacks: hooks called around training; the tracker and early stopping are ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from toolkit.train.trainer import Trainer


class Callback:
    """Base class: every hook does nothing. ``logs`` maps metric names to floats."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer, logs: dict[str, float]) -> None: ...

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """State to checkpoint: (arrays, JSON-serialisable values); stateless by default."""
        return {}, {}

    def load_state_dict(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
