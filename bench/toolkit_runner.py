"""What the toolkit-vs-PyTorch benchmarks share: their options, the toolkit side (its real
Trainer, one timed epoch at a time) and the loop that alternates epochs between frameworks.

The Trainer runs as in a normal run: shuffled batches, per-layer gradient norms, Adam
(lr 1e-3), and its progress bar (drawn into a null stream, so its cost is paid but the
bench output stays readable) unless ``progress=False``. ``threads`` is the Trainer's
(``None``: every core) and applies while an epoch runs. Epochs are driven from outside so
that the benchmarks can alternate them with the PyTorch side.

Run with an older checkout first on ``PYTHONPATH`` to time its engine: without
``engine_threads`` the runner limits BLAS to ``threads`` as the Trainer did then.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path
from typing import Protocol

from toolkit.data import ArrayData
from toolkit.nn.layer import Layer
from toolkit.registry import losses, optimizers
from toolkit.train import Trainer

try:
    from toolkit.train.trainer import engine_threads
except ImportError:  # an engine from before toolkit.nn.parallel: BLAS threads only
    from toolkit.train.trainer import blas_threads as engine_threads


def recipe(name: str) -> dict:
    """The ``+model=<name>`` recipe (``toolkit/conf/model/<name>.yaml``) as a dict: its
    ``model:`` options and ``trainer:`` settings (empty dicts where it sets none)."""
    import yaml

    path = Path(__file__).resolve().parents[1] / "toolkit" / "conf" / "model" / f"{name}.yaml"
    settings = yaml.safe_load(path.read_text())
    return {key: dict(settings.get(key) or {}) for key in ("model", "trainer")}


class ToolkitRunner:
    """Trains ``model`` on ``train`` with ``loss``; :meth:`score` is ``metric`` on ``test``
    (the PyTorch runners have the same ``epoch()`` and ``score()``)."""

    def __init__(
        self,
        model: Layer,
        loss: str,
        metric: str,
        train: ArrayData,
        test: ArrayData,
        batch_size: int,
        seed: int,
        threads: int | None,
        progress: bool = True,
    ) -> None:
        self.train, self.test, self.metric, self.threads = train, test, metric, threads
        self.trainer = Trainer(
            model,
            losses.build(loss),
            optimizers.build("adam", model, lr=1e-3),
            epochs=10**6,
            batch_size=batch_size,
            seed=seed,
            classification=loss == "cross_entropy",
            progress=progress,
        )

    def epoch(self) -> float:
        """Train one epoch; returns its wall time in seconds."""
        self.trainer.epoch += 1
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
            started = time.perf_counter()
            with engine_threads(self.threads):
                self.trainer.train_epoch(self.train)
            return time.perf_counter() - started

    def score(self) -> float:
        """``metric`` (``test/acc``, ``test/loss``) on the test data."""
        return self.trainer.evaluate(self.test)[self.metric]


def bench_arguments(description: str, epochs: int) -> argparse.Namespace:
    """``--epochs``, ``--batch-size``, ``--seed`` and ``--threads`` from the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS threads (toolkit) = intra-op threads (torch)"
    )
    return parser.parse_args()


class Runner(Protocol):
    def epoch(self) -> float: ...


def epoch_seconds(
    runners: dict[str, Runner], epochs: int, pause_s: float = 0.5
) -> dict[str, list[tuple[float, float]]]:
    """Train every runner ``epochs`` epochs, alternating between them epoch by epoch so that
    all see the same machine load, with ``pause_s`` between epochs (spinning OpenMP/BLAS
    workers of the previous one go idle); returns each one's (wall, CPU) seconds per
    epoch. CPU seconds are the process's (all its threads'): on a machine that other jobs
    keep busy they estimate what one thread's epoch costs far more steadily than the wall
    clock, which counts the time the scheduler gave to others."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for _ in range(epochs):
        for name, runner in runners.items():
            time.sleep(pause_s)
            cpu = time.process_time()
            wall = runner.epoch()
            times[name].append((wall, time.process_time() - cpu))
    return times


def median_epoch_seconds(runners: dict[str, Runner], epochs: int) -> dict[str, float]:
    """:func:`epoch_seconds` summarised as each runner's median wall seconds per epoch."""
    times = epoch_seconds(runners, epochs)
    return {name: statistics.median(w for w, _ in seconds) for name, seconds in times.items()}
