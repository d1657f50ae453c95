"""Benchmark: the reference autoencoder (784-128-32-128-784, relu) on MNIST, toolkit vs
PyTorch CPU, side by side in one process.

Same data (the toolkit's normalised float32 MNIST arrays, targets = inputs), the same
initial weights (the toolkit model's, copied into its torch twin through
``toolkit.interop``), the same mini-batches (the PyTorch side draws the permutation the
Trainer draws: ``numpy.random.default_rng(seed)``, one per epoch), Adam (lr 1e-3), MSE,
batch size, epochs and thread count. The toolkit side runs its real Trainer (progress bar off,
gradient norms on, as in a normal run); the PyTorch side is a plain loop indexing tensors.
Epochs alternate between the frameworks so both see the same machine load.

Prints one JSON line per framework (test reconstruction MSE, seconds per epoch) and one
comparing them (MSE ratio toolkit / PyTorch, whether it is within 10 %, speed ratio).

    uv run python bench/autoencoder_vs_torch.py --epochs 5 --batch-size 64
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

from toolkit.data import ArrayData, load_dataset, split_dataset
from toolkit.interop.torch_state import to_state_dict, torch_module
from toolkit.models import ModelSpec, build_model
from toolkit.registry import load_plugins

SPEC = ModelSpec("autoencoder", (1, 28, 28), 784, {"hidden_sizes": [128], "latent": 32})
MSE_TOLERANCE = 0.10


class TorchRunner:
    def __init__(self, model, train, test, batch_size: int, seed: int, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = torch_module(model)
        self.model.load_state_dict(to_state_dict(model))
        self.x = torch.from_numpy(train.x.reshape(len(train.x), -1))
        self.x_test = torch.from_numpy(test.x.reshape(len(test.x), -1))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.MSELoss()
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)  # the Trainer's shuffling generator

    def epoch(self) -> float:
        started = time.perf_counter()
        order = self.torch.from_numpy(self.rng.permutation(len(self.x)))
        self.model.train()
        for start in range(0, len(order), self.batch_size):
            batch = self.x[order[start : start + self.batch_size]]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(batch), batch)
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - started

    def score(self) -> float:
        self.model.eval()
        with self.torch.no_grad():
            return float(self.loss(self.model(self.x_test), self.x_test))


def main() -> None:
    args = bench_arguments(__doc__.splitlines()[0], epochs=5)

    load_plugins()
    data = split_dataset(load_dataset("mnist"), train=1.0, val=0.0, test=0.0, seed=args.seed)
    train, test = (ArrayData(d.x, d.x.reshape(len(d.x), -1)) for d in (data.train, data.test))
    model = build_model(SPEC, seed=args.seed)
    runner_args = (train, test, args.batch_size, args.seed, args.threads)
    runners = {
        "pytorch": TorchRunner(model, *runner_args),  # copies the initial weights first
        "toolkit": ToolkitRunner(model, "mse", "test/loss", *runner_args),
    }
    seconds_per_epoch = median_epoch_seconds(runners, args.epochs)

    results = {}
    for name, runner in runners.items():
        results[name] = {
            "framework": name,
            "model": "autoencoder 784-128-32-128-784 (relu), mse, adam 1e-3",
            "batch_size": args.batch_size,
            "threads": args.threads,
            "epochs": args.epochs,
            "seconds_per_epoch": round(seconds_per_epoch[name], 3),
            "test_mse": round(runner.score(), 5),
        }
        print(json.dumps(results[name]))
    toolkit, pytorch = results["toolkit"], results["pytorch"]
    mse_ratio = toolkit["test_mse"] / pytorch["test_mse"]
    print(
        json.dumps(
            {
                "mse_ratio_toolkit_over_pytorch": round(mse_ratio, 4),
                "mse_within_10pct": abs(mse_ratio - 1.0) <= MSE_TOLERANCE,
                "speed_ratio_toolkit_over_pytorch": round(
                    pytorch["seconds_per_epoch"] / toolkit["seconds_per_epoch"], 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
