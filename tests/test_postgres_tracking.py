"""A shared tracking server as a lab runs one: PostgreSQL (a fresh cluster on 127.0.0.1,
tests/postgres_server.py) behind ``mlflow server --serve-artifacts``, and sweeps through
the joblib and SLURM launchers logging to it over HTTP.

The jobs run in a folder of their own, the server in another with its artifacts
destination: every param, metric, figure, checkpoint and pyfunc model reaches the server
through its REST API (``mlflow-artifacts:/`` URIs), so jobs need no filesystem in common
with it. Each sweep is two tiny jobs (spirals, one epoch, the pyfunc model logged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.mlflow_server import running_server
from tests.postgres_server import missing_postgres, running_postgres
from tests.slurm_cluster import missing_packages, running_cluster

NO_POSTGRES = missing_postgres()
NO_SLURM = missing_packages()
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(NO_POSTGRES is not None, reason=f"no PostgreSQL: {NO_POSTGRES}"),
]
JOBS = ["+model=mlp", "dataset=spirals", "trainer.epochs=1", "trainer.progress=false"]
SERVER = pytest.mark.xdist_group("postgres-server")  # one worker: one server for both
ARTIFACTS = {"config_resolved.yaml", "metrics.json", "figures"}


@pytest.fixture(scope="session")  # kept while its group's tests run, across modules
def server(tmp_path_factory):
    """(URL of an ``mlflow server`` on PostgreSQL with served artifacts, the server's
    artifacts destination)."""
    folder = tmp_path_factory.mktemp("tracking-server")
    destination = folder / "artifact-store"
    with (
        running_postgres() as database,
        running_server(folder, database, destination, workers=2) as url,
    ):
        yield url, destination


def sweep(*args: str, cwd: Path, env: dict | None = None):
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "toolkit", "-m", *args, *JOBS, "hydra.sweep.dir=sweep"],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=400,
    )


def load_pyfunc(url: str, model_uri: str):
    """``mlflow.pyfunc.load_model`` from the server at ``url`` (MLflow resolves a run's
    model through the process's tracking URI)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(url)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    finally:
        mlflow.set_tracking_uri(previous)


def assert_recorded_through_the_server(url: str, destination: Path, jobs_dir: Path) -> None:
    """Every job of the sweep in ``jobs_dir`` is a FINISHED child of its parent with
    params, per-epoch metrics and all artifacts, stored under the server's destination."""
    import mlflow

    client = mlflow.MlflowClient(url)
    info = json.loads((jobs_dir / "sweep" / "sweep.json").read_text())
    assert info["tracking_uri"] == url
    children = client.search_runs(
        [info["experiment_id"]], f"tags.mlflow.parentRunId = '{info['parent_run_id']}'"
    )
    assert {c.info.run_name for c in children} == {"s=0", "s=1"}
    assert client.get_run(info["parent_run_id"]).info.status == "FINISHED"
    for run in children:
        run_id = run.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.params["seed"] == run.info.run_name.split("=")[1]
        assert [m.step for m in client.get_metric_history(run_id, "val/acc")] == [1]
        assert "test/acc" in run.data.metrics
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied, not a path
        assert {a.path for a in client.list_artifacts(run_id)} >= ARTIFACTS
        figures = {a.path for a in client.list_artifacts(run_id, "figures")}
        assert {"figures/learning_curves.png", "figures/decision_boundary.png"} <= figures
        # the final weights; the resume checkpoints (resume/, tag toolkit.checkpoint) served
        # while the run was going and are removed once it finished
        assert "toolkit.checkpoint" not in run.data.tags
        assert not client.list_artifacts(run_id, "resume")
        (logged,) = client.search_logged_models(
            [info["experiment_id"]], f"source_run_id = '{run_id}'"
        )  # MLflow 3 keeps a run's models beside its artifacts, as LoggedModels
        assert logged.name == "model"
        assert logged.artifact_location.startswith("mlflow-artifacts:/")
        assert list(destination.glob(f"**/{logged.model_id}/artifacts/MLmodel"))
        # stored once, inside the model (the tag says where), uploaded over HTTP
        assert run.data.tags["toolkit.final_checkpoint"] == "model/artifacts/checkpoint.npz"
        stored = list(destination.glob(f"**/{logged.model_id}/artifacts/artifacts/checkpoint.npz"))
        assert len(stored) == 1 and stored[0].stat().st_size > 0
        assert not list(destination.glob(f"**/{run_id}/artifacts/checkpoint/checkpoint.npz"))
        model = load_pyfunc(url, f"runs:/{run_id}/model")
        probabilities = model.predict(np.zeros((3, 2), dtype=np.float32))
        assert probabilities.shape == (3, 2)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@SERVER
def test_a_joblib_sweep_logs_everything_through_a_postgres_backed_server(server, tmp_path):
    url, destination = server
    jobs_dir = tmp_path / "jobs"  # no file in common with the server's folder
    result = sweep(
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1",
        f"logger.tracking_uri={url}", "logger.experiment=postgres-joblib", cwd=jobs_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert_recorded_through_the_server(url, destination, jobs_dir)


@pytest.fixture(scope="module")
def slurm():
    if NO_SLURM is not None:
        pytest.skip(f"no SLURM cluster: {NO_SLURM}")
    with running_cluster() as env:
        yield env


@SERVER
def test_a_slurm_sweep_logs_everything_through_a_postgres_backed_server(server, slurm, tmp_path):
    url, destination = server
    jobs_dir = tmp_path / "jobs"
    result = sweep(
        "hydra/launcher=slurm", "hydra.launcher.mem_gb=1", "seed=0,1",
        f"logger.tracking_uri={url}", "logger.experiment=postgres-slurm", cwd=jobs_dir, env=slurm,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert len(list((jobs_dir / "sweep" / ".submitit").glob("*_*/*_log.err"))) == 2
    assert_recorded_through_the_server(url, destination, jobs_dir)
