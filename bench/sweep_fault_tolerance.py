"""Fault tolerance of a sweep: 12 jobs through the joblib launcher, 2 of them diverging.

Expect 10 FINISHED + 2 FAILED child runs and a non-zero exit; then the same sweep with
the two learning rates fixed and ``trainer.resume=true`` trains only those 2 jobs under
the same parent run. Prints one JSON line.

    uv run python bench/sweep_fault_tolerance.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOOD = [f"{0.001 * i:g}" for i in range(1, 11)]
BASE = [
    "-m",
    "hydra/launcher=joblib",
    "+model=mlp",
    "dataset=spirals",
    "model.activation=relu",
    "trainer.epochs=2",
    "trainer.progress=false",
    "logger.log_model=false",
    "logger.tracking_uri=sqlite:///mlflow.db",
    "logger.experiment=fault_tolerance",
]


def sweep(lrs: list[str], workdir: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", *BASE, f"optim.lr={','.join(lrs)}", *extra],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    return result, time.perf_counter() - started


def children(workdir: Path) -> dict[str, int]:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["fault_tolerance"], output_format="list")
    parents = [r.info.run_id for r in runs if r.data.tags.get("toolkit.sweep") == "parent"]
    counts = {"parents": len(parents)}
    for run in runs:
        if run.data.tags.get("mlflow.parentRunId") in parents:
            counts[run.info.status] = counts.get(run.info.status, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fault-tolerance-"))
    first, first_s = sweep([*GOOD, "1e30", "2e30"], workdir)
    after_first = children(workdir)
    second, second_s = sweep([*GOOD, "0.011", "0.012"], workdir, "trainer.resume=true")
    print(
        json.dumps(
            {
                "first_exit_code": first.returncode,
                "first_children": after_first,
                "first_seconds": round(first_s, 1),
                "resumed_exit_code": second.returncode,
                "resumed_skipped": second.stderr.count("skipped: job"),
                "resumed_children": children(workdir),
                "resumed_seconds": round(second_s, 1),
                "failed_jobs_named": [
                    line for line in first.stderr.splitlines() if line.startswith("failed job")
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
