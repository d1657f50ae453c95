"""Do parallel sweep jobs lose MLflow runs? 8 jobs at once, SQLite file vs. tracking server.

Runs ``--repeats`` sweeps of ``--jobs`` tiny jobs (MLP on spirals, one epoch) through the
joblib launcher with ``hydra.launcher.n_jobs=<jobs>`` (all jobs at once), each against a
fresh SQLite file (``sqlite:///mlflow.db`` in a new folder) and against an ``mlflow server``
(SQLite backend, started here on a free port; a fresh experiment per sweep). For every
sweep it counts the parent's child runs and how many FINISHED, the runs in the experiment
(orphans without a parent would show here), the exit code, and "database is locked" /
tracebacks in the output. Every sweep must record jobs/jobs children.

    uv run python bench/parallel_tracking.py [--repeats 5] [--jobs 8] [--log-model]
        [--only sqlite|server] [--keep] [--no-telemetry]

Found with it (MLflow 3.17): against a server, about one sweep in four lost a job or failed
to start with ``KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'``: MLflow's telemetry thread, when
its config fetch fails (no internet), pops that variable from ``os.environ`` while
``requests`` iterates ``os.environ`` for proxy settings during a tracking call. With
``MLFLOW_DISABLE_TELEMETRY=true`` (``--no-telemetry``; the toolkit now sets it by default,
toolkit/track/__init__.py) every sweep recorded all its jobs. (Under pytest, MLflow turns
telemetry off by itself, so the test suite cannot see this.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' server helper, also where the project is not installed
from tests.mlflow_server import running_server  # noqa: E402


def one_sweep(folder: Path, uri: str, experiment: str, jobs: int, log_model: bool) -> dict:
    """Run the sweep in ``folder``; count what the tracking store recorded."""
    import mlflow

    args = [
        "-m",
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={jobs}",
        "hydra.sweep.dir=sweep",
        "+model=mlp",
        "dataset=spirals",
        "trainer.epochs=1",
        "trainer.progress=false",
        f"logger.log_model={str(log_model).lower()}",
        f"logger.tracking_uri={uri}",
        f"logger.experiment={experiment}",
        "seed=" + ",".join(str(i) for i in range(jobs)),
    ]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    row = {
        "exit": result.returncode,
        "seconds": round(seconds, 1),
        "locked": output.count("database is locked"),
        "tracebacks": output.count("Traceback"),
        "children": 0,
        "finished": 0,
        "in_experiment": 0,
    }
    info_path = folder / "sweep" / "sweep.json"
    if not info_path.is_file():
        row["error"] = output[-2000:]
        return row
    info = json.loads(info_path.read_text())
    store = uri if uri.startswith("http") else f"sqlite:///{folder / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store)
    children = client.search_runs(
        [info["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{info['parent_run_id']}'",
        max_results=1000,
    )
    every = client.search_runs([info["experiment_id"]], max_results=1000)
    row.update(
        children=len(children),
        finished=sum(c.info.status == "FINISHED" for c in children),
        in_experiment=len(every) - 1,  # minus the parent
        job_results=len(list((folder / "sweep").glob("*/job_result.json"))),
    )
    if result.returncode != 0:
        row["error"] = output[-2000:]
    (folder / "output.txt").write_text(output)
    return row


def report(store: str, rows: list[dict], jobs: int) -> None:
    for i, row in enumerate(rows):
        print(
            f"{store:<7} #{i}: children {row['children']}/{jobs}, FINISHED {row['finished']}, "
            f"runs in experiment {row['in_experiment']}, exit {row['exit']}, "
            f"'database is locked' x{row['locked']}, tracebacks x{row['tracebacks']}, "
            f"{row['seconds']} s"
        )
        if "error" in row:
            print("    " + row["error"][-800:].replace("\n", "\n    "))
    complete = sum(r["children"] == jobs and r["finished"] == jobs and r["exit"] == 0 for r in rows)
    print(f"{store:<7} complete sweeps: {complete} of {len(rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--log-model", action="store_true", help="also log the pyfunc model")
    parser.add_argument("--only", choices=["sqlite", "server"], default=None)
    parser.add_argument("--keep", action="store_true", help="keep the sweep folders")
    parser.add_argument(
        "--no-telemetry",
        action="store_true",
        help="MLFLOW_DISABLE_TELEMETRY=true for the sweeps (see the module docstring)",
    )
    options = parser.parse_args()
    if options.no_telemetry:
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    print(
        f"{options.jobs} parallel jobs per sweep, {os.cpu_count()} cores, {options.repeats} sweeps"
    )

    with contextlib.ExitStack() as stack:
        if options.keep:
            tmp = Path(tempfile.mkdtemp(prefix="parallel-tracking-"))
            print(f"sweep folders kept in {tmp}")
        else:
            tmp = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="parallel-tracking-"))
            )
        if options.only in (None, "sqlite"):
            rows = []
            for i in range(options.repeats):
                folder = tmp / f"sqlite{i}"
                folder.mkdir()
                rows.append(
                    one_sweep(
                        folder, "sqlite:///mlflow.db", "parallel", options.jobs, options.log_model
                    )
                )
            report("sqlite", rows, options.jobs)
        if options.only in (None, "server"):
            server_dir = tmp / "server"
            server_dir.mkdir()
            rows = []
            with running_server(server_dir) as url:
                for i in range(options.repeats):
                    folder = tmp / f"server{i}"
                    folder.mkdir()
                    rows.append(
                        one_sweep(folder, url, f"parallel-{i}", options.jobs, options.log_model)
                    )
            report("server", rows, options.jobs)


if __name__ == "__main__":
    main()
