"""Sweeps run as a user runs them: ``python -m toolkit -m ...`` in a fresh folder, through
Hydra's real launchers (basic, joblib, submitit), against the local SQLite store and a real
``mlflow server``; an Optuna search; the SLURM preset composed (SLURM itself is not here).

Every job is tiny (``dataset.subset=500`` or ``dataset=spirals``, one epoch, no model
logging) so the whole file stays within a few minutes on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import requires_mnist
from tests.mlflow_server import running_server

ROOT = Path(__file__).resolve().parents[1]
# MLflow's SQLAlchemy store under SQLAlchemy 2.1 (in this process: the template store)
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
TINY = ["trainer.epochs=1", "trainer.progress=false", "logger.log_model=false"]
MNIST_TINY = ["+model=mlp", "dataset.subset=500", *TINY]
GRID = ["optim.lr=0.01,0.001", "model.dropout=0.0,0.1"]
GRID_NAMES = {
    f"lr={lr} dropout={dropout}"  # what varies, short (toolkit.track.ui.child_run_name)
    for lr in ("0.01", "0.001")
    for dropout in ("0.0", "0.1")
}


def toolkit(*args, cwd: Path, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def mlflow_client(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def sweep_runs(uri: str, sweep_dir: Path):
    """(parent run, child runs) of the sweep whose ``sweep.json`` is in ``sweep_dir``."""
    info = json.loads((sweep_dir / "sweep.json").read_text())
    client = mlflow_client(uri)
    parent = client.get_run(info["parent_run_id"])
    children = client.search_runs(
        [info["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{info['parent_run_id']}'",
        max_results=1000,
    )
    return parent, children


# --- a real MLflow tracking server -------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` with a SQLite backend on a free port; its URL. Stopped at teardown
    (its whole process group: the server starts uvicorn and a job runner)."""
    with running_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    """Copies an MLflow SQLite store whose schema exists into a folder, as ``mlflow.db``
    (a store a user has used before; creating the schema costs seconds per test). The
    fresh-store path, where parallel jobs could race on the schema, is tested with joblib."""
    import shutil

    template = tmp_path_factory.mktemp("mlflow-store") / "mlflow.db"
    mlflow_client(f"sqlite:///{template}").search_experiments()  # creates the tables

    def copy_to(folder: Path) -> str:
        shutil.copy(template, folder / "mlflow.db")
        return "sqlite:///mlflow.db"

    return copy_to


@pytest.fixture(scope="module")
def warm_mnist_cache(cache_dir):
    """Convert MNIST once, before any sweep, so parallel jobs only read the cache."""
    from toolkit.data import load_dataset

    load_dataset("mnist")
    return cache_dir


# --- launchers x tracking stores ----------------------------------------------------------

BLAS_PROBE = textwrap.dedent(
    '''
    """An identity activation that records the BLAS thread pools of the process it trains in."""
    import json
    import multiprocessing
    import os

    from threadpoolctl import threadpool_info

    from toolkit.nn.activations import Activation
    from toolkit.registry import activations


    @activations.register("blas_probe")
    class BlasProbe(Activation):
        kind = "blas_probe"

        def forward(self, x, training=False):
            if training and not getattr(self, "_recorded", False):
                self._recorded = True
                pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
                record = {
                    "process": multiprocessing.current_process().name,
                    "blas_threads": [p["num_threads"] for p in pools],
                }
                path = os.path.join(os.environ["BLAS_PROBE_DIR"], f"{os.getpid()}-{id(self)}.json")
                with open(path, "w") as file:
                    json.dump(record, file)
            return x

        def backward(self, dy):
            return dy
    '''
)


@pytest.fixture
def blas_probe(tmp_path):
    """A plugin folder with the ``blas_probe`` activation, and the folder it reports into."""
    plugins, reports = tmp_path / "probe_plugin", tmp_path / "probe_reports"
    plugins.mkdir()
    reports.mkdir()
    (plugins / "blas_probe.py").write_text(BLAS_PROBE)
    return {"TOOLKIT_PLUGINS": str(plugins), "BLAS_PROBE_DIR": str(reports)}, reports


@requires_mnist
@pytest.mark.parametrize(
    "launcher,store",
    [
        ("basic", "sqlite"),  # a store used before
        # ~45 s each: joblib sweeps also run in test_postgres_tracking (through a server)
        # and runs racing for a fresh store in test_lifecycle
        pytest.param("joblib", "sqlite", marks=pytest.mark.slow),  # a fresh store, made once
        pytest.param("joblib", "server", marks=pytest.mark.slow),
        pytest.param("basic", "server", marks=pytest.mark.slow),
    ],
)
def test_grid_sweep_records_a_parent_and_a_finished_child_per_job(
    tmp_path, request, launcher, store, warm_mnist_cache, blas_probe, sqlite_store
):
    if store == "server":
        uri = request.getfixturevalue("mlflow_server")
    else:
        uri = sqlite_store(tmp_path) if launcher == "basic" else "sqlite:///mlflow.db"
    args = [*MNIST_TINY, *GRID, f"logger.tracking_uri={uri}", "hydra.sweep.dir=sweep"]
    env = {}
    if launcher == "joblib":
        # the plugin must load inside the workers; it records their BLAS thread pools
        env, reports = blas_probe
        args += ["hydra/launcher=joblib", "model.activation=[relu,blas_probe]"]
    result = toolkit("-m", *args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "sweep: 4 of 4 jobs finished" in result.stderr

    local_uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if store == "sqlite" else uri
    parent, children = sweep_runs(local_uri, tmp_path / "sweep")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["toolkit.sweep"] == "parent"
    assert parent.data.metrics["children/finished"] == 4
    assert parent.data.metrics["children/failed"] == 0
    assert {child.info.run_name for child in children} == GRID_NAMES
    client = mlflow_client(local_uri)
    for child in children:
        name = child.info.run_name
        assert child.info.status == "FINISHED", name
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert name.startswith(f"lr={child.data.params['optim.lr']} ")
        assert name.endswith(f" dropout={child.data.params['model.dropout']}")
        assert len(client.get_metric_history(child.info.run_id, "train/loss")) == 1, name
        assert 0.0 <= child.data.metrics["test/acc"] <= 1.0
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"metrics.json", "figures"} <= artifacts, name
    assert parent.data.tags["best_child_run_id"] in {c.info.run_id for c in children}
    assert parent.data.tags["toolkit.sweep_end"] == "completed"

    if launcher == "joblib":
        records = [json.loads(p.read_text()) for p in reports.iterdir()]
        assert len(records) == 4  # one per job: the plugin was loaded in every worker
        assert all(r["process"].startswith("LokyProcess") for r in records), records
        for record in records:  # trainer.threads=1: one BLAS thread per job
            assert record["blas_threads"] and set(record["blas_threads"]) == {1}, record


def test_trainer_fits_under_the_configured_blas_thread_limit():
    """The Trainer applies trainer.threads (default 1) with threadpoolctl while fitting."""
    import numpy as np
    from threadpoolctl import threadpool_info

    from toolkit.data import load_dataset, split_dataset
    from toolkit.models import ModelSpec, build_model
    from toolkit.registry import losses, optimizers
    from toolkit.train import Trainer
    from toolkit.train.callbacks import Callback

    seen = []

    class Probe(Callback):
        def on_fit_start(self, trainer):
            seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])

    data = split_dataset(load_dataset("spirals"), train=0.9, val=0.1, test=0.0, seed=0)
    model = build_model(
        ModelSpec("mlp", data.train.x.shape[1:], 2, {"hidden_sizes": [8], "activation": "relu"})
    )
    trainer = Trainer(
        model,
        losses.build("cross_entropy"),
        optimizers.build("adam", model),
        epochs=1,
        progress=False,
        threads=1,
        callbacks=[Probe()],
    )
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # BLAS is loaded
    trainer.fit(data.train, data.val)
    assert seen and seen[0] and set(seen[0]) == {1}


def test_submitit_local_launcher_runs_a_small_sweep(tmp_path):
    """submitit pickles the task to fresh processes; plugins (swish, lion) load there too.
    (MLflow from separate processes is covered by the joblib tests; logger=none is quicker.)"""
    result = toolkit(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.sweep.dir=sweep",
        "+model=mlp",
        "dataset=spirals",
        "optim=lion",
        "model.activation=swish,relu",
        *TINY,
        "logger=none",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "sweep: 2 of 2 jobs finished" in result.stderr
    jobs = {
        path.parent.name: json.loads(path.read_text())
        for path in (tmp_path / "sweep").glob("*/job_result.json")
    }
    assert {j["name"] for j in jobs.values()} == {"swish", "relu"}
    assert all(j["status"] == "FINISHED" and "test/acc" in j["metrics"] for j in jobs.values())
    logs = list((tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # each job ran as its own submitit process


# --- failures -------------------------------------------------------------------------------


def test_a_failing_job_leaves_a_failed_child_and_a_nonzero_exit(tmp_path, sqlite_store):
    result = toolkit(
        "-m",
        "+model=mlp",
        "dataset=spirals",
        "model.activation=relu",
        "optim=sgd",
        "optim.lr=1e30,0.01",
        *TINY,
        f"logger.tracking_uri={sqlite_store(tmp_path)}",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-4000:]
    assert "sweep: 1 of 2 jobs finished" in result.stderr
    assert "failed job 0 (lr=1e+30): DivergenceError: training diverged" in result.stderr
    assert "Traceback" not in result.stderr

    parent, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "sweep")
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {"lr=1e+30", "lr=0.01"}
    failed = by_name["lr=1e+30"]
    assert failed.info.status == "FAILED"
    assert "training diverged" in failed.data.tags["failure_reason"]
    assert by_name["lr=0.01"].info.status == "FINISHED"
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["children/failed"] == 1
    assert parent.data.metrics["children/finished"] == 1
    job = json.loads((tmp_path / "sweep" / "0" / "job_result.json").read_text())
    assert job["status"] == "FAILED" and job["run_id"] == failed.info.run_id


def test_an_interrupted_sweep_leaves_its_parent_killed_and_its_job_killed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit",
            "-m",
            "+model=mlp",
            "dataset=spirals",
            "dataset.n_per_class=3000",
            "trainer.epochs=200",
            "trainer.progress=false",
            "logger.log_model=false",
            f"logger.tracking_uri={uri}",
            "optim.lr=0.01,0.001",
            "hydra.sweep.dir=sweep",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_epoch = tmp_path / "sweep" / "0" / "checkpoint_last.npz"
    deadline = time.monotonic() + 180
    while not first_epoch.exists() and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the first job
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130
    assert "marked KILLED" in stderr, stderr[-3000:]
    assert "hydra.sweep.dir=sweep trainer.resume=true" in stderr  # how to resume it
    assert "Traceback" not in stderr

    parent, children = sweep_runs(uri, tmp_path / "sweep")
    assert parent.info.status == "KILLED"
    assert parent.data.tags["toolkit.sweep_end"] == "interrupted"
    assert [c.info.status for c in children] == ["KILLED"]  # the second job never started


# --- Optuna --------------------------------------------------------------------------------


@requires_mnist
def test_optuna_search_runs_trials_as_child_runs(tmp_path, warm_mnist_cache, sqlite_store):
    result = toolkit(
        "-m",
        "+hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=2",
        "dataset.subset=500",
        *TINY,
        f"logger.tracking_uri={sqlite_store(tmp_path)}",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"optim.lr", "model.dropout", "trainer.batch_size"}
    assert 0.0 <= results["best_value"] <= 1.0

    parent, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "sweep")
    assert len(children) == 2
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["children/finished"] == 2
    for child in children:  # named by the sampled values
        assert child.info.run_name.startswith(f"lr={child.data.params['optim.lr']} ")
        assert 1e-4 <= float(child.data.params["optim.lr"]) <= 1e-1
        assert child.data.params["trainer.batch_size"] in {"32", "64", "128"}
    best = max(children, key=lambda c: c.data.metrics["val/acc"])
    assert best.data.metrics["val/acc"] == pytest.approx(results["best_value"])


def test_optuna_search_goes_on_after_a_diverging_trial(tmp_path):
    result = toolkit(
        "-m",
        "+hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.seed=2",  # its first two proposals: lr 1e30 (diverges), 0.01
        "optim.lr=choice(1e30,0.01)",  # replaces the preset's lr range
        "dataset=spirals",
        "model.activation=relu",
        "optim=sgd",
        *TINY,
        "logger=none",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    jobs = [
        json.loads(p.read_text())["status"] for p in (tmp_path / "sweep").glob("*/job_result.json")
    ]
    assert sorted(set(jobs)) == ["FAILED", "FINISHED"], result.stderr[-3000:]
    assert len(jobs) == 2
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_an_optuna_search_where_every_trial_fails_ends_like_a_failed_sweep(tmp_path):
    result = toolkit(
        "-m",
        "+hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=2",
        "dataset=spirals",
        "model.hidden_sizes=[0]",  # every trial fails while its job is built
        *TINY,
        "logger=none",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "error: no trial of the Optuna search finished" in result.stderr
    assert "sweep: 0 of 2 jobs finished" in result.stderr
    assert "Traceback" not in result.stderr
    jobs = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/job_result.json")]
    assert [j["status"] for j in jobs] == ["FAILED", "FAILED"]
    assert all("hidden_sizes" in j["error"] for j in jobs)


# --- SLURM (composed and rendered; not executed: there is no SLURM here) --------------------


def test_slurm_preset_composes_and_renders_an_sbatch_array(tmp_path, monkeypatch):
    result = toolkit(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=cpu",
        "+model=mlp",
        "--cfg",
        "hydra",
        "--resolve",
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["partition"] == "cpu"
    assert launcher["cpus_per_task"] == 1 and launcher["timeout_min"] > 0
    assert launcher["array_parallelism"] >= 1 and launcher["setup"]

    # What the launcher would hand to sbatch: same parameter mapping as its launch().
    import submitit
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm import slurm

    instantiate(launcher)  # the launcher object builds from the preset
    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # no srun here
    params = {k: v for k, v in launcher.items() if k != "_target_"}
    executor = submitit.AutoExecutor(
        folder=str(tmp_path / "submitit"), cluster="slurm", slurm_max_num_timeout=0
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            k if k in base else f"slurm_{k}": v
            for k, v in params.items()
            if k not in {"submitit_folder", "max_num_timeout"}
        }
    )
    inner = executor._executor
    inner.parameters["map_count"] = 4  # a 4-job sweep is one array job
    script = inner._make_submission_file_text("python -m submitit.core._submit x", "uid")
    assert "#SBATCH --partition=cpu" in script
    assert "#SBATCH --cpus-per-task=1" in script
    assert f"#SBATCH --time={launcher['timeout_min']}" in script
    assert f"#SBATCH --array=0-3%{min(4, launcher['array_parallelism'])}" in script
    for line in launcher["setup"]:
        assert line in script
