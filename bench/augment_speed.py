"""Benchmark the augmentations on MNIST-shaped batches (N x 1 x 28 x 28 float32).

Prints, per registered augmentation at its default strength (and for a few pipelines), the
milliseconds per batch of 64 and of 256; beside them, for scale, one training step (forward,
cross-entropy, backward, Adam) of the ``mlp`` and ``cnn`` models on the same batch, since
augmenting should cost well under the step it feeds. Also ``shift`` through the general
sampler (``warp``, nearest), to show what its whole-pixel fast path saves.

Each time is the best, over ``--rounds`` rounds, of the mean over ``--calls`` calls: the
estimate least disturbed by other processes on a busy machine.

    uv run python bench/augment_speed.py [--rounds 7] [--calls 50] [--threads 1] [--no-steps]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from toolkit.data.augment import Augmenter, build_augmenter, warp
from toolkit.registry import augmentations, load_builtins, losses, models, optimizers

SHAPE = (1, 28, 28)
BATCHES = (64, 256)
PIPELINES = {
    "shift+rotate": ["shift", "rotate"],
    "affine+elastic": ["affine", "elastic"],
    "affine+noise+cutout": ["affine", "noise", "cutout"],
}


def best_ms(fn: Callable[[], object], rounds: int, calls: int) -> float:
    """Milliseconds per call of ``fn``: the best round's mean (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def augmentation_cases(rng: np.random.Generator) -> dict[str, Callable[[np.ndarray], object]]:
    """Name -> function of a batch: every registered augmentation, the pipelines, and
    shift through the general sampler."""
    cases: dict[str, Callable[[np.ndarray], object]] = {}
    for name in augmentations.names():
        augmentation = augmentations.build(name)
        cases[name] = lambda x, augmentation=augmentation: augmentation(x, rng)
    for label, names in PIPELINES.items():
        augmenter: Augmenter = build_augmenter(names)
        cases[label] = lambda x, augmenter=augmenter: augmenter(x, rng)
    cases["shift via warp"] = lambda x: shift_by_warp(x, rng)
    return cases


def shift_by_warp(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What ``shift`` would cost without its fast path: whole-pixel grids through warp."""
    n, _, h, w = x.shape
    shifts = rng.integers(-2, 3, size=(n, 2)).astype(np.float32)
    rows = np.arange(h, dtype=np.float32)[:, None] - shifts[:, 0, None, None]
    cols = np.arange(w, dtype=np.float32) - shifts[:, 1, None, None]
    rows, cols = np.broadcast_arrays(rows, cols)
    return warp(x, rows, cols, float(x.min()), "nearest")


def training_step(model_name: str, x: np.ndarray) -> Callable[[], None]:
    """One forward/backward/Adam step of the registered model ``model_name`` on ``x``."""
    model = models.build(model_name, SHAPE, 10)
    model.build(SHAPE, np.random.default_rng(0), np.dtype(np.float32))
    loss = losses.build("cross_entropy")
    optimizer = optimizers.build("adam", model, lr=1e-3)
    y = np.random.default_rng(1).integers(0, 10, len(x))

    def step() -> None:
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", type=int, help="BLAS threads (default: BLAS's own)")
    parser.add_argument("--no-steps", action="store_true", help="skip the training steps")
    args = parser.parse_args()
    load_builtins()
    if args.threads:
        threadpool_limits(args.threads, user_api="blas")

    rng = np.random.default_rng(0)
    batches = {n: rng.standard_normal((n, *SHAPE), dtype=np.float32) for n in BATCHES}
    rows: dict[str, list[float]] = {}
    for label, case in augmentation_cases(rng).items():
        rows[label] = [
            best_ms(lambda case=case, x=x: case(x), args.rounds, args.calls)
            for x in batches.values()
        ]
    if not args.no_steps:
        for model_name in ("mlp", "cnn"):
            rows[f"[{model_name} training step]"] = [
                best_ms(training_step(model_name, x), args.rounds, max(args.calls // 5, 1))
                for x in batches.values()
            ]

    threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    print(f"ms per batch of N x {'x'.join(map(str, SHAPE))} float32 (best of {args.rounds} "
          f"rounds; {threads} BLAS threads)")  # fmt: skip
    print(f"{'':<24}" + "".join(f"{f'N={n}':>10}" for n in BATCHES))
    for label, times in rows.items():
        print(f"{label:<24}" + "".join(f"{t:10.3f}" for t in times))


if __name__ == "__main__":
    main()
