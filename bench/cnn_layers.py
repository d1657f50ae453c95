"""Benchmark the LeNet-style ``cnn`` (MNIST 1x28x28, float32): where its step's time goes,
and how it compares with PyTorch CPU.

(0) the yardstick: single-core float32 GEMM GFLOP/s (512^3, and the second conv's
    forward shape) measured on this machine at the start;
(a) per-layer forward/backward time of the toolkit model as ``Sequential`` runs it (a
    ReLU, or a batch norm and a ReLU, before a 2x2 max-pool run inside the pool), with
    GFLOP/s for the GEMM layers, on 1 and on 2 threads;
(b) one training step (forward, cross-entropy, backward, Adam) as the Trainer runs it
    (its data-parallel step and flat Adam update) side by side with the same network in
    ``torch.nn`` (the idiomatic loop: tensors made once, ``zero_grad(set_to_none=True)``),
    at equal threads (1 and 2), alternating rounds so that machine noise hits both;
    samples/s, the ratio, and the step's GFLOP/s against the GEMM yardstick.

Usage::

    uv run python bench/cnn_layers.py [--batch 64] [--steps 30] [--rounds 7] [--threads 1 2]
    uv run python bench/cnn_layers.py --recipe   # the +model=cnn recipe's network instead

``--recipe`` builds the network of ``toolkit/conf/model/cnn.yaml`` (channels 16/32, batch
norm, hidden 256, dropout 0.15) instead of the ``cnn`` defaults (16/32, hidden 128).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from toolkit_runner import recipe  # bench/ is on sys.path
from torch_twins import gemm_gflops, torch_twin

from toolkit.nn import parallel
from toolkit.nn.data_parallel import DataParallel
from toolkit.nn.layer import Layer, Sequential
from toolkit.registry import load_builtins, losses, models, optimizers
from toolkit.train.trainer import engine_threads

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10
PAUSE_S = 0.3  # between contenders: lets spinning OpenMP/BLAS workers go idle


def toolkit_model(name: str = "cnn", **options) -> Sequential:
    model = models.build(name, INPUT_SHAPE, CLASSES, **options)
    model.build(INPUT_SHAPE, np.random.default_rng(0), np.dtype(np.float32))
    model.needs_input_grad = False  # as the Trainer sets it (torch: data without grad)
    return model


def layer_flops(layer: Layer, batch: int) -> tuple[float, float]:
    """(forward, backward) multiply-add FLOPs of a conv or dense layer (0 for others);
    backward counts dL/dx only where the layer computes it."""
    if layer.kind == "conv2d":
        out = int(np.prod(layer.output_shape))
        forward = 2.0 * batch * out * layer.input_shape[0] * layer.kernel_size**2
    elif layer.kind == "dense":
        forward = 2.0 * batch * layer.input_shape[0] * layer.units
    else:
        return 0.0, 0.0
    return forward, forward * (2 if layer.needs_input_grad else 1)


def step_flops(model: Sequential, batch: int) -> float:
    return sum(sum(layer_flops(layer, batch)) for _, layer in model.named_layers())


def timed(fn: Callable[[], object], repeats: int, before: Callable[[], object] = lambda: None):
    """Fastest seconds of ``fn()`` over ``repeats`` calls, each after an untimed
    ``before()``: the minimum is the estimate least disturbed by other processes."""
    before()
    fn()
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def units(model: Sequential) -> list[tuple[str, list[Layer], tuple[Layer, ...]]]:
    """(name, layers, absorbed) per unit of work as ``Sequential.forward`` runs them:
    ``absorbed`` are the layers the unit's last layer runs itself (a ReLU, or a batch norm
    and a ReLU, before a 2x2 max-pool); an engine without ``fusions()`` absorbs ReLUs only."""
    if hasattr(model, "fusions"):
        fusions = model.fusions()
    else:  # an older engine (bench/engine_ab.py)
        fusions = {i + 1: (model.layers[i],) for i in model._absorbed()}
    absorbed = {j for i, run in fusions.items() for j in range(i - len(run), i)}
    found = []
    for i, layer in enumerate(model.layers):
        if i in absorbed:
            continue
        run = fusions.get(i, ())
        kinds = "+".join(part.kind for part in (*run, layer))
        found.append((f"{i - len(run)}-{i}.{kinds}" if run else f"{i}.{kinds}", [*run, layer], run))
    return found


def unit_forward(layers: list[Layer], absorbed: tuple[Layer, ...], x: np.ndarray) -> np.ndarray:
    """A unit of :func:`units` in training mode, as ``Sequential.forward`` runs it."""
    last = layers[-1]
    if not absorbed:
        return last.forward(x, True)
    if hasattr(last, "forward_fused"):
        return last.forward_fused(x, absorbed, True)
    return last.forward_relu(x, True)  # an older engine


def unit_inputs_and_grads(plan, x: np.ndarray) -> tuple[list, list]:
    """Each unit's input on batch ``x`` and the gradient of its output (one training-mode
    forward and backward through the units of :func:`units`)."""
    inputs, h = [], x
    for _, layers, absorbed in plan:
        inputs.append(h)
        h = unit_forward(layers, absorbed, h)
    grads, g = [], np.ones_like(h) / h.size
    for _, layers, _ in reversed(plan):
        grads.append(g)
        g = layers[-1].backward(g)
    grads.reverse()
    return inputs, grads


def layer_breakdown(model: Sequential, x: np.ndarray, repeats: int, gemm: float) -> None:
    """Print each unit's forward and backward milliseconds (and GFLOP/s) on batch ``x``."""
    plan = units(model)
    inputs, grads = unit_inputs_and_grads(plan, x)
    print(f"{'unit':<32}{'output':<16}{'fwd ms':>8}{'bwd ms':>8}{'fwd GF/s':>10}{'bwd GF/s':>10}")
    total_f = total_b = 0.0
    for (name, layers, absorbed), xin, dy in zip(plan, inputs, grads, strict=True):
        last = layers[-1]

        def run(layers=layers, absorbed=absorbed, xin=xin):
            return unit_forward(layers, absorbed, xin)

        forward = timed(run, repeats)
        backward = timed(lambda last=last, dy=dy: last.backward(dy), repeats, before=run)
        total_f, total_b = total_f + forward, total_b + backward
        flops_f, flops_b = layer_flops(last, len(x))
        rate = f"{flops_f / forward / 1e9:10.1f}{flops_b / backward / 1e9:10.1f}" if flops_f else ""
        shape = str(last.output_shape)
        print(f"{name:<32}{shape:<16}{forward * 1e3:8.3f}{backward * 1e3:8.3f}{rate}")
    flops = step_flops(model, len(x))
    print(
        f"{'total':<48}{total_f * 1e3:8.3f}{total_b * 1e3:8.3f}"
        f"  ({flops / (total_f + total_b) / 1e9:.1f} GFLOP/s over the layers = "
        f"{flops / (total_f + total_b) / 1e9 / gemm:.0%} of the GEMM yardstick)"
    )


def toolkit_stepper(model: Sequential, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    """The Trainer's step: forward, loss and backward through its ``DataParallel`` (the
    batch split over the engine's threads where the model allows it), then Adam over the
    flat parameters (``optimizer.step(parallel.run_elementwise)``)."""
    step = DataParallel(model, losses.get("cross_entropy")())
    optimizer = optimizers.get("adam")(model, lr=1e-3)
    prepared_for: list[int] = []  # the thread count the replicas were made for

    def run() -> None:
        if prepared_for != [parallel.threads()]:
            step.new_epoch(len(x))
            prepared_for[:] = [parallel.threads()]
        step.forward_backward(x, y)
        optimizer.step(parallel.run_elementwise)

    return run


def torch_stepper(net, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    """The idiomatic PyTorch step on tensors made once."""
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(xt), yt).backward()
        optimizer.step()

    return step


def side_by_side(
    steppers: dict[str, Callable[[], None]],
    setup: dict[str, Callable[[], object]],
    batch: int,
    steps: int,
    rounds: int,
) -> dict[str, list[float]]:
    """Alternate ``steps`` training steps of each contender (after its ``setup()``) for
    ``rounds`` rounds; return the samples/s of every round per contender, by the wall
    clock and per CPU-second of the process (steadier on a machine others keep busy)."""
    rates: dict[str, list[float]] = {name: [] for name in steppers}
    cpu_rates: dict[str, list[float]] = {name: [] for name in steppers}
    for round_ in range(rounds + 1):  # round 0 warms up
        for name, step in steppers.items():
            with setup[name]():
                time.sleep(PAUSE_S)
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(steps):
                    step()
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            if round_:
                rates[name].append(batch * steps / seconds)
                cpu_rates[name].append(batch * steps / cpu)
    return rates, cpu_rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=30, help="timings per layer")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-layers", action="store_true")
    parser.add_argument("--recipe", action="store_true", help="the +model=cnn recipe's network")
    parser.add_argument(
        "--torch-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE for PyTorch"
    )
    args = parser.parse_args()
    if args.torch_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch starts its OpenMP pool

    import contextlib

    import torch

    load_builtins()
    default_threads = torch.get_num_threads()
    gemm = gemm_gflops()
    conv_gemm = gemm_gflops(32, 145, 12544)
    print(f"numpy {np.__version__}, torch {torch.__version__} (default threads "
          f"{default_threads}, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}); "
          f"batch {args.batch}, float32; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"(0) single-core float32 GEMM: {gemm:.1f} GFLOP/s (512^3), "
          f"{conv_gemm:.1f} GFLOP/s (32x145 @ 145x12544, conv 2 forward)")  # fmt: skip

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *INPUT_SHAPE), dtype=np.float32)
    y = rng.integers(0, CLASSES, args.batch)
    options = recipe("cnn")["model"] if args.recipe else {}
    print(f"model: cnn {options or '(defaults)'}")
    model = toolkit_model(**options)
    flops = step_flops(model, args.batch)
    if not args.skip_layers:
        for threads in args.threads:
            print(f"\n(a) per-unit time, {threads} thread(s), best of {args.repeats}")
            with engine_threads(threads):
                layer_breakdown(toolkit_model(**options), x, args.repeats, gemm)

    @contextlib.contextmanager
    def torch_threads(count):
        torch.set_num_threads(count)
        yield

    for threads in args.threads:
        steppers = {
            "toolkit": toolkit_stepper(model, x, y),
            "torch": torch_stepper(torch_twin(model), x, y),
        }
        setup = {"toolkit": lambda t=threads: engine_threads(t),
                 "torch": lambda t=threads: torch_threads(t)}  # fmt: skip
        rates, cpu_rates = side_by_side(steppers, setup, args.batch, args.steps, args.rounds)
        print(f"\n(b) training step, {threads} thread(s) each, {args.rounds} rounds of "
              f"{args.steps} steps")  # fmt: skip
        for name, values in rates.items():
            print(f"{name:<8} samples/s per round: " + " ".join(f"{v:7.0f}" for v in values))
        ratios = [a / b for a, b in zip(rates["toolkit"], rates["torch"], strict=True)]
        print("toolkit/torch per round: " + " ".join(f"{r:5.2f}" for r in ratios))
        best = max(rates["toolkit"])
        step_gflops = flops * best / args.batch / 1e9
        print(
            f"median: toolkit {statistics.median(rates['toolkit']):.0f}, torch "
            f"{statistics.median(rates['torch']):.0f} samples/s, ratio "
            f"{statistics.median(ratios):.2f}; toolkit step {flops / 1e6:.0f} MFLOP at "
            f"{step_gflops:.1f} GFLOP/s (best round) = {step_gflops / gemm:.0%} of the "
            f"single-core GEMM"
        )
        cpu_best = max(cpu_rates["toolkit"])
        print(
            f"per CPU-second: toolkit {statistics.median(cpu_rates['toolkit']):.0f}, torch "
            f"{statistics.median(cpu_rates['torch']):.0f} samples/s, ratio "
            f"{statistics.median(cpu_rates['toolkit']) / statistics.median(cpu_rates['torch']):.2f}"
            f"; toolkit step {flops * cpu_best / args.batch / 1e9:.1f} GFLOP per CPU-second "
            f"(best round) = {flops * cpu_best / args.batch / 1e9 / gemm:.0%} of the GEMM"
        )
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
