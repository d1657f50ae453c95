"""The run lifecycle: one order of steps, tested in-process with a composed config, and
the ends a run can come to (FINISHED, FAILED, KILLED; never RUNNING) through the command
line: signals at any moment, resumes that continue bit-identically or are refused, runs
started at the same instant, a broken store, a full disk."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from toolkit.app.cli import CONF_DIR
from toolkit.app.config_store import register_configs
from toolkit.app.lifecycle import run_lifecycle
from toolkit.app.policy import RunContext, SingleRunPolicy, SweepJobPolicy
from toolkit.app.resume import config_fingerprint, training_values
from toolkit.track.sweep_records import JobResult

SPIRALS = [
    "+model=mlp",
    "dataset=spirals",
    "model.activation=relu",
    "model.hidden_sizes=[16]",
    "trainer.progress=false",
    "logger.log_model=false",
]


def composed(*overrides: str):
    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def context(cfg, folder: Path, name: str = "job") -> RunContext:
    return RunContext(
        folder,
        name,
        fingerprint=config_fingerprint(cfg),
        config_values=training_values(cfg),
        threads=1,
    )


def clean_env() -> dict[str, str]:
    """The environment without a tracking URI another test of this process may have set:
    every command here uses its folder's ./mlflow.db unless it says otherwise."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def toolkit(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", clean_env())
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def runs(folder: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments) if experiments else []


def weights(path: Path) -> dict[str, str]:
    with np.load(path, allow_pickle=False) as archive:
        return {
            k: hashlib.md5(archive[k].tobytes()).hexdigest()
            for k in archive.files
            if k.startswith("param/")
        }


def assert_one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


# --- in-process ----------------------------------------------------------------------


def test_the_lifecycle_runs_in_process_and_writes_every_output(tmp_path):
    cfg = composed(*SPIRALS, "trainer.epochs=3", "logger=none")
    objective = run_lifecycle(cfg, context(cfg, tmp_path / "run"), SingleRunPolicy())
    assert 0.0 <= objective <= 1.0
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "metrics.json",
        "config_resolved.yaml",
        "checkpoint.npz",
        "checkpoint_last.npz",
    } <= names
    figures = {p.name for p in (tmp_path / "run" / "figures").iterdir()}
    assert {"learning_curves.png", "confusion_matrix.png", "decision_boundary.png"} <= figures


def test_post_fit_figures_can_be_switched_off_and_steps_skipped(tmp_path):
    cfg = composed(*SPIRALS, "trainer.epochs=1", "logger=none", "post_fit.figures=false")
    run_lifecycle(cfg, context(cfg, tmp_path / "run"), SingleRunPolicy())
    assert not (tmp_path / "run" / "figures").exists()
    assert (tmp_path / "run" / "gradient_flow.json").is_file()  # a file, not a figure
    cfg = composed(*SPIRALS, "trainer.epochs=1", "logger=none", "post_fit.skip=[gradient_flow]")
    run_lifecycle(cfg, context(cfg, tmp_path / "run2"), SingleRunPolicy())
    assert not (tmp_path / "run2" / "gradient_flow.json").exists()


def test_an_unknown_post_fit_step_is_rejected_before_training(tmp_path, capsys):
    cfg = composed(*SPIRALS, "logger=none", "post_fit.skip=[gradient_flo]")
    with pytest.raises(SystemExit) as stop:
        run_lifecycle(cfg, context(cfg, tmp_path / "run"), SingleRunPolicy())
    assert stop.value.code == 2
    line = assert_one_error_line(capsys.readouterr().err)
    assert "did you mean: gradient_flow" in line
    assert not (tmp_path / "run").exists()


def test_a_failing_step_fails_the_run_and_a_sweep_job_records_it(tmp_path, monkeypatch, capsys):
    from toolkit.app import lifecycle

    def broken(*args, **kwargs):
        raise RuntimeError("figure exploded")

    monkeypatch.setattr(lifecycle, "run_steps", broken)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = composed(*SPIRALS, "trainer.epochs=1", f"logger.tracking_uri={uri}")
    with pytest.raises(SystemExit) as stop:
        run_lifecycle(cfg, context(cfg, tmp_path / "single"), SingleRunPolicy())
    assert stop.value.code == 1
    assert "RuntimeError: figure exploded (run marked FAILED)" in capsys.readouterr().err
    value = run_lifecycle(cfg, context(cfg, tmp_path / "job"), SweepJobPolicy())
    assert np.isnan(value)
    result = JobResult(
        **__import__("json").loads((tmp_path / "job" / "job_result.json").read_text())
    )
    assert result.status == "FAILED" and "figure exploded" in result.error
    statuses = sorted(r.info.status for r in runs(tmp_path))
    assert statuses == ["FAILED", "FAILED"]
    failed = [r for r in runs(tmp_path)][0]
    assert failed.data.tags["failure_reason"] == "RuntimeError: figure exploded"


# --- signals and resume --------------------------------------------------------------

LONG = [*SPIRALS, "dataset.n_per_class=2000", "trainer.epochs=12", "trainer.batch_size=16"]


def start(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "toolkit", *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def wait_for_epoch(folder: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not list(folder.glob("outputs/*/*/checkpoint_last.npz")):
        assert time.time() < deadline, "no epoch finished"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache_dir) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    done = toolkit(*LONG, "hydra.run.dir=outputs/done", cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "outputs" / "done"


@pytest.mark.parametrize(
    ("signum", "code"),
    [
        (signal.SIGINT, 130),
        (signal.SIGTERM, 143),
        pytest.param(signal.SIGHUP, 129, marks=pytest.mark.slow),  # the same code path
    ],
)
def test_a_signal_kills_the_run_which_resumes_bit_identically(
    tmp_path, uninterrupted, signum, code
):
    process = start(tmp_path, *LONG)
    wait_for_epoch(tmp_path)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    line = assert_one_error_line(stderr)
    assert f"interrupted by {signal.Signals(signum).name} (run KILLED); resume with:" in line
    (killed,) = runs(tmp_path)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["toolkit.end"] == "interrupted"

    command = shlex.split(line.split("resume with: ", 1)[1])[3:]  # after "python -m toolkit"
    resumed = toolkit(*command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (run,) = runs(tmp_path)  # the same run, continued
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert "failure_reason" not in run.data.tags and run.data.tags["toolkit.end"] == "finished"
    # the resumed run's own folder: outputs/<date>/<time>, maybe under the next date
    outputs = Path(command[-1].split("=", 1)[1]).parent.parent
    newest = max(outputs.glob("*/*"), key=lambda p: p.stat().st_mtime)
    assert (newest / "metrics.json").read_text() == (uninterrupted / "metrics.json").read_text()
    assert weights(newest / "checkpoint.npz") == weights(uninterrupted / "checkpoint.npz")


def test_ctrl_c_before_the_first_epoch_ends_quietly(tmp_path, cache_dir):
    process = start(tmp_path, *LONG)
    # once the toolkit's own code runs (its run folder exists: building, before epoch 1);
    # a fixed sleep could land inside the interpreter's start-up on a busy machine
    deadline = time.time() + 120
    while not (tmp_path / "outputs").exists():
        assert time.time() < deadline and process.poll() is None, "the run never started"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert all(r.info.status in ("KILLED", "FINISHED") for r in runs(tmp_path))


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
def test_a_signal_whose_exception_library_code_swallowed_still_stops_the_run(tmp_path, signum):
    # a plugin stands in for library code that loses the exception a signal raised in it
    # (a Ctrl-C landing in Hydra's writing of config.yaml was seen to vanish that way)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "swallows.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        f"    os.kill(os.getpid(), {int(signum)})\n"
        "    time.sleep(5)\n"
        "except BaseException:\n"
        "    pass\n"
    )
    env = {**clean_env(), "TOOLKIT_PLUGINS": str(plugins)}
    stopped = toolkit(*SPIRALS, "trainer.epochs=50", cwd=tmp_path, env=env)
    assert stopped.returncode == 128 + signum, stopped.stderr[-2000:]
    line = assert_one_error_line(stopped.stderr)
    assert f"interrupted by {signal.Signals(signum).name}" in line
    assert "epoch 1/" not in stopped.stderr  # stopped before training, not after it
    assert all(r.info.status == "KILLED" for r in runs(tmp_path))


def test_a_sigkilled_run_is_ended_killed_by_the_next_run_and_resumes_bit_identically(
    tmp_path, uninterrupted
):
    process = start(tmp_path, *LONG)
    wait_for_epoch(tmp_path)
    process.kill()  # nothing in the process can end its run
    process.communicate(timeout=60)
    (left,) = runs(tmp_path)
    assert left.info.status == "RUNNING"

    other = toolkit(*SPIRALS, "trainer.epochs=1", cwd=tmp_path)
    assert other.returncode == 0, other.stderr[-2000:]
    (line,) = [w for w in other.stderr.splitlines() if f"({left.info.run_id}) was left" in w]
    name = left.info.run_name  # its overrides: shortened in the warning
    assert line.startswith(f"warning: run {name[:45]}... ({left.info.run_id}) was left RUNNING")
    assert "marked KILLED" in line
    by_id = {r.info.run_id: r for r in runs(tmp_path)}
    killed = by_id.pop(left.info.run_id)
    (newer,) = by_id.values()
    assert killed.info.status == "KILLED" and killed.data.tags["toolkit.end"] == "killed"
    assert "SIGKILL" in killed.data.tags["failure_reason"]
    assert killed.info.start_time <= killed.info.end_time <= newer.info.start_time
    assert newer.info.status == "FINISHED"

    resume = line.split("resume it with its command and ", 1)[1]  # trainer.resume=<run id>
    resumed = toolkit(*LONG, resume, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run = next(r for r in runs(tmp_path) if r.info.run_id == left.info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["toolkit.end"] == "finished"
    assert "failure_reason" not in run.data.tags
    newest = max(tmp_path.glob("outputs/*/*"), key=lambda p: p.stat().st_mtime)
    assert (newest / "metrics.json").read_text() == (uninterrupted / "metrics.json").read_text()
    assert weights(newest / "checkpoint.npz") == weights(uninterrupted / "checkpoint.npz")


def test_a_run_started_beside_a_live_one_leaves_it_running(tmp_path, cache_dir):
    process = start(tmp_path, *SPIRALS, "trainer.epochs=100000")
    wait_for_epoch(tmp_path)
    other = toolkit(*SPIRALS, "trainer.epochs=1", cwd=tmp_path)
    assert other.returncode == 0 and "was left RUNNING" not in other.stderr
    alive = process.poll() is None
    statuses = sorted(r.info.status for r in runs(tmp_path))
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert alive and statuses == ["FINISHED", "RUNNING"]
    assert sorted(r.info.status for r in runs(tmp_path)) == ["FINISHED", "KILLED"]


def test_a_resume_with_another_config_is_refused_naming_the_keys(tmp_path, uninterrupted):
    before = runs(tmp_path)
    other = [a for a in LONG if not a.startswith("trainer.epochs")]
    refused = toolkit(
        *other, "optim=sgd", "trainer.epochs=3", f"trainer.resume={uninterrupted}", cwd=tmp_path
    )
    assert refused.returncode == 2
    line = assert_one_error_line(refused.stderr)
    assert "trained with another config" in line
    assert "optim.name: adam -> sgd" in line and "trainer.epochs: 12 -> 3" in line
    assert "transfer.init_from=" in line
    assert runs(tmp_path) == before and not (tmp_path / "outputs").exists()


def test_a_run_id_resumes_in_a_fresh_folder_from_its_artifacts(tmp_path, uninterrupted):
    first, second = tmp_path / "machine_a", tmp_path / "machine_b"
    first.mkdir(), second.mkdir()
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    process = start(first, *LONG, f"logger.tracking_uri={uri}")
    wait_for_epoch(first)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    client = mlflow.MlflowClient(uri)
    (killed,) = client.search_runs([client.get_experiment_by_name("toolkit").experiment_id])
    assert killed.data.tags["toolkit.checkpoint"].startswith("resume/")
    resumed = toolkit(
        *LONG, f"logger.tracking_uri={uri}", f"trainer.resume={killed.info.run_id}", cwd=second
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Downloading artifacts" not in resumed.stderr  # MLflow's own bar stays off
    (out,) = list((second / "outputs").glob("*/*"))
    assert (out / "metrics.json").read_text() == (uninterrupted / "metrics.json").read_text()
    assert weights(out / "checkpoint.npz") == weights(uninterrupted / "checkpoint.npz")
    run = client.get_run(killed.info.run_id)
    assert run.info.status == "FINISHED" and "toolkit.checkpoint" not in run.data.tags


# --- concurrency and the store -------------------------------------------------------


def test_runs_started_at_the_same_instant_in_a_fresh_folder_are_all_recorded(tmp_path, cache_dir):
    quick = [*SPIRALS, "trainer.epochs=1"]
    processes = [start(tmp_path, *quick) for _ in range(4)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
    found = runs(tmp_path)
    assert len(found) == 4 and all(r.info.status == "FINISHED" for r in found)
    assert len({r.data.tags["toolkit.output_dir"] for r in found}) == 4
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def half_migrated_store(path: Path) -> None:
    """What two processes creating one fresh store at once left (seen without the lock):
    the schema stopped at an intermediate revision, a batch migration's copy left over."""
    import alembic.command
    import sqlalchemy
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base

    url = f"sqlite:///{path}"
    engine = sqlalchemy.create_engine(url)
    Base.metadata.create_all(engine)
    config = _get_alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        alembic.command.upgrade(config, "4465047574b1")
        connection.exec_driver_sql("CREATE TABLE _alembic_tmp_tags (x INTEGER)")
    engine.dispose()


@pytest.mark.slow  # ~40 s; test_store_signals.py covers the schema's creation under signals
def test_a_half_migrated_store_is_named_and_repaired(tmp_path, cache_dir):
    half_migrated_store(tmp_path / "mlflow.db")
    broken = toolkit(*SPIRALS, "trainer.epochs=1", cwd=tmp_path)
    assert broken.returncode == 2
    line = assert_one_error_line(broken.stderr)
    assert "half-migrated" in line and "(table _alembic_tmp_tags left over)" in line
    assert "python -m toolkit.track.repair sqlite:///mlflow.db" in line
    assert not (tmp_path / "outputs").exists()
    repaired = subprocess.run(
        [sys.executable, "-m", "toolkit.track.repair", "sqlite:///mlflow.db"],
        cwd=tmp_path,
        env=clean_env(),
    )
    assert repaired.returncode == 0
    ok = toolkit(*SPIRALS, "trainer.epochs=1", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert [r.info.status for r in runs(tmp_path)] == ["FINISHED"]


def test_an_unreadable_store_file_is_named(tmp_path, cache_dir):
    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)
    broken = toolkit(*SPIRALS, "trainer.epochs=1", cwd=tmp_path)
    assert broken.returncode == 2
    line = assert_one_error_line(broken.stderr)
    assert "not a readable SQLite database" in line
    assert (tmp_path / "mlflow.db").read_bytes() == b"this is not a database" * 100


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB filesystem (tmpfs; needs root, as in CI)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` but ``leave`` bytes."""
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))


def test_a_full_disk_for_the_run_folder_fails_the_run_in_one_line(tmp_path, tiny_disk, cache_dir):
    fill(tiny_disk, leave=300_000)  # room for the first checkpoints, not for all
    args = [*SPIRALS, "model.hidden_sizes=[256,256]", "trainer.epochs=5"]
    full = toolkit(*args, f"hydra.run.dir={tiny_disk}/run", cwd=tmp_path)
    assert full.returncode == 1, full.stderr[-2000:]
    line = assert_one_error_line(full.stderr)
    assert "No space left on device" in line and "(run marked FAILED)" in line
    (run,) = runs(tmp_path)
    assert run.info.status == "FAILED"


@pytest.mark.slow  # ~60 s (300 epochs to fill the store); the run-folder case runs in CI
def test_a_full_disk_under_the_store_keeps_the_metrics_for_the_sync_command(
    tmp_path, tiny_disk, cache_dir
):
    ready = toolkit(*SPIRALS, "trainer.epochs=1", cwd=tmp_path)  # a store with its schema
    assert ready.returncode == 0, ready.stderr[-2000:]
    (tiny_disk / "mlflow.db").write_bytes((tmp_path / "mlflow.db").read_bytes())
    fill(tiny_disk, leave=60_000)  # some epochs of metrics, then the store is full
    uri = f"sqlite:///{tiny_disk}/mlflow.db"
    args = [*SPIRALS, "trainer.epochs=300", "logger.checkpoint_every=0"]
    full = toolkit(*args, f"logger.tracking_uri={uri}", "hydra.run.dir=out", cwd=tmp_path)
    assert full.returncode == 1, full.stderr[-2000:]
    line = assert_one_error_line(full.stderr)
    assert "python -m toolkit.track.sync" in line
    assert (tmp_path / "out" / "unsynced_metrics.jsonl").is_file()
    assert (tmp_path / "out" / "metrics.json").is_file()
    (tiny_disk / "filler").unlink()  # space again: the sync sends the rest and ends the run
    synced = subprocess.run(
        [sys.executable, "-m", "toolkit.track.sync", "out", "--tracking-uri", uri], cwd=tmp_path
    )
    assert synced.returncode == 0
    client = mlflow.MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name("toolkit").experiment_id])
    (run,) = [r for r in found if r.data.tags["toolkit.output_dir"].endswith("/out")]
    assert run.info.status == "FAILED"
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 300


def test_a_signal_while_an_ended_run_shuts_down_changes_nothing(tmp_path, cache_dir):
    """Ctrl-C or SIGTERM after the run has ended (the process still joining threads and
    running exit handlers) exits with the run's own code, quietly."""
    plugins = tmp_path / "slow_exit"
    plugins.mkdir()
    flag = tmp_path / "shutting-down"
    (plugins / "slow_exit.py").write_text(
        "import atexit, pathlib, time\n"
        f"atexit.register(lambda: (pathlib.Path({str(flag)!r}).touch(), time.sleep(3)))\n"
    )
    env = {**clean_env(), "TOOLKIT_PLUGINS": str(plugins)}
    for signum in (signal.SIGINT,):  # SIGTERM and SIGHUP are ignored the same way
        flag.unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "toolkit", *SPIRALS, "trainer.epochs=1"],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        deadline = time.time() + 120
        while not flag.exists() and process.poll() is None:
            assert time.time() < deadline, "the run never reached its exit handlers"
            time.sleep(0.02)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr[-2000:]
        assert "Traceback" not in stderr and "done: " in stderr
    assert [r.info.status for r in runs(tmp_path)] == ["FINISHED"]
