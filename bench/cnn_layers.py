"""Benchmark the LeNet-style ``cnn`` (MNIST 1x28x28, float32): toolkit vs PyTorch CPU.

(a) per-layer forward/backward time of the toolkit model, so the slow part is visible;
(b) one training step (forward, softmax cross-entropy, backward, Adam) side by side with
    the same network in ``torch.nn`` on the same number of threads, alternating the two
    in rounds so that machine noise hits both, and printing samples/s and the ratio.

Usage::

    uv run python bench/cnn_layers.py [--batch 64] [--steps 40] [--rounds 5] [--threads N]

``--threads`` defaults to the thread count of NumPy's BLAS; torch gets the same.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from toolkit.nn.layer import Sequential
from toolkit.registry import load_builtins, losses, models, optimizers

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10


def blas_threads(requested: int | None) -> int:
    """Set (if requested) and return the number of threads NumPy's BLAS uses."""
    from threadpoolctl import threadpool_info, threadpool_limits

    if requested:
        threadpool_limits(requested, user_api="blas")
    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def toolkit_model(hparams: dict) -> Sequential:
    model = models.build("cnn", INPUT_SHAPE, CLASSES, **hparams)
    model.build(INPUT_SHAPE, np.random.default_rng(0), np.dtype(np.float32))
    model.needs_input_grad = False  # as the Trainer sets it (torch: data without grad)
    return model


def torch_model(model: Sequential):
    """The same network in torch.nn, with the toolkit model's initial weights."""
    import torch

    modules = []
    for layer in model.layers:
        if layer.kind == "conv2d":
            conv = torch.nn.Conv2d(layer.input_shape[0], layer.out_channels,
                                   layer.kernel_size, layer.stride, layer.pad)  # fmt: skip
            conv.weight.data = torch.from_numpy(layer.params["W"].copy())
            conv.bias.data = torch.from_numpy(layer.params["b"].copy())
            modules.append(conv)
        elif layer.kind == "dense":
            linear = torch.nn.Linear(*layer.params["W"].shape)
            linear.weight.data = torch.from_numpy(layer.params["W"].T.copy())
            linear.bias.data = torch.from_numpy(layer.params["b"].copy())
            modules.append(linear)
        else:
            modules.append({
                "relu": torch.nn.ReLU(),
                "maxpool2d": torch.nn.MaxPool2d(2),
                "avgpool2d": torch.nn.AvgPool2d(2),
                "flatten": torch.nn.Flatten(),
            }[layer.kind])  # fmt: skip
    return torch.nn.Sequential(*modules)


def timed(fn: Callable[[], object], repeats: int, before: Callable[[], object] = lambda: None):
    """Fastest seconds of ``fn()`` over ``repeats`` calls, each after an untimed
    ``before()`` (and all after a warm-up): the minimum is the estimate least disturbed by
    other processes on a busy machine."""
    before()
    fn()
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def layer_breakdown(model: Sequential, x: np.ndarray, repeats: int) -> None:
    """Print each layer's forward and backward milliseconds on batch ``x``."""
    inputs, h = [], x
    for layer in model.layers:
        inputs.append(h)
        h = layer.forward(h, training=True)
    grads, g = [], np.ones_like(h) / h.size
    for layer in reversed(model.layers):
        grads.append(g)
        g = layer.backward(g)
    grads.reverse()

    print(f"\n(a) per-layer time, batch {x.shape[0]} (best of {repeats}), ms")
    print(f"{'layer':<14}{'output':<16}{'forward':>9}{'backward':>10}")
    total_f = total_b = 0.0
    for i, (layer, xin, dy) in enumerate(zip(model.layers, inputs, grads, strict=True)):
        forward = timed(lambda layer=layer, xin=xin: layer.forward(xin, training=True), repeats)
        backward = timed(
            lambda layer=layer, dy=dy: layer.backward(dy),
            repeats,
            before=lambda layer=layer, xin=xin: layer.forward(xin, training=True),
        )
        total_f, total_b = total_f + forward, total_b + backward
        name = f"{i}.{layer.kind}"
        print(f"{name:<14}{str(layer.output_shape):<16}{forward * 1e3:9.3f}{backward * 1e3:10.3f}")
    print(f"{'total':<30}{total_f * 1e3:9.3f}{total_b * 1e3:10.3f}")


def toolkit_stepper(model: Sequential, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    loss = losses.get("cross_entropy")()
    optimizer = optimizers.get("adam")(model, lr=1e-3)

    def step() -> None:
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
        optimizer.step()

    return step


def torch_stepper(net, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(xt), yt).backward()
        optimizer.step()

    return step


def side_by_side(steppers: dict[str, Callable[[], None]], batch: int, steps: int, rounds: int):
    """Alternate ``steps`` training steps of each contender for ``rounds`` rounds; return
    the samples/s of every round per contender."""
    for step in steppers.values():
        for _ in range(5):
            step()
    rates: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rates[name].append(batch * steps / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30, help="timings per layer")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    load_builtins()
    threads = blas_threads(args.threads)
    torch.set_num_threads(threads)
    print(f"threads: NumPy BLAS {threads}, torch {torch.get_num_threads()}; "
          f"numpy {np.__version__}, torch {torch.__version__}")  # fmt: skip

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *INPUT_SHAPE), dtype=np.float32)
    y = rng.integers(0, CLASSES, args.batch)
    model = toolkit_model({})
    net = torch_model(model)
    layer_breakdown(toolkit_model({}), x, args.repeats)

    rates = side_by_side(
        {"toolkit": toolkit_stepper(model, x, y), "torch": torch_stepper(net, x, y)},
        args.batch, args.steps, args.rounds,
    )  # fmt: skip
    print(f"\n(b) training step (forward, cross-entropy, backward, Adam), batch {args.batch}")
    for name, values in rates.items():
        print(f"{name:<8} samples/s per round: " + " ".join(f"{v:7.0f}" for v in values))
    ratios = [a / b for a, b in zip(rates["toolkit"], rates["torch"], strict=True)]
    print("toolkit/torch per round: " + " ".join(f"{r:5.2f}" for r in ratios))
    best = {name: max(values) for name, values in rates.items()}
    print(
        f"median: toolkit {statistics.median(rates['toolkit']):.0f}, "
        f"torch {statistics.median(rates['torch']):.0f} samples/s, "
        f"ratio {statistics.median(ratios):.2f}; best-round ratio "
        f"{best['toolkit'] / best['torch']:.2f}"
    )


if __name__ == "__main__":
    main()
