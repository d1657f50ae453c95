"""The training loop: epochs of mini-batch steps, evaluation and callbacks."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from toolkit.data.batching import iterate_batches, num_batches
from toolkit.nn import parallel
from toolkit.nn.data_parallel import DataParallel
from toolkit.nn.layer import Layer, forward_in_batches
from toolkit.nn.losses import Loss
from toolkit.optim.optimizer import Optimizer
from toolkit.optim.schedules import Constant, Schedule
from toolkit.registry import bad_value
from toolkit.train.callbacks import Callback
from toolkit.train.metrics import accuracy
from toolkit.train.threads import blas_threads, engine_threads


def _strip(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` under ``prefix``, with the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


class Data(Protocol):
    """Anything with inputs ``x`` (N, ...) and targets ``y`` (N,) or (N, T)."""

    x: np.ndarray
    y: np.ndarray


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class Trainer:
    """Fits a model with a loss, an optimizer and an LR schedule.

    Each epoch sets the optimizer's LR from the schedule, runs shuffled mini-batches
    (forward, loss, backward, optimizer step), then evaluates the validation data and calls
    the callbacks with the epoch's metrics. ``history`` keeps every metric per epoch:
    ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc`` (accuracies for classification
    only), ``lr``, ``time/epoch_s`` and ``grad_norm/<layer>`` (the L2 norm of that layer's
    parameter gradients, averaged over the epoch's steps). A NaN/inf loss raises
    :class:`DivergenceError` at once.

    Args:
        model: a built model.
        loss: the loss; its ``link`` turns outputs into predictions.
        optimizer: bound to ``model``'s parameters.
        schedule: per-epoch LR; constant at the optimizer's LR if omitted.
        epochs: number of epochs (>= 1).
        batch_size: samples per step (>= 1).
        seed: seeds the shuffling order.
        classification: log accuracies (targets are class indices).
        callbacks: hooks called at fit start, each epoch end, and fit end.
        progress: show a progress bar per epoch (on stderr).
        log_grad_norms: track per-layer gradient norms (a few microseconds per step).
        augment: applied to each training batch, ``augment(x, rng) -> x`` (e.g. a
            :class:`toolkit.data.Augmenter`); it draws from its own generator, so turning
            it on does not change the data order.
        threads: cores used while fitting and predicting (``None``: every core): a
            step runs on this many shards of the batch (:mod:`toolkit.nn.data_parallel`,
            else each layer splits its work), one BLAS thread each. Reruns with the same
            count are bit-identical; another count sums in another order and may draw
            other dropout masks.
    """

    def __init__(
        self,
        model: Layer,
        loss: Loss,
        optimizer: Optimizer,
        schedule: Schedule | None = None,
        *,
        epochs: int = 10,
        batch_size: int = 64,
        seed: int = 0,
        classification: bool = True,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        log_grad_norms: bool = True,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        threads: int | None = None,
    ) -> None:
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad_value(self, name, "a positive integer", value)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        model.needs_input_grad = False  # dL/d(data) is never used: skip its GEMM
        self.schedule = schedule or Constant(optimizer.lr, epochs)
        self.epochs, self.batch_size = epochs, batch_size
        self.classification = classification
        self.callbacks = list(callbacks)
        self.progress, self.log_grad_norms = progress, log_grad_norms
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise bad_value(self, "threads", "a positive integer or None", threads)
        self.threads = threads
        self.rng = np.random.default_rng(seed)
        self.augment = augment
        self.augment_rng = np.random.default_rng([seed, 1])
        self.history: dict[str, list[float]] = {"epoch": []}
        self.stop_training = False
        self.epoch = 0
        self._param_layers = [(p, layer) for p, layer in model.named_layers() if layer.params]
        self._has_val = False
        self._step: DataParallel | None = None

    def _generators(self) -> dict[str, np.random.Generator]:
        """Every random stream training draws from: shuffling, augmentation, dropout masks."""
        found = {"shuffle": self.rng, "augment": self.augment_rng}
        for path, layer in self.model.named_layers():
            if isinstance(getattr(layer, "rng", None), np.random.Generator):
                found[f"layer/{path}"] = layer.rng
        return found

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything but the model weights needed to continue training exactly:
        (arrays: optimizer slots and callback arrays, values: epoch, history, RNG states,
        callback values). The schedule is a function of the epoch."""
        arrays = {f"optim/{k}": v for k, v in self.optimizer.state_dict().items()}
        values: dict[str, Any] = {
            "epoch": self.epoch,
            "history": self.history,
            "rng": {name: g.bit_generator.state for name, g in self._generators().items()},
            "callbacks": {},
        }
        for callback in self.callbacks:
            name = type(callback).__name__
            cb_arrays, values["callbacks"][name] = callback.state_dict()
            arrays.update({f"callback/{name}/{k}": v for k, v in cb_arrays.items()})
        return arrays, values

    def load_state_dict(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next :meth:`fit` continues after ``epoch``."""
        self.optimizer.load_state_dict(_strip("optim/", arrays))
        self.epoch = int(values["epoch"])
        self.history = {k: list(v) for k, v in values["history"].items()}
        for name, generator in self._generators().items():
            generator.bit_generator.state = values["rng"][name]
        for callback in self.callbacks:
            name = type(callback).__name__
            if name in values["callbacks"]:
                callback.load_state_dict(
                    _strip(f"callback/{name}/", arrays), values["callbacks"][name]
                )

    def metric_names(self) -> list[str]:
        """Metrics logged each epoch (known once ``fit`` starts)."""
        splits = ["train", "val"] if self._has_val else ["train"]
        kinds = ["loss", "acc"] if self.classification else ["loss"]
        return [f"{s}/{k}" for s in splits for k in kinds] + ["lr"]

    def log(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr)

    def fit(self, train: Data, val: Data | None = None) -> dict[str, list[float]]:
        """Train for ``epochs`` (or until a callback sets ``stop_training``)."""
        with engine_threads(self.threads):
            return self._fit(train, val)

    def _fit(self, train: Data, val: Data | None) -> dict[str, list[float]]:
        self._has_val = val is not None
        for callback in self.callbacks:
            callback.on_fit_start(self)
        logs: dict[str, float] = {}
        for epoch in range(self.epoch + 1, self.epochs + 1):
            self.epoch = epoch
            logs = self.train_epoch(train)
            if val is not None:
                logs.update(self.evaluate(val, prefix="val"))
            self._record(epoch, logs)
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break
        for callback in self.callbacks:
            callback.on_fit_end(self, logs)
        return self.history

    def train_epoch(self, train: Data) -> dict[str, float]:
        """One pass over ``train``; returns ``train/*`` metrics, ``lr`` and gradient norms."""
        lr = self.schedule.lr_at(self.epoch - 1)
        self.optimizer.lr = lr
        step = self._data_parallel()
        step.new_epoch(self.batch_size)
        bar = self._progress_bar(len(train.y))
        started = time.perf_counter()
        with blas_threads(step.blas_threads(self.batch_size)):
            total_loss, correct, seen, steps, norms = self._steps(train, step, bar)
        bar.close()
        logs = {"train/loss": total_loss / seen, "lr": lr}
        if self.classification:
            logs["train/acc"] = correct / seen
        logs["time/epoch_s"] = time.perf_counter() - started
        if self.log_grad_norms:
            for (path, _), total in zip(self._param_layers, norms, strict=True):
                logs[f"grad_norm/{path}"] = float(total / steps)
        return logs

    @np.errstate(over="ignore", invalid="ignore")  # a NaN/inf loss raises DivergenceError
    def _steps(
        self, train: Data, step: DataParallel, bar
    ) -> tuple[float, int, int, int, np.ndarray]:
        """The epoch's optimizer steps: (summed loss x samples, correct predictions,
        samples, steps, summed gradient norms per parameter layer)."""
        optimizer = self.optimizer
        total_loss, correct, seen, steps = 0.0, 0, 0, 0
        norms = np.zeros(len(self._param_layers))
        batches = iterate_batches(
            train.x, train.y, self.batch_size, True, self.rng, dtype=self._dtype()
        )
        for xb, yb in batches:
            if self.augment is not None:
                xb = self.augment(xb, self.augment_rng)
            output, loss = step.forward_backward(xb, yb)
            if not math.isfinite(loss):
                bar.close()
                raise DivergenceError(
                    f"training diverged: loss became {loss} at epoch {self.epoch}, step "
                    f"{steps + 1} (lr={optimizer.lr:g}); lower the optimizer's lr or use a "
                    "schedule"
                )
            if self.log_grad_norms:
                norms += self._grad_norms()
            optimizer.step(parallel.run_elementwise)
            n = len(yb)
            total_loss += loss * n
            seen += n
            steps += 1
            if self.classification:
                correct += int(np.count_nonzero(output.argmax(axis=1) == yb))
            bar.update(1)
            if steps % 50 == 0:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
        return total_loss, correct, seen, steps, norms

    def _data_parallel(self) -> DataParallel:
        """The step runner of the current model and loss (kept: it holds their replicas)."""
        step = self._step
        if step is None or step.model is not self.model or step.loss is not self.loss:
            self._step = step = DataParallel(self.model, self.loss)
        return step

    def _dtype(self) -> np.dtype:
        """The model's parameter dtype (float32 without parameters): batches are cast to it."""
        for _, layer in self._param_layers:
            return next(iter(layer.params.values())).dtype
        return np.dtype(np.float32)

    def _grad_norms(self) -> np.ndarray:
        return np.array(
            [
                math.sqrt(sum(float(np.vdot(g, g)) for g in layer.grads.values()))
                for _, layer in self._param_layers
            ]
        )

    def _progress_bar(self, num_samples: int):
        from tqdm.auto import tqdm

        return tqdm(
            total=num_batches(num_samples, self.batch_size),
            desc=f"epoch {self.epoch}/{self.epochs}",
            unit="batch",
            disable=not self.progress,
            dynamic_ncols=True,
        )

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Raw model outputs for ``x`` (N, ...) in evaluation mode, batch by batch."""
        with engine_threads(self.threads):
            return forward_in_batches(self.model, x, batch_size)

    def evaluate(self, data: Data, prefix: str = "test") -> dict[str, float]:
        """``{prefix}/loss`` (and ``{prefix}/acc`` for classification) on ``data``."""
        return self.score(self.predict(data.x), data.y, prefix)

    def score(self, outputs: np.ndarray, targets: np.ndarray, prefix: str) -> dict[str, float]:
        """``{prefix}/loss`` (and ``{prefix}/acc``) of the model's ``outputs`` (N, K)
        for ``targets`` (N,) or (N, K)."""
        metrics = {f"{prefix}/loss": float(self.loss.forward(outputs, targets))}
        if self.classification:
            metrics[f"{prefix}/acc"] = accuracy(outputs, targets)
        return metrics

    def _record(self, epoch: int, logs: dict[str, float]) -> None:
        self.history["epoch"].append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
