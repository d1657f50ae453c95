"""Whole training epochs on MNIST, toolkit vs PyTorch CPU, side by side in one process:
the MLP (784-128-64-10), the LeNet-style CNN, the autoencoder and the ResNet.

The toolkit side is its real Trainer (shuffled batches, per-layer gradient norms, progress
bar, Adam lr 1e-3); the PyTorch side is the loop a PyTorch user writes: tensors made once
with ``torch.from_numpy``, a shuffled index per epoch, ``zero_grad(set_to_none=True)``,
the same network (its twin from ``bench/torch_twins.py``), batch size and optimizer, with
none of the toolkit's logging. Each mode alternates epochs of the two (after a pause that
lets spinning worker threads go idle; ``--torch-passive`` makes PyTorch's idle OpenMP
workers sleep instead, which matters on a machine that other jobs keep busy):

* ``1``, ``2``: equal threads (toolkit ``threads=N``; ``torch.set_num_threads(N)``);
* ``default``: both on their defaults (toolkit ``threads=None``: every core; PyTorch's own
  thread count, untouched).

Prints one JSON line per model and mode: samples/s (median epoch, wall clock) of each side
and the ratio toolkit / PyTorch, the ratio of each side's best epoch (machine noise only
ever adds time, so the best epochs are the steadier estimate on a VM whose speed swings),
and the median ratio per CPU-second of the process (it counts spinning workers too).

    uv run python bench/epochs_vs_torch.py --models mlp cnn autoencoder resnet \\
        --modes 1 2 default --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from toolkit_runner import ToolkitRunner, epoch_seconds, recipe  # bench/ is on sys.path
from torch_twins import torch_twin

from toolkit.data import ArrayData, load_dataset, split_dataset
from toolkit.models import ModelSpec, build_model
from toolkit.registry import load_plugins

MNIST = (1, 28, 28)
CNN_RECIPE = recipe("cnn")  # what `python -m toolkit +model=cnn optim=adam` trains
SPECS = {
    "mlp": ModelSpec("mlp", MNIST, 10, {"hidden_sizes": [128, 64], "activation": ["relu", "tanh"]}),
    "cnn": ModelSpec("cnn", MNIST, 10, {}),
    "autoencoder": ModelSpec("autoencoder", MNIST, 784, {"hidden_sizes": [128], "latent": 32}),
    "resnet": ModelSpec("resnet", MNIST, 10, {}),
    # the recipe's network and batch size (its shift augmentation, schedule and epochs left
    # out: the same work on both sides)
    "cnn_recipe": ModelSpec("cnn", MNIST, 10, CNN_RECIPE["model"]),
}
DEFAULT_SAMPLES = {"mlp": 60000, "cnn": 60000, "autoencoder": 60000, "resnet": 6000,
                   "cnn_recipe": 60000}  # fmt: skip
DEFAULT_BATCH = {"cnn_recipe": CNN_RECIPE["trainer"]["batch_size"]}  # others: 64


class TorchRunner:
    """The idiomatic PyTorch training loop over ``train`` on ``threads`` threads
    (``None``: PyTorch's default, recorded before anything changed it)."""

    default_threads: int | None = None

    def __init__(self, model, train: ArrayData, mse: bool, batch_size: int, seed: int,
                 threads: int | None) -> None:  # fmt: skip
        import torch

        if TorchRunner.default_threads is None:
            TorchRunner.default_threads = torch.get_num_threads()
        self.torch, self.threads = torch, threads or TorchRunner.default_threads
        torch.manual_seed(seed)
        self.net = torch_twin(model)
        self.x = torch.from_numpy(train.x)
        self.y = None if mse else torch.from_numpy(train.y.astype(np.int64))
        self.loss = torch.nn.MSELoss() if mse else torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> float:
        torch = self.torch
        torch.set_num_threads(self.threads)
        started = time.perf_counter()
        self.net.train()
        order = torch.randperm(len(self.x), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            xb = self.x[index]
            target = xb.flatten(1) if self.y is None else self.y[index]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.net(xb), target)
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - started


def bench(name: str, mode: str, data, epochs: int, batch_size: int, seed: int) -> dict:
    threads = None if mode == "default" else int(mode)
    spec = SPECS[name]
    mse = name == "autoencoder"
    train = ArrayData(data.x, data.x.reshape(len(data.x), -1)) if mse else data
    model = build_model(spec, seed=seed)
    runners = {
        "pytorch": TorchRunner(model, train, mse, batch_size, seed, threads),  # weights first
        "toolkit": ToolkitRunner(
            model,
            "mse" if mse else "cross_entropy",
            "test/loss" if mse else "test/acc",
            train,
            train,
            batch_size,
            seed,
            threads,
        ),  # fmt: skip
    }
    times = epoch_seconds(runners, epochs)
    rates = {k: len(train.x) / statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu_rates = {k: len(train.x) / statistics.median(c for _, c in v) for k, v in times.items()}
    best = {k: len(train.x) / min(w for w, _ in v) for k, v in times.items()}
    return {
        "model": name,
        "mode": mode,
        "threads": {"toolkit": threads or "all cores", "pytorch": runners["pytorch"].threads},
        "samples": len(train.x),
        "epochs": epochs,
        "batch_size": batch_size,
        "toolkit_samples_per_s": round(rates["toolkit"]),
        "pytorch_samples_per_s": round(rates["pytorch"]),
        "ratio": round(rates["toolkit"] / rates["pytorch"], 3),
        "best_epoch_ratio": round(best["toolkit"] / best["pytorch"], 3),
        "toolkit_samples_per_cpu_s": round(cpu_rates["toolkit"]),
        "pytorch_samples_per_cpu_s": round(cpu_rates["pytorch"]),
        "cpu_ratio": round(cpu_rates["toolkit"] / cpu_rates["pytorch"], 3),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "load_avg": os.getloadavg()[0],
        "epoch_s": {k: [round(w, 2) for w, _ in v] for k, v in times.items()},
        "epoch_cpu_s": {k: [round(c, 2) for _, c in v] for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--modes", nargs="+", default=["1", "2", "default"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="samples per batch (default: 64, cnn_recipe: the recipe's)",
    )
    parser.add_argument("--samples", type=int, default=None, help="training samples per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--torch-passive",
        action="store_true",
        help="OMP_WAIT_POLICY=PASSIVE for PyTorch: its idle OpenMP workers sleep instead of "
        "spinning (on a busy machine spinning workers slow multi-threaded PyTorch many times)",
    )
    args = parser.parse_args()
    if args.torch_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch starts its OpenMP pool

    import torch

    TorchRunner.default_threads = torch.get_num_threads()
    load_plugins()
    mnist = split_dataset(load_dataset("mnist"), train=1.0, val=0.0, test=0.0, seed=args.seed)
    for name in args.models:
        count = args.samples or DEFAULT_SAMPLES[name]
        data = ArrayData(mnist.train.x[:count], mnist.train.y[:count])
        for mode in args.modes:
            batch_size = args.batch_size or DEFAULT_BATCH.get(name, 64)
            print(json.dumps(bench(name, mode, data, args.epochs, batch_size, args.seed)),
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
