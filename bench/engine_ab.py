"""Two engines side by side in one process: the toolkit of this checkout against an older
one, on the LeNet-style ``cnn`` (bench defaults, or ``--recipe``: the +model=cnn network),
one thread, float32, batch 64. Per unit (as ``Sequential`` runs it) forward/backward
milliseconds and one training step (forward, cross-entropy, backward, Adam), alternating
old and new every round so that machine noise hits both; best and median over rounds, by
the wall clock and by the process's CPU time (steadier while other jobs preempt it).

The older engine is imported as the package ``toolkit_old``: export it and rename it::

    git archive <commit> toolkit | tar -x -C /tmp/old && mv /tmp/old/toolkit /tmp/old/toolkit_old
    grep -rl toolkit /tmp/old/toolkit_old --include=*.py | xargs sed -i -E \\
        's/(from|import) toolkit([. ])/\\1 toolkit_old\\2/g; s/"toolkit\\./"toolkit_old./g'
    PYTHONPATH=/tmp/old uv run python bench/engine_ab.py [--recipe] [--rounds 9]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time

import numpy as np
from cnn_layers import (
    CLASSES,
    INPUT_SHAPE,
    layer_flops,
    step_flops,
    unit_forward,
    unit_inputs_and_grads,
    units,
)
from toolkit_runner import recipe
from torch_twins import gemm_gflops


def engine(package: str):
    """(build model, make step, engine_threads) of the toolkit importable as ``package``."""
    registry = importlib.import_module(f"{package}.registry")
    registry.load_builtins()
    threads = importlib.import_module(f"{package}.train.trainer").engine_threads

    def build(**options):
        model = registry.models.build("cnn", INPUT_SHAPE, CLASSES, **options)
        model.build(INPUT_SHAPE, np.random.default_rng(0), np.dtype(np.float32))
        model.needs_input_grad = False
        return model

    def stepper(model, x, y):
        loss = registry.losses.get("cross_entropy")()
        optimizer = registry.optimizers.get("adam")(model, lr=1e-3)

        def step():
            loss.forward(model.forward(x, training=True), y)
            model.backward(loss.backward())
            optimizer.step()

        return step

    return build, stepper, threads


def unit_times(model, x, repeats):
    """[(name, layer, fwd s, bwd s)] best of ``repeats`` per unit."""
    plan = units(model)
    inputs, grads = unit_inputs_and_grads(plan, x)
    found = []
    for (name, layers, absorbed), xin, dy in zip(plan, inputs, grads, strict=True):
        last = layers[-1]

        def fwd(layers=layers, absorbed=absorbed, xin=xin):
            return unit_forward(layers, absorbed, xin)

        f = b = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fwd()
            f = min(f, time.perf_counter() - start)
            start = time.perf_counter()
            last.backward(dy)
            b = min(b, time.perf_counter() - start)
        found.append((name, last, f, b))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", action="store_true")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=10, help="timings per unit per round")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    options = recipe("cnn")["model"] if args.recipe else {}
    engines = {"old": engine("toolkit_old"), "new": engine("toolkit")}
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *INPUT_SHAPE), dtype=np.float32)
    y = rng.integers(0, CLASSES, args.batch)
    gemm = gemm_gflops()
    print(f"cnn {options or '(bench defaults)'}, batch {args.batch}, 1 thread; GEMM "
          f"{gemm:.1f} GFLOP/s (512^3); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    models = {name: build(**options) for name, (build, _, _) in engines.items()}
    flops = step_flops(models["new"], args.batch)
    steps = {name: e[1](models[name], x, y) for name, e in engines.items()}
    layer_rounds = {name: [] for name in engines}
    step_rounds = {name: [] for name in engines}
    cpu_rounds = {name: [] for name in engines}
    for round_ in range(args.rounds + 1):
        for name, (_, _, threads) in engines.items():
            with threads(1):
                times = unit_times(models[name], x, args.repeats)
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.steps):
                    steps[name]()
                seconds = (time.perf_counter() - start) / args.steps
                cpu = (time.process_time() - cpu) / args.steps
            if round_:  # round 0 warms up
                layer_rounds[name].append(times)
                step_rounds[name].append(seconds)
                cpu_rounds[name].append(cpu)
    print(f"{'unit':<32}{'old fwd':>9}{'new fwd':>9}{'old bwd':>9}{'new bwd':>9}  (ms, best)")
    for i, (unit, layer, *_) in enumerate(layer_rounds["new"][0]):
        best = {n: [min(r[i][k] for r in layer_rounds[n]) * 1e3 for k in (2, 3)] for n in engines}
        ff, fb = layer_flops(layer, args.batch)
        rate = (f"  new {ff / best['new'][0] * 1e-6:.0f} / {fb / best['new'][1] * 1e-6:.0f} GFLOP/s"
                if ff else "")  # fmt: skip
        print(f"{unit:<32}{best['old'][0]:9.3f}{best['new'][0]:9.3f}"
              f"{best['old'][1]:9.3f}{best['new'][1]:9.3f}{rate}")  # fmt: skip
    for name in engines:
        for clock, rounds in (("wall", step_rounds[name]), ("cpu", cpu_rounds[name])):
            best, median = min(rounds), statistics.median(rounds)
            print(f"step {name} ({clock}): best {best * 1e3:.2f} ms, median {median * 1e3:.2f} "
                  f"ms; {flops / 1e6:.0f} MFLOP at {flops / best / 1e9:.1f} GFLOP/s (best) = "
                  f"{flops / best / 1e9 / gemm:.0%} of the GEMM, median "
                  f"{flops / median / 1e9 / gemm:.0%}")  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
