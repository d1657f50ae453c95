"""The model recipes as users run them: each command with no overrides beyond the model
and the optimizer, on full MNIST, its test metric and wall time against the targets.

    uv run python bench/recipes.py [--models mlp,cnn,cnn_single,autoencoder] [--threads N]

Each command runs in a fresh temporary folder with ``logger=none`` (so the store's
creation is not timed) and ``trainer.progress=false``; everything else is the recipe
(``toolkit/conf/model/<name>.yaml``). Wall time is the whole process (imports, dataset
cache, training, test, figures, probe). Run it on an idle machine: on a busy one, BLAS
threads spin and times mean little. ``--threads`` sets ``trainer.threads`` (default: the
run decides). The last column is the process's peak resident memory (the default CNN's
target: under 2 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# model -> (extra arguments, the metric, target, wall-time target in seconds or None)
TARGETS = {
    "mlp": (["optim=adam"], "test/acc", 0.982, 90),
    "cnn": (["optim=adam"], "test/acc", 0.993, 180),
    "cnn_single": ([], "test/acc", 0.980, None),
    "autoencoder": ([], "probe/test_acc", 0.975, None),
    "resnet": ([], "test/acc", None, None),
    "conv_autoencoder": ([], "probe/test_acc", None, None),
}


def run(model: str, threads: int | None) -> tuple[dict[str, float], float, float]:
    """(metrics.json, wall seconds, peak resident GiB) of the recipe's command."""
    extra, *_ = TARGETS[model]
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "toolkit", f"+model={model}", *extra]
        command += ["logger=none", "trainer.progress=false", f"hydra.run.dir={folder}/out"]
        if threads is not None:
            command.append(f"trainer.threads={threads}")
        log = Path(folder) / "stderr.txt"
        start = time.perf_counter()
        with log.open("w") as stderr:
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=folder)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-2000:]}")
        metrics = json.loads((Path(folder) / "out" / "metrics.json").read_text())
        return metrics, wall, usage.ru_maxrss / 2**20  # kB -> GiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn,cnn_single,autoencoder")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  load: {os.getloadavg()[0]:.2f}  threads: {args.threads}")
    print(
        f"{'command':<36} {'metric':<15} {'value':>7} {'target':>7} {'wall s':>7} {'limit':>6}"
        f" {'peak GiB':>8}"
    )
    for model in args.models.split(","):
        extra, metric, target, limit = TARGETS[model]
        metrics, wall, peak = run(model, args.threads)
        value = metrics[metric]
        ok = (target is None or value >= target) and (limit is None or wall <= limit)
        line = f"+model={model} {' '.join(extra)}"
        shown = "-" if target is None else f"{target:.3f}"
        print(
            f"{line:<36} {metric:<15} {value:>7.4f} {shown:>7} {wall:>7.1f} "
            f"{limit or '-':>6} {peak:>8.2f} {'ok' if ok else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
