"""``python -m toolkit -m ... --dry-run``: the jobs a sweep would run, how many, and an
estimated wall time, with nothing run or recorded (toolkit.app.dry_run).

The listing is checked against a real tiny sweep's child runs (names and overrides); the
sweeps use ``dataset=spirals`` and one epoch so that the file takes seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from toolkit.app.dry_run_estimate import Slots, launcher_slots, schedule

# MLflow's SQLAlchemy store under SQLAlchemy 2.1 (in this process)
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
TINY = ["dataset=spirals", "trainer.epochs=1", "trainer.progress=false", "logger.log_model=false"]
PRESET = """\
# @package _global_
defaults:
  - /model: mlp
logger:
  experiment: tiny_study
hydra:
  sweeper:
    params:
      model.dropout: 0.0,0.1
"""
JOB_LINE = re.compile(r"^\s*(\d+)  (.+?)  +(\S.*)$")


def toolkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def listed_jobs(stdout: str) -> dict[int, tuple[str, set[str]]]:
    """{job number: (name, every override)} from a dry run's listing."""
    common = next(line for line in stdout.splitlines() if line.startswith("every job: "))
    shared = set(common.removeprefix("every job: ").split())
    jobs = {}
    for line in stdout.splitlines():
        found = JOB_LINE.match(line)
        if found:
            own = set(found[3].split()) - {"-"}
            jobs[int(found[1])] = (found[2].strip(), shared | own)
    return jobs


@pytest.fixture
def study(tmp_path) -> list[str]:
    """A user's study preset (sweeper params) in their own config folder, swept further
    on the command line."""
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "tiny.yaml").write_text(PRESET)
    return ["--config-dir", str(tmp_path / "conf"), "+experiment=tiny", "optim.lr=0.01,0.001"]


def test_dry_run_lists_the_jobs_the_sweep_runs_and_records_nothing(tmp_path, study):
    dry = tmp_path / "dry"
    dry.mkdir()
    result = toolkit("-m", *study, *TINY, "--dry-run", cwd=dry)
    assert result.returncode == 0, result.stderr[-4000:]
    assert list(dry.iterdir()) == []  # no mlflow.db, mlruns/, multirun/ or outputs/
    assert "dry run: 4 jobs (swept: optim.lr, model.dropout)" in result.stdout
    listed = listed_jobs(result.stdout)
    assert len(listed) == 4
    seconds = re.search(r"^estimate: .* \((\d+) s\) for 4 jobs", result.stdout, re.M)
    assert seconds and int(seconds[1]) > 0, result.stdout
    assert "how: timed job #0 here" in result.stdout

    real = tmp_path / "real"
    real.mkdir()
    ran = toolkit("-m", *study, *TINY, "hydra.sweep.dir=sweep", cwd=real)
    assert ran.returncode == 0, ran.stderr[-4000:]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{real / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny_study")
    runs = client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` != ''")
    children = {}
    for run in runs:
        folder = Path(run.data.tags["toolkit.output_dir"])
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        children[int(folder.name)] = (run.info.run_name, set(overrides))
    assert children == listed


def test_bad_input_in_a_dry_run_is_one_error_line(tmp_path):
    result = toolkit(
        "-m", "+model=mlp", "optim=adma", "optim.lr=0.1,0.01", "--dry-run", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown optim 'adma'")
    assert len(result.stderr.strip().splitlines()) == 1
    single = toolkit("+model=mlp", *TINY, "--dry-run", cwd=tmp_path)
    assert single.returncode == 2
    assert (
        single.stderr.strip() == "error: --dry-run lists the jobs of a sweep: add -m (--multirun)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_job_failing_while_timed_leaves_the_listing_and_no_estimate(tmp_path):
    grid = ["+model=mlp", "model.activation=relu", "optim=sgd", "optim.lr=1e30,0.01"]
    result = toolkit("-m", *grid, *TINY, "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert len(listed_jobs(result.stdout)) == 2
    assert "estimate: none; job #0 (lr=1e+30) failed while timed: DivergenceError" in (
        result.stdout
    )
    assert list(tmp_path.iterdir()) == []


def test_dry_run_of_an_optuna_search_says_its_trials_are_chosen_adaptively(tmp_path):
    result = toolkit(
        "-m",
        "+hparams_search=mlp_optuna",
        "hydra.sweeper.n_trials=6",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *TINY,
        "--dry-run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Optuna search of 6 trials" in result.stdout
    assert "chosen adaptively" in result.stdout
    assert "optim.lr: tag(log, interval(1e-4, 1e-1))" in result.stdout
    assert re.search(r"^estimate: .* \(\d+ s\) for 6 trials", result.stdout, re.M)
    assert "joblib: 2 workers" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_jobs_go_to_the_first_free_slot_batch_by_batch():
    one = Slots(1, 0.0, False, "")
    assert schedule([3.0, 1.0, 2.0], [[0, 1, 2]], one) == 6.0
    two = Slots(2, 0.5, False, "")  # workers start once, with the first batch
    assert schedule([3.0, 1.0, 2.0], [[0, 1, 2]], two) == 3.5
    assert schedule([3.0, 1.0, 2.0, 1.0], [[0, 1], [2, 3]], two) == 3.5 + 2.0
    per_job = Slots(2, 0.5, True, "")  # a process per job
    assert schedule([3.0, 1.0, 2.0], [[0, 1, 2]], per_job) == 4.0


def test_launcher_slots_follow_the_launcher_and_the_cores(monkeypatch):
    monkeypatch.setattr("toolkit.app.run.available_cores", lambda: 8)

    def slots(launcher: dict, threads: int = 1) -> int:
        return launcher_slots(OmegaConf.create({"hydra": {"launcher": launcher}}), threads, 1.0)

    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert slots({"_target_": basic}).count == 1
    assert slots({"_target_": joblib, "n_jobs": -1}).count == 8
    assert slots({"_target_": joblib, "n_jobs": -2}).count == 7
    assert slots({"_target_": joblib, "n_jobs": 4}, threads=4).count == 2  # 8 cores
    assert slots({"_target_": slurm, "array_parallelism": 64}).count == 64
