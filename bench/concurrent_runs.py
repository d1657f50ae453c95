"""Runs started at the same instant in one fresh folder are all recorded.

    uv run python bench/concurrent_runs.py --runs 8 --repeats 10

Each repetition starts ``--runs`` single runs at once (a synthetic dataset, one epoch) in a
new folder with no ``mlflow.db``, then checks: every process exited 0, every run is
FINISHED, every run has its own output folder, ``PRAGMA integrity_check`` is ok, and one
more run in that folder succeeds.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from commands import start_toolkit  # bench/ is on sys.path

RUN = [
    "+model=mlp",
    "dataset=spirals",
    "model.activation=relu",
    "model.hidden_sizes=[16]",
    "trainer.epochs=1",
    "trainer.progress=false",
    "logger.log_model=false",
]


def start(folder: Path) -> subprocess.Popen:
    return start_toolkit(RUN, folder)


def repetition(folder: Path, runs: int) -> dict:
    import mlflow

    began = time.time()
    processes = [start(folder) for _ in range(runs)]
    codes = [p.wait(timeout=600) for p in processes]
    errors = [
        p.stderr.read().strip().splitlines()[-1:]
        for p, c in zip(processes, codes, strict=True)
        if c
    ]
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toolkit")
    found = client.search_runs([experiment.experiment_id]) if experiment else []
    with sqlite3.connect(folder / "mlflow.db") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    one_more = start(folder).wait(timeout=600)
    return {
        "exit_0": sum(c == 0 for c in codes),
        "finished": sum(r.info.status == "FINISHED" for r in found),
        "folders": len({r.data.tags.get("toolkit.output_dir") for r in found}),
        "integrity": integrity,
        "one_more": one_more == 0,
        "seconds": time.time() - began,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    totals = {"exit_0": 0, "finished": 0, "folders": 0}
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="concurrent-") as folder:
            result = repetition(Path(folder), args.runs)
        for key in totals:
            totals[key] += result[key]
        print(
            f"repetition {i + 1}: exit 0 {result['exit_0']}/{args.runs}, FINISHED "
            f"{result['finished']}/{args.runs}, output folders {result['folders']}, integrity "
            f"{result['integrity']}, one more run ok {result['one_more']}, "
            f"{result['seconds']:.1f} s {result['errors'] or ''}",
            flush=True,
        )
    n = args.runs * args.repeats
    print(
        f"total: {totals['finished']} of {n} FINISHED, {totals['exit_0']} of {n} exit 0, "
        f"{totals['folders']} distinct output folders"
    )


if __name__ == "__main__":
    main()
