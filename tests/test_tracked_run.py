"""TrackedRun: a run started in the background is the same run as one started in the
foreground, every MLflow call happens on the run's own thread, and a store that fails
while the run starts surfaces at the first call that needs the run."""

import threading

import mlflow
import pytest

from toolkit.registry import ConfigError
from toolkit.track.tracked_run import TrackedRun


@pytest.mark.parametrize("background", [False, True])
def test_a_run_records_params_metrics_and_status(tmp_path, background):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = TrackedRun(uri, "study", "lr=0.1", {"toolkit.note": "x"})
    run.start({"optim.lr": "0.1"}, background=background)
    run.log_metrics({"train/loss": 0.5, "val:acc": 0.9}, step=1)
    (tmp_path / "a.txt").write_text("a")
    run.log_artifact(tmp_path / "a.txt", "files")
    run.end("FINISHED")

    client = mlflow.MlflowClient(uri)
    found = client.get_run(run.run_id)
    assert found.info.status == "FINISHED"
    assert found.info.run_name == "lr=0.1"
    assert found.data.params == {"optim.lr": "0.1"}
    assert found.data.metrics == {"train/loss": 0.5, "val_acc": 0.9}
    assert found.data.tags["toolkit.note"] == "x"
    assert [a.path for a in client.list_artifacts(run.run_id, "files")] == ["files/a.txt"]
    assert mlflow.active_run() is None  # the calling thread never held the run


def test_mlflow_calls_run_on_the_runs_thread(tmp_path, monkeypatch):
    run = TrackedRun(f"sqlite:///{tmp_path / 'mlflow.db'}", "study")
    run.start({}, background=True)
    run.wait()
    threads = []
    monkeypatch.setattr(
        run.mlflow, "log_metrics", lambda *a, **k: threads.append(threading.current_thread())
    )
    run.log_metrics({"x": 1.0})
    run.end("FINISHED")
    assert threads and threads[0] is not threading.current_thread()
    assert threads[0].name.startswith("mlflow-run")


def test_a_background_start_on_a_broken_store_fails_at_the_first_call(tmp_path):
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the store's folder should be")
    run = TrackedRun(f"sqlite:///{blocked / 'mlflow.db'}", "study")
    run.start({}, background=True)  # returns: the error belongs to the run's thread
    with pytest.raises(ConfigError, match="missing or not writable"):
        run.log_metrics({"x": 1.0})
    assert run.run_id is None
    run.end("FAILED", RuntimeError("nothing to record"))  # no run: nothing to mark, no error


def test_a_foreground_start_on_a_broken_store_raises_at_once(tmp_path):
    run = TrackedRun(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}", "study")
    with pytest.raises(ConfigError, match="missing or not writable"):
        run.start({})


class _Run:
    """A stand-in TrackedRun whose metric sends raise ``error``."""

    run_id, tracking_uri = "0" * 32, "sqlite:///mlflow.db"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def log_metrics(self, metrics, step=None) -> None:
        raise self.error


def test_a_send_cut_short_by_a_signal_is_not_a_store_failure(tmp_path):
    """A signal while a metric is on its way must not make the run look offline (its end
    would then be skipped and the run left RUNNING)."""
    from toolkit.track.metrics_log import RunMetrics

    interrupted = RunMetrics(_Run(KeyboardInterrupt()), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        interrupted.log({"loss": 1.0}, step=1)
    assert interrupted.sync_hint is None

    refused = RunMetrics(_Run(OSError("disk full")), tmp_path)
    refused.log({"loss": 1.0}, step=1)
    assert "python -m toolkit.track.sync" in refused.sync_hint
    assert (tmp_path / "unsynced_metrics.jsonl").exists()
