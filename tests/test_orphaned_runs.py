"""Runs whose process died unseen (SIGKILL, out of memory) end KILLED when the next run
or sweep of their experiment starts on the same machine; runs of live processes, of
other hosts and of other containers are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest

from toolkit.track.names import TAG_PROCESS
from toolkit.track.orphans import end_orphaned_runs, owner_gone, process_tag
from toolkit.track.parent import start_parent_run
from toolkit.track.tracked_run import TrackedRun


def dead_pid() -> int:
    """The pid of a process that has ended (its pid not yet reused, almost surely)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def owner(**changes) -> str:
    return json.dumps({**json.loads(process_tag()), **changes})


def test_this_process_is_alive_and_a_dead_or_reused_pid_is_gone():
    assert not owner_gone(process_tag())
    assert owner_gone(owner(pid=dead_pid()))
    mine = json.loads(process_tag())
    assert owner_gone(owner(start=mine["start"] + 1))  # this pid, but another process
    assert owner_gone(owner(boot="an earlier boot"))


@pytest.mark.parametrize(
    "changes",
    [{"host": "another-node"}, {"pids": "pid:[1]"}],
    ids=["another host", "another container"],
)
def test_processes_it_cannot_see_are_never_called_gone(changes):
    assert not owner_gone(owner(pid=dead_pid(), **changes))


@pytest.mark.parametrize("value", ["", "null", "{not json", '{"host": "x"}', "[1, 2]"])
def test_an_unreadable_owner_is_never_called_gone(value):
    assert not owner_gone(value)


def running_run(uri: str, experiment: str, tag: str | None, name: str = "left", **more: str) -> str:
    client = mlflow.MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    tags = ({TAG_PROCESS: tag} if tag is not None else {}) | more
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


def test_a_new_run_ends_only_the_runs_whose_process_is_gone(tmp_path, caplog):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = TrackedRun(uri, "study", "first").start({})
    first.end("FINISHED")
    gone = running_run(uri, "study", owner(pid=dead_pid()))
    uploaded = running_run(
        uri, "study", owner(pid=dead_pid()), **{"toolkit.checkpoint": "resume/resume_a.npz"}
    )
    alive = running_run(uri, "study", process_tag())
    elsewhere = running_run(uri, "study", owner(host="another-node", pid=dead_pid()))
    untagged = running_run(uri, "study", None)  # an older toolkit's run: nothing known

    with caplog.at_level("WARNING", logger="toolkit.track"):
        second = TrackedRun(uri, "study", "second").start({})
    client = mlflow.MlflowClient(uri)
    ended = client.get_run(gone)
    assert ended.info.status == "KILLED"
    assert ended.data.tags["toolkit.end"] == "killed"
    assert "SIGKILL" in ended.data.tags["failure_reason"]
    assert ended.info.end_time >= ended.info.start_time
    for run_id in (alive, elsewhere, untagged):
        assert client.get_run(run_id).info.status == "RUNNING"
    assert client.get_run(first.run_id).info.status == "FINISHED"  # ended runs unchanged
    (line,) = [r.getMessage() for r in caplog.records if gone in r.getMessage()]
    assert line.startswith("warning: run left") and line.endswith("marked KILLED")  # no resume
    (line,) = [r.getMessage() for r in caplog.records if uploaded in r.getMessage()]
    assert line.endswith(f"resume it with its command and trainer.resume={uploaded}")
    assert client.get_run(uploaded).info.status == "KILLED"
    assert json.loads(client.get_run(second.run_id).data.tags[TAG_PROCESS])["pid"] == os.getpid()
    second.end("FINISHED")


def test_the_warning_shortens_a_long_run_name_and_keeps_its_id(tmp_path, caplog):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    TrackedRun(uri, "study", "first").start({}).end("FINISHED")
    name = ",".join(f"model.option_{i}={i}" for i in range(20))  # a long override list
    gone = running_run(uri, "study", owner(pid=dead_pid()), name=name)
    with caplog.at_level("WARNING", logger="toolkit.track"):
        TrackedRun(uri, "study", "second").start({}).end("FINISHED")
    (line,) = [r.getMessage() for r in caplog.records if gone in r.getMessage()]
    assert line.startswith(f"warning: run {name[:45]}... ({gone}) was left RUNNING")
    assert name not in line
    assert mlflow.MlflowClient(uri).get_run(gone).info.run_name == name  # the run keeps it


def test_a_store_that_fails_while_tidying_leaves_the_new_run_alone():
    class Broken:
        def search_runs(self, *args, **kwargs):
            raise OSError("the store went away")

    assert end_orphaned_runs(Broken(), "0") == []


def test_a_new_sweep_ends_a_sweep_parent_left_running(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _, parent = start_parent_run(uri, "study", ["optim.lr=0.1,0.2"], ["optim.lr"])
    client = mlflow.MlflowClient(uri)
    assert json.loads(client.get_run(parent).data.tags[TAG_PROCESS])["pid"] == os.getpid()
    client.set_tag(parent, TAG_PROCESS, owner(pid=dead_pid()))  # as if SIGKILLed

    _, second = start_parent_run(uri, "study", ["optim.lr=0.1,0.2"], ["optim.lr"])
    assert client.get_run(parent).info.status == "KILLED"
    assert client.get_run(second).info.status == "RUNNING"
