"""Early stopping on a monitored metric, restoring the best weights at the end."""

from __future__ import annotations

import numpy as np

from toolkit.registry import ParameterError, bad_value
from toolkit.train.callbacks import Callback
from toolkit.train.metrics import higher_is_better


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs.

    Args:
        monitor: a metric the trainer logs each epoch, e.g. ``val/loss`` or ``val/acc``.
        patience: epochs without improvement before stopping (>= 1).
        mode: ``min`` or ``max``; ``auto`` picks ``max`` for accuracies, else ``min``.
        min_delta: smallest change that counts as an improvement.
        restore_best: put the best epoch's weights back when training ends.
    """

    def __init__(
        self,
        monitor: str = "val/loss",
        patience: int = 5,
        mode: str = "auto",
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if not isinstance(patience, int) or patience < 1:
            raise bad_value(self, "patience", "an integer >= 1", patience)
        if mode not in ("auto", "min", "max"):
            raise bad_value(self, "mode", "auto, min or max", mode)
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = ("max" if higher_is_better(monitor) else "min") if mode == "auto" else mode
        self.restore_best = restore_best
        self.best: float | None = None
        self.best_epoch = 0
        self._best_params: list[dict[str, np.ndarray]] = []
        self._wait = 0

    def on_fit_start(self, trainer) -> None:
        if self.monitor not in trainer.metric_names():
            names = ", ".join(trainer.metric_names())
            raise ParameterError(
                "EarlyStopping",
                f"{{monitor}}={self.monitor!r} is not logged; choose one of: {names}",
            )

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best:  # weights and buffers (batch norm's running statistics)
                self._best_params = [
                    {
                        **{f"param.{k}": v.copy() for k, v in layer.params.items()},
                        **{f"buffer.{k}": v.copy() for k, v in layer.buffers.items()},
                    }
                    for _, layer in trainer.model.named_layers()
                ]
            return
        self._wait += 1
        if self._wait >= self.patience:
            trainer.stop_training = True
            trainer.log(
                f"early stopping at epoch {epoch}: {self.monitor} best {self.best:.4f} "
                f"at epoch {self.best_epoch}"
            )

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {
            f"{i}/{key}": value
            for i, params in enumerate(self._best_params)
            for key, value in params.items()
        }
        values = {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self._wait,
            "layers": len(self._best_params),
        }
        return arrays, values

    def load_state_dict(self, arrays: dict[str, np.ndarray], values: dict) -> None:
        self.best, self.best_epoch, self._wait = (
            values["best"],
            values["best_epoch"],
            values["wait"],
        )
        self._best_params = [
            {k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[0] == str(i)}
            for i in range(values["layers"])
        ]

    def on_fit_end(self, trainer, logs: dict[str, float]) -> None:
        if self.restore_best and self._best_params:
            layers = [layer for _, layer in trainer.model.named_layers()]
            for layer, saved in zip(layers, self._best_params, strict=True):
                for key, value in saved.items():
                    kind, _, name = key.rpartition(".")  # no kind: an older checkpoint's param
                    (layer.buffers if kind == "buffer" else layer.params)[name][...] = value
