"""Benchmark: the reference MLP (784-128-64-10, relu/tanh) on MNIST, toolkit vs PyTorch CPU.

Same data (the toolkit's normalised float32 MNIST arrays), batch size, He-normal weights with
zero biases, Adam (lr 1e-3), shuffled mini-batches and thread count. The toolkit side runs
its real Trainer (progress bar off, per-layer gradient norms on, as in a normal run); the
PyTorch side is a plain loop indexing tensors (no DataLoader overhead). Epochs alternate
between the frameworks so both see the same machine load.

Prints one JSON line per framework (samples/s, seconds per epoch, test accuracy) and one
with the throughput ratio toolkit / PyTorch.

    uv run python bench/mlp_vs_torch.py --epochs 3 --batch-size 64
"""

from __future__ import annotations

import json
import time

import numpy as np
from toolkit_runner import (  # bench/ is on sys.path
    ToolkitRunner,
    bench_arguments,
    median_epoch_seconds,
)

from toolkit.data import load_dataset, split_dataset
from toolkit.models import ModelSpec, build_model
from toolkit.registry import load_plugins

HIDDEN = [128, 64]
ACTIVATIONS = ["relu", "tanh"]
SPEC = ModelSpec("mlp", (1, 28, 28), 10, {"hidden_sizes": HIDDEN, "activation": ACTIVATIONS})


class TorchRunner:
    def __init__(self, data, batch_size: int, seed: int, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.x = torch.from_numpy(data.train.x.reshape(len(data.train.x), -1))
        self.y = torch.from_numpy(data.train.y.astype(np.int64))
        self.x_test = torch.from_numpy(data.test.x.reshape(len(data.test.x), -1))
        self.y_test = torch.from_numpy(data.test.y.astype(np.int64))
        sizes = [784, *HIDDEN, 10]
        layers: list = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            linear = torch.nn.Linear(fan_in, fan_out)
            torch.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            torch.nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(ACTIVATIONS):
                layers.append(torch.nn.ReLU() if ACTIVATIONS[i] == "relu" else torch.nn.Tanh())
        self.model = torch.nn.Sequential(*layers)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> float:
        torch = self.torch
        started = time.perf_counter()
        order = torch.randperm(len(self.x), generator=self.generator)
        self.model.train()
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.x[index]), self.y[index])
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - started

    def score(self) -> float:
        self.model.eval()
        with self.torch.no_grad():
            predictions = self.model(self.x_test).argmax(dim=1)
        return float((predictions == self.y_test).float().mean())


def main() -> None:
    args = bench_arguments(__doc__.splitlines()[0], epochs=3)

    load_plugins()
    data = split_dataset(load_dataset("mnist"), train=1.0, val=0.0, test=0.0, seed=args.seed)
    threads = args.threads
    runners = {
        "toolkit": ToolkitRunner(
            build_model(SPEC, seed=args.seed),
            "cross_entropy",
            "test/acc",
            data.train,
            data.test,
            args.batch_size,
            args.seed,
            threads,
        ),
        "pytorch": TorchRunner(data, args.batch_size, args.seed, threads),
    }
    seconds_per_epoch = median_epoch_seconds(runners, args.epochs)

    results = {}
    for name, runner in runners.items():
        seconds = seconds_per_epoch[name]
        results[name] = {
            "framework": name,
            "model": "mlp 784-128(relu)-64(tanh)-10",
            "batch_size": args.batch_size,
            "threads": threads,
            "epochs": args.epochs,
            "seconds_per_epoch": round(seconds, 3),
            "samples_per_s": round(len(data.train.y) / seconds, 1),
            "test_acc": round(runner.score(), 4),
        }
        print(json.dumps(results[name]))
    ratio = results["toolkit"]["samples_per_s"] / results["pytorch"]["samples_per_s"]
    print(json.dumps({"throughput_ratio_toolkit_over_pytorch": round(ratio, 3)}))


if __name__ == "__main__":
    main()
