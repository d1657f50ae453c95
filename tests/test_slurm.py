"""Sweeps on a real SLURM cluster: ``hydra/launcher=slurm`` (the submitit preset) submits
each sweep as one job array to a one-node cluster on localhost (tests/slurm_cluster.py
starts munged, slurmctld and slurmd as root, or reuses the one it started).

Every job is tiny (spirals, one to four epochs, no model logging) so the file stays within
about a minute and a half on two cores; each sweep pays SLURM's scheduling and submitit's
polling (a few seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.slurm_cluster import missing_packages, running_cluster, slurm_env

MISSING = missing_packages()
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(MISSING is not None, reason=f"no SLURM cluster: {MISSING}"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]
SLURM = ["-m", "hydra/launcher=slurm", "hydra.launcher.mem_gb=1"]
TINY = ["+model=mlp", "dataset=spirals", "trainer.progress=false", "logger.log_model=false"]
STORE = "logger.tracking_uri=sqlite:///mlflow.db"


@pytest.fixture(scope="session")
def slurm():
    """The cluster's client environment (``SLURM_CONF``, ``PATH``) while the tests run."""
    with running_cluster() as env:
        yield env


def toolkit(*args: str, cwd: Path, env: dict, wait: bool = True, timeout: float = 900):
    command = [sys.executable, "-m", "toolkit", *args]
    full_env = {**os.environ, **env}
    if not wait:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    return subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def client(folder: Path):
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def children_of(mlflow_client, sweep_dir: Path) -> tuple[object, dict[str, object]]:
    """(parent run, {run name: child run}) of the sweep in ``sweep_dir``."""
    info = json.loads((sweep_dir / "sweep.json").read_text())
    found = mlflow_client.search_runs(
        [info["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{info['parent_run_id']}'",
        max_results=1000,
    )
    return mlflow_client.get_run(info["parent_run_id"]), {r.info.run_name: r for r in found}


def array_tasks(sweep_dir: Path) -> dict[str, str]:
    """{``<array id>_<task>``: its job log} for every SLURM array task of the sweep."""
    return {
        path.parent.name: path.read_text()
        for path in (sweep_dir / ".submitit").glob("*_*/*_log.err")
    }


# --- a sweep with a failing job: one parent, a child per job ---------------------------------


# One worker runs all tests of a module fixture's sweep (pytest -n 2 --dist loadgroup).
MIXED, CANCEL = pytest.mark.xdist_group("slurm-mixed"), pytest.mark.xdist_group("slurm-cancel")


@pytest.fixture(scope="session")  # kept while its group's tests run, across modules
def mixed_sweep(slurm, tmp_path_factory):
    """Two jobs as one array: one trains, one diverges (lr 1e30)."""
    folder = tmp_path_factory.mktemp("slurm-sweep")
    result = toolkit(
        *SLURM, *TINY, STORE, "hydra.sweep.dir=sweep", "trainer.epochs=2", "optim=sgd",
        "optim.lr=0.05,1e30", cwd=folder, env=slurm,
    )  # fmt: skip
    return folder, result


@MIXED
def test_every_slurm_job_is_a_child_run_with_params_metrics_and_artifacts(mixed_sweep):
    folder, result = mixed_sweep
    sweep_dir = folder / "sweep"
    tasks = array_tasks(sweep_dir)
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1  # one job array
    parent, children = children_of(client(folder), sweep_dir)
    assert set(children) == {"lr=0.05", "lr=1e+30"}
    for name, run in children.items():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["optim.lr"] == name.split("=")[1]
    run, store = children["lr=0.05"], client(folder)
    assert run.info.status == "FINISHED", result.stderr[-3000:]
    assert run.data.params["choice/dataset"] == "spirals"
    assert {"test/acc", "val/acc", "train/loss"} <= set(run.data.metrics)
    assert [m.step for m in store.get_metric_history(run.info.run_id, "val/acc")] == [1, 2]
    artifacts = {a.path for a in store.list_artifacts(run.info.run_id)}
    assert {"figures", "config_resolved.yaml", "metrics.json"} <= artifacts
    figures = {a.path for a in store.list_artifacts(run.info.run_id, "figures")}
    assert "figures/learning_curves.png" in figures
    assert parent.data.metrics["children/finished"] == 1
    assert (sweep_dir / "summary.md").is_file() and (sweep_dir / "report" / "report.md").is_file()


@MIXED
def test_a_failing_slurm_job_leaves_a_failed_child_and_a_nonzero_sweep_exit(mixed_sweep):
    folder, result = mixed_sweep
    assert result.returncode == 1, result.stderr[-3000:]
    assert "sweep: 1 of 2 jobs finished" in result.stderr
    assert "lr=1e+30" in result.stderr and "DivergenceError" in result.stderr
    parent, children = children_of(client(folder), folder / "sweep")
    failed = children["lr=1e+30"]
    assert failed.info.status == "FAILED"
    assert "training diverged" in failed.data.tags["failure_reason"]
    assert parent.info.status == "FAILED" and parent.data.metrics["children/failed"] == 1


# --- scancel mid-run, then resume the sweep ---------------------------------------------------

# A job slow enough to be cancelled between its first and last epoch without using CPU:
# its hidden activations sleep during training (~1.2 s an epoch), longer than a cancelled
# job still runs (submitit ignores scancel's SIGTERM; SIGKILL follows ~4 s later).
SLEEPY_RELU = textwrap.dedent(
    """
    import time

    from toolkit.nn.activations import ReLU
    from toolkit.registry import activations


    @activations.register("sleepy_relu")
    class SleepyReLU(ReLU):
        kind = "sleepy_relu"

        def forward(self, x, training=False):
            if training:
                time.sleep(0.01)
            return super().forward(x, training)
    """
)
EPOCHS = 8
SLOW = [
    *TINY, STORE, "model.activation=sleepy_relu", "dataset.n_per_class=2000",
    f"trainer.epochs={EPOCHS}",
]  # fmt: skip
SWEEP_DIR = "multirun/study/1"  # where trainer.resume=true looks for finished jobs


def checkpoint_epoch(path: Path) -> int:
    """The epoch of an epoch checkpoint (0 while it is missing or being written)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return int(json.loads(str(archive["meta"]))["training"]["epoch"])
    except Exception:
        return 0


def final_state(run_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A run's final metrics and checkpoint arrays (weights, optimizer state, meta)."""
    with np.load(run_dir / "checkpoint.npz", allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "meta"}
    return json.loads((run_dir / "metrics.json").read_text()), arrays


def cancel_when(sweep, sweep_dir: Path, job: int, epoch: int, timeout: float = 900) -> str:
    """scancel array task ``job`` of the running ``sweep`` once its epoch checkpoint
    reaches ``epoch``; returns the task's SLURM id (``<array>_<task>``)."""
    deadline = time.monotonic() + timeout
    while checkpoint_epoch(sweep_dir / str(job) / "checkpoint_last.npz") < epoch:
        assert sweep.poll() is None, sweep.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"job {job} never reached epoch {epoch}"
        time.sleep(0.05)
    task = next(t for t in array_tasks(sweep_dir) if t.endswith(f"_{job}"))
    subprocess.run(["scancel", task], check=True, env={**os.environ, **slurm_env()})
    return task


@pytest.fixture(scope="session")  # kept while its group's tests run, across modules
def cancelled_sweep(slurm, tmp_path_factory):
    """A two-job sweep (seed 0, 1) whose job 1 is cancelled after its first epoch, an
    uninterrupted single run of job 1's configuration beside it, and what MLflow said right
    after the cancelled sweep ended."""
    folder = tmp_path_factory.mktemp("slurm-cancel")
    (folder / "reference").mkdir()
    (folder / "plugins").mkdir()
    (folder / "plugins" / "sleepy_relu.py").write_text(SLEEPY_RELU)
    slurm = {**slurm, "TOOLKIT_PLUGINS": str(folder / "plugins")}
    # trainer.threads=1: the thread count of a SLURM job here (cores / jobs); reruns are
    # bit-identical for a given count (a 2-thread run may share its GEMMs on BLAS threads)
    reference = toolkit(
        *SLOW, "seed=1", "logger=none", "trainer.threads=1", "hydra.run.dir=out",
        cwd=folder / "reference",
        env=slurm, wait=False,
    )  # fmt: skip
    sweep = toolkit(*SLURM, *SLOW, f"hydra.sweep.dir={SWEEP_DIR}", "seed=0,1", cwd=folder,
                    env=slurm, wait=False)  # fmt: skip
    sweep_dir = folder / SWEEP_DIR
    task = cancel_when(sweep, sweep_dir, job=1, epoch=1)
    _, stderr = sweep.communicate(timeout=900)
    assert reference.wait(timeout=900) == 0, reference.stderr.read()[-3000:]
    parent, children = children_of(client(folder), sweep_dir)
    after_cancel = {
        "exit": sweep.returncode,
        "stderr": stderr,
        "task": task,
        "parent": parent.info.status,
        "children": {name: run.info.status for name, run in children.items()},
        "run_ids": {name: run.info.run_id for name, run in children.items()},
        "epoch": checkpoint_epoch(sweep_dir / "1" / "checkpoint_last.npz"),
        "job_result": (sweep_dir / "1" / "job_result.json").read_text()
        if (sweep_dir / "1" / "job_result.json").exists()
        else "",
    }
    return folder, after_cancel


@CANCEL
def test_a_cancelled_slurm_job_fails_the_sweep_and_leaves_its_parent_killed(cancelled_sweep):
    folder, after = cancelled_sweep
    jobcomp = Path(slurm_env()["TOOLKIT_SLURM_JOBCOMP"]).read_text()
    array_id, index = after["task"].split("_")
    assert "JobState=CANCELLED" in next(
        line for line in jobcomp.splitlines()
        if f"ArrayJobId={array_id} " in line and f"ArrayTaskId={index} " in line
    )  # fmt: skip
    assert 1 <= after["epoch"] < EPOCHS  # killed mid-run, after its first epoch
    assert after["exit"] != 0
    assert after["parent"] == "KILLED", after["stderr"][-3000:]
    assert after["children"]["s=0"] == "FINISHED"
    assert '"FINISHED"' not in after["job_result"]


@CANCEL
def test_a_cancelled_slurm_job_leaves_no_running_child(cancelled_sweep):
    _, after = cancelled_sweep
    assert after["children"]["s=1"] in {"KILLED", "FAILED"}


@CANCEL
def test_resuming_the_sweep_retrains_only_the_cancelled_job_bit_identically(cancelled_sweep, slurm):
    folder, after = cancelled_sweep
    slurm = {**slurm, "TOOLKIT_PLUGINS": str(folder / "plugins")}
    sweep_dir = folder / SWEEP_DIR
    before = set(array_tasks(sweep_dir))
    result = toolkit(*SLURM, *SLOW, f"hydra.sweep.dir={SWEEP_DIR}", "seed=0,1",
                     "trainer.resume=true", cwd=folder, env=slurm)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweep: 2 of 2 jobs finished" in result.stderr
    logs = {t[-1]: log for t, log in array_tasks(sweep_dir).items() if t not in before}
    assert "skipped: job s=0 already finished" in logs["0"]
    assert f"after epoch {after['epoch']}" in logs["1"]  # resumed where it was killed

    parent, children = children_of(client(folder), sweep_dir)
    assert parent.info.status == "FINISHED"
    assert {name: run.info.run_id for name, run in children.items()} == after["run_ids"]
    resumed = children["s=1"]
    assert resumed.info.status == "FINISHED"
    steps = client(folder).get_metric_history(resumed.info.run_id, "train/loss")
    assert sorted({m.step for m in steps}) == list(range(1, EPOCHS + 1))
    finished = client(folder).get_metric_history(children["s=0"].info.run_id, "train/loss")
    assert [m.step for m in finished] == list(range(1, EPOCHS + 1))  # not trained again

    metrics, arrays = final_state(sweep_dir / "1")
    ref_metrics, ref_arrays = final_state(folder / "reference" / "out")
    assert metrics == ref_metrics
    assert resumed.data.metrics["test/acc"] == ref_metrics["test/acc"]
    assert arrays.keys() == ref_arrays.keys()
    for key, value in ref_arrays.items():
        assert np.array_equal(arrays[key], value), key
