"""Benchmark: torchvision's ResNet-18, the NumPy twin (``+model=resnet18``) vs PyTorch CPU.

Same weights (torchvision's ``resnet18(weights=None)`` imported into the NumPy model),
same random batches, same thread count (for NumPy the engine's own threads, as the
Trainer runs it: ``engine_threads(N)``, batch shards on N threads with one BLAS thread
each; ``--blas`` gives N BLAS threads instead; ``torch.set_num_threads`` for PyTorch).
Measured per image size (224x224, ImageNet's, and 32x32, CIFAR's):

* forward: evaluation mode (``model.forward(x, training=False)`` / ``torch.no_grad()``);
* training step: forward in training mode, cross-entropy, backward, SGD-momentum update
  (the toolkit's optimizer / ``torch.optim.SGD``);
* frozen-backbone step (NumPy only): the step of ``transfer=frozen_backbone`` once the
  backbone's features are cached, i.e. fc alone, plus the one-off feature pass per image.

The two frameworks alternate repeat by repeat so both see the same machine load; the
median of the repeats is reported. One JSON line per (size, measurement) with images/s
of each and the ratio numpy / torch (the issue's target: >= 0.7).

    uv run python bench/resnet18_vs_torch.py --threads 2 --batch 32 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from toolkit.interop.named_state import from_torch_state
from toolkit.models import ModelSpec, build_model
from toolkit.registry import losses, optimizers
from toolkit.train.trainer import engine_threads

NUMPY_THREADS = {"engine": engine_threads, "blas": lambda n: threadpool_limits(n, "blas")}
numpy_threads = NUMPY_THREADS["engine"]


def timed(step, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``step`` after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def measure(size: int, batch: int, repeats: int, threads: int) -> list[dict]:
    import torch
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    twin = torchvision.models.resnet18(weights=None, num_classes=10)
    model = build_model(ModelSpec("resnet18", (3, size, size), 10))
    from_torch_state(model, twin.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    loss = losses.build("cross_entropy")
    optimizer = optimizers.build("sgd", model, lr=0.01, momentum=0.9)
    model.needs_input_grad = False  # as the Trainer does
    torch_optimizer = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
    torch_loss = torch.nn.CrossEntropyLoss()

    def numpy_forward():
        model.forward(x, training=False)

    def numpy_step():
        out = model.forward(x, training=True)
        loss.forward(out, y)
        model.backward(loss.backward())
        optimizer.step()

    def torch_forward():
        twin.eval()
        with torch.no_grad():
            twin(xt)

    def torch_step():
        twin.train()
        torch_optimizer.zero_grad()
        torch_loss(twin(xt), yt).backward()
        torch_optimizer.step()

    rows = []
    for name, ours, theirs in (
        ("forward", numpy_forward, torch_forward),
        ("train_step", numpy_step, torch_step),
    ):
        numpy_times, torch_times = [], []
        for _ in range(repeats):  # alternate: both see the same load
            with numpy_threads(threads):
                numpy_times += timed(ours, 1)
            torch_times += timed(theirs, 1)
        numpy_rate = batch / statistics.median(numpy_times)
        torch_rate = batch / statistics.median(torch_times)
        rows.append(
            {
                "size": size,
                "measure": name,
                "batch": batch,
                "threads": threads,
                "numpy_img_s": round(numpy_rate, 2),
                "torch_img_s": round(torch_rate, 2),
                "ratio": round(numpy_rate / torch_rate, 3),
            }
        )
    rows.append(frozen_backbone(model, x, y, batch, repeats, threads, size))
    return rows


def frozen_backbone(model, x, y, batch: int, repeats: int, threads: int, size: int) -> dict:
    """NumPy only: the cached-feature pass per image and the fc-only training step."""
    from toolkit.app.frozen_prefix import features, split_frozen

    optimizer = optimizers.build("sgd", model, lr=0.01, momentum=0.9)
    optimizer.freeze(["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"])
    split = split_frozen(model, optimizer)
    loss = losses.build("cross_entropy")
    with numpy_threads(threads):
        cached = features(split.prefix, x)
        split.rest.needs_input_grad = False

        def head_step():
            out = split.rest.forward(cached, training=True)
            loss.forward(out, y)
            split.rest.backward(loss.backward())
            optimizer.step()

        feature_s = statistics.median(timed(lambda: features(split.prefix, x), repeats))
        step_s = statistics.median(timed(head_step, repeats))
    return {
        "size": size,
        "measure": "frozen_backbone",
        "batch": batch,
        "threads": threads,
        "feature_pass_img_s": round(batch / feature_s, 2),
        "head_step_img_s": round(batch / step_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 32])
    parser.add_argument("--blas", action="store_true", help="NumPy on N BLAS threads instead")
    args = parser.parse_args()
    global numpy_threads
    numpy_threads = NUMPY_THREADS["blas" if args.blas else "engine"]
    for size in args.sizes:
        for row in measure(size, args.batch, args.repeats, args.threads):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
