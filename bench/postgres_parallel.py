"""8 parallel sweep jobs against an ``mlflow server`` on PostgreSQL with served artifacts.

Starts PostgreSQL (a fresh cluster, tests/postgres_server.py) and ``mlflow server
--backend-store-uri postgresql://... --serve-artifacts --artifacts-destination <folder>``,
then runs ``--repeats`` sweeps of ``--jobs`` tiny jobs at once through the joblib launcher
(bench/parallel_tracking.py's sweep: MLP on spirals, one epoch, here with the pyfunc
model), each in a folder of its own and a fresh experiment. For every sweep it counts the
parent's FINISHED children and, for each child, whether every artifact arrived through
the server: config, metrics, the resume checkpoint (tag ``toolkit.checkpoint``, found under
the server's artifacts destination), the figures and the pyfunc model (its ``MLmodel``
under the destination).

    uv run python bench/postgres_parallel.py [--repeats 5] [--jobs 8] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.parallel_tracking import one_sweep  # noqa: E402
from tests.mlflow_server import running_server  # noqa: E402
from tests.postgres_server import missing_postgres, running_postgres  # noqa: E402

ARTIFACTS = {"config_resolved.yaml", "metrics.json", "figures"}
FIGURES = {"figures/learning_curves.png", "figures/decision_boundary.png"}


def complete_children(url: str, folder: Path, destination: Path) -> tuple[int, int]:
    """(FINISHED children, children with every artifact) of the sweep in ``folder``."""
    import mlflow

    client = mlflow.MlflowClient(url)
    info = json.loads((folder / "sweep" / "sweep.json").read_text())
    children = client.search_runs(
        [info["experiment_id"]], f"tags.mlflow.parentRunId = '{info['parent_run_id']}'"
    )
    local = {
        json.loads(p.read_text())["run_id"]: p.parent
        for p in (folder / "sweep").glob("*/job_result.json")
    }
    complete = 0
    for run in children:
        run_id = run.info.run_id
        top = {a.path for a in client.list_artifacts(run_id)}
        figures = {a.path for a in client.list_artifacts(run_id, "figures")}
        models = client.search_logged_models(
            [info["experiment_id"]], f"source_run_id = '{run_id}'"
        )  # MLflow 3: a run's pyfunc model is a LoggedModel beside the run's artifacts
        model = [m for m in models if list(destination.glob(f"**/{m.model_id}/artifacts/MLmodel"))]
        # the final weights are stored once: in the pyfunc model (model/artifacts/...)
        final = run.data.tags.get("toolkit.final_checkpoint", "checkpoint/checkpoint.npz")
        owner, _, inside = final.partition("/")
        where = f"{model[0].model_id}/artifacts/{inside}" if owner == "model" and model else ""
        stored = list(destination.glob(f"**/{where or f'{run_id}/artifacts/{final}'}"))
        same = len(stored) == 1 and run_id in local and stored[0].stat().st_size > 0
        if top >= ARTIFACTS and figures >= FIGURES and len(model) == 1 and same:
            complete += 1
    return sum(c.info.status == "FINISHED" for c in children), complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="mlflow server workers")
    options = parser.parse_args()
    reason = missing_postgres()
    if reason:
        sys.exit(f"error: {reason}")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(
        f"{options.jobs} parallel jobs per sweep (joblib), {os.cpu_count()} cores, "
        f"{options.repeats} sweeps, mlflow server on PostgreSQL, {options.workers} workers"
    )
    totals = {"children": 0, "finished": 0, "complete": 0}
    with tempfile.TemporaryDirectory(prefix="postgres-parallel-") as name:
        tmp = Path(name)
        (tmp / "server").mkdir()
        destination = tmp / "server" / "artifacts"
        with (
            running_postgres() as database,
            running_server(tmp / "server", database, destination, options.workers) as url,
        ):
            for i in range(options.repeats):
                folder = tmp / f"sweep{i}"
                folder.mkdir()
                row = one_sweep(folder, url, f"postgres-parallel-{i}", options.jobs, True)
                finished, complete = (0, 0)
                if (folder / "sweep" / "sweep.json").is_file():
                    finished, complete = complete_children(url, folder, destination)
                totals["children"] += row["children"]
                totals["finished"] += finished
                totals["complete"] += complete
                print(
                    f"#{i}: exit {row['exit']}, children {row['children']}/{options.jobs}, "
                    f"FINISHED {finished}, with all artifacts {complete}, runs in experiment "
                    f"{row['in_experiment']}, tracebacks x{row['tracebacks']}, {row['seconds']} s"
                )
                if "error" in row:
                    print("    " + row["error"][-800:].replace("\n", "\n    "))
    expected = options.jobs * options.repeats
    print(
        f"total: {totals['children']} of {expected} child runs recorded, "
        f"{totals['finished']} FINISHED, {totals['complete']} with all artifacts"
    )


if __name__ == "__main__":
    main()
