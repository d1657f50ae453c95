"""One MLflow run: params, per-epoch metrics, figures, checkpoint, pyfunc model, status.

MLflow is imported when a run starts, never at toolkit import time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

from toolkit.registry import ConfigError
from toolkit.track.sweep_records import JobResult, SweepInfo, best_result
from toolkit.train.callbacks import Callback

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /")


def clean_key(key: str) -> str:
    """An MLflow-safe metric/param key: unsupported characters become ``_``."""
    return "".join(c if c in _KEY_CHARS else "_" for c in key)


def flatten_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> ``{"optim.lr": "0.001", ...}``; lists become JSON strings, values
    are cut to MLflow's 6000 characters."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            flat[clean_key(name)] = text[:MAX_PARAM_LENGTH]
    return flat


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail at once, naming the URI, when the tracking store cannot work: a SQLite file in
    a folder that is missing or not writable, or a server (http/https) that does not
    answer ``/health`` (instead of after MLflow's minutes of retries)."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).absolute().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError(
                f"MLflow store {tracking_uri}: folder {folder} is missing or not writable; "
                "set logger.tracking_uri=sqlite:///<writable folder>/mlflow.db"
            )
        return
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    url = f"{tracking_uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            pass
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(
            f"MLflow tracking server {tracking_uri} is unreachable ({reason}); start it "
            "(mlflow server ...) or set logger.tracking_uri"
        ) from None


def open_experiment(tracking_uri: str, name: str) -> str:
    """Import MLflow, point it at ``tracking_uri`` and return the id of experiment ``name``
    (created if missing). Raises ConfigError, naming the URI, when the store is unusable."""
    import mlflow

    # A server that drops mid-run should cost seconds per call, not MLflow's minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    check_reachable(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name)
        except Exception:  # created concurrently by another job
            return client.get_experiment_by_name(name).experiment_id
    except Exception as err:  # any backend failure: name the URI, stop before training
        raise ConfigError(
            f"cannot use MLflow tracking at {tracking_uri} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); start the server or set "
            "logger.tracking_uri"
        ) from None


class MlflowRun:
    """One tracked run. Every MLflow call it makes runs, in order, on the run's own thread
    (MLflow's active run is per thread), so :meth:`start` can return at once: training
    begins while MLflow is imported (~1.5 s) and the store opened (~1 s for SQLite); the
    first call that needs the run waits for it.

    Args:
        tracking_uri: where MLflow stores runs (``sqlite:///mlflow.db``, ``http://host:port``).
        experiment: experiment name (one per study).
        run_name: shown in the MLflow UI; says what varies.
        tags: extra run tags.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.run_name, self.tags = run_name, tags or {}
        self._run_id: str | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-run")
        self._started: Future | None = None

    @property
    def run_id(self) -> str | None:
        """The run's id; waits for a start in progress. None if it never started."""
        if self._started is not None:
            futures_wait([self._started])
        return self._run_id

    def start(
        self, params: dict[str, str], run_id: str | None = None, background: bool = False
    ) -> MlflowRun:
        """Start a new run logging ``params``, or continue run ``run_id`` (a resumed
        training, whose params are already recorded). Raises ConfigError when the store is
        unusable; with ``background=True`` it returns at once and the error is raised by
        the first call that needs the run instead."""
        self._started = self._thread.submit(self._start, params, run_id)
        if not background:
            self.wait()
        return self

    def wait(self) -> None:
        """Block until the run exists; raise what stopped it from starting."""
        if self._started is not None:
            self._started.result()

    def _start(self, params: dict[str, str], run_id: str | None) -> None:
        experiment_id = open_experiment(self.tracking_uri, self.experiment)
        import mlflow

        self.mlflow = mlflow
        if run_id is not None:
            try:
                self._run_id = mlflow.start_run(run_id=run_id, tags=self.tags).info.run_id
            except Exception as err:
                raise ConfigError(
                    f"cannot continue MLflow run {run_id} at {self.tracking_uri} ({err})"
                ) from None
            return
        run = mlflow.start_run(experiment_id=experiment_id, run_name=self.run_name, tags=self.tags)
        self._run_id = run.info.run_id  # set first: a failure below still ends this run
        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[i : i + 100]))

    def _call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the run's thread once the run exists; return its result."""
        self.wait()
        return self._thread.submit(function).result()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {clean_key(k): float(v) for k, v in metrics.items()}
        self._call(lambda: self.mlflow.log_metrics(clean, step=step))

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        self._call(lambda: self.mlflow.log_artifact(str(path), artifact_path=folder))

    def log_model(self, checkpoint: Path, input_example) -> None:
        """Log the checkpoint as an MLflow pyfunc model named ``model``."""

        def log() -> None:  # imports MLflow's model code on the run's thread too
            from toolkit.track.pyfunc import log_pyfunc_model

            log_pyfunc_model(checkpoint, input_example)

        self._call(log)

    def fail(self, error: BaseException) -> None:
        """Mark the run FAILED with the reason as a tag and the traceback as an artifact
        (best effort: the tracking store may be what failed)."""
        if self.run_id is not None:  # also when the start failed after creating the run
            with contextlib.suppress(Exception):  # the store may be gone; the run dir keeps all
                self._thread.submit(self._record_failure, error).result()
        self._thread.shutdown()

    def _record_failure(self, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        self.mlflow.set_tag("failure_reason", message[:5000])
        text = "".join(traceback.format_exception(error))
        self.mlflow.log_text(text, "error.txt")
        self.mlflow.end_run(status="FAILED")

    def finish(self) -> None:
        if self.run_id is not None:
            self._call(lambda: self.mlflow.end_run(status="FINISHED"))
        self._thread.shutdown()


UNSYNCED = "unsynced_metrics.jsonl"


class MlflowMetrics(Callback):
    """Logs each epoch's metrics to the run, with the epoch as the step.

    If the tracking server stops answering, training goes on: the metrics are appended to
    ``<run dir>/unsynced_metrics.jsonl``, retried after each later epoch, and what is
    still unsent at the end can be sent with ``python -m toolkit.track.sync <run dir>``.
    """

    def __init__(self, run: MlflowRun, run_dir: Path) -> None:
        self.run, self.pending_file = run, Path(run_dir) / UNSYNCED
        self.pending: list[dict[str, Any]] = []

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.log(logs, epoch)

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Send ``metrics`` (and anything pending); keep them on disk if that fails."""
        self.pending.append({"run_id": self.run.run_id, "step": step, "metrics": metrics})
        try:
            while self.pending:
                record = self.pending[0]
                self.run.log_metrics(record["metrics"], step=record["step"])
                self.pending.pop(0)
        except Exception as err:
            if not self.pending_file.exists():
                print(
                    f"warning: MLflow at {self.run.tracking_uri} failed ({type(err).__name__}); "
                    f"training goes on, metrics are kept in {self.pending_file}",
                    file=sys.stderr,
                )
        self._write_pending()

    def _write_pending(self) -> None:
        if self.pending:
            self.pending_file.write_text("".join(json.dumps(r) + "\n" for r in self.pending))
        elif self.pending_file.exists():
            self.pending_file.unlink()

    @property
    def sync_hint(self) -> str | None:
        """How to send what could not be sent, or None when everything arrived."""
        if not self.pending:
            return None
        return (
            f"{len(self.pending)} metric records could not be sent to {self.run.tracking_uri}; "
            f"send them with: python -m toolkit.track.sync {self.pending_file.parent}"
        )


def sync_pending(run_dir: Path, tracking_uri: str | None = None) -> int:
    """Send ``unsynced_metrics.jsonl`` of ``run_dir`` to its runs; returns records sent."""
    import mlflow

    path = Path(run_dir) / UNSYNCED
    if not path.is_file():
        return 0
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    client = mlflow.MlflowClient(tracking_uri)
    for record in records:
        for key, value in record["metrics"].items():
            client.log_metric(record["run_id"], clean_key(key), float(value), step=record["step"])
    path.unlink()
    return len(records)


def start_parent_run(
    tracking_uri: str, experiment: str, overrides: list[str], swept_keys: list[str]
) -> tuple[str, str]:
    """Create the experiment (and the store's schema) and a RUNNING parent run for a sweep,
    without making it the active run of this process. Returns (experiment id, run id)."""
    experiment_id = open_experiment(tracking_uri, experiment)  # ConfigError if unusable
    import mlflow

    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"sweep {','.join(swept_keys) or 'jobs'}",
        tags={"toolkit.sweep": "parent", "toolkit.swept_keys": json.dumps(swept_keys)},
    )
    params = {clean_key(f"sweep/{i}"): o[:MAX_PARAM_LENGTH] for i, o in enumerate(overrides)}
    if params:
        from mlflow.entities import Param

        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return experiment_id, run.info.run_id


def reuse_parent_run(
    tracking_uri: str, experiment: str, swept_keys: list[str]
) -> tuple[str, str] | None:
    """The newest parent run of ``experiment`` that swept the same keys, set RUNNING again
    (a resumed sweep); None if there is none. Returns (experiment id, run id)."""
    experiment_id = open_experiment(tracking_uri, experiment)
    import mlflow

    client = mlflow.MlflowClient()
    parents = client.search_runs(
        [experiment_id],
        filter_string="tags.`toolkit.sweep` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )
    for parent in parents:
        if json.loads(parent.data.tags.get("toolkit.swept_keys", "[]")) == swept_keys:
            client.update_run(parent.info.run_id, status="RUNNING")
            return experiment_id, parent.info.run_id
    return None


def summary_table(results: list[JobResult], objective: str) -> str:
    """A Markdown table of the sweep's jobs: name, status, objective, test metrics."""
    columns = list(dict.fromkeys([objective, "test/acc", "test/loss"]))
    lines = [
        "| job | status | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for result in results:
        values = [f"{result.metrics[c]:.4f}" if c in result.metrics else "" for c in columns]
        lines.append(f"| {result.name} | {result.status} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def finish_parent_run(
    info: SweepInfo, results: list[JobResult], objective: str, sweep_dir: Path
) -> None:
    """Record the sweep's outcome on its parent run and end it (FAILED if any job failed)."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    client = mlflow.MlflowClient(info.tracking_uri)
    run_id = info.parent_run_id
    now = int(time.time() * 1000)
    failed = sum(r.status != "FINISHED" for r in results)
    metrics = {"children/finished": len(results) - failed, "children/failed": failed}
    tags = {"toolkit.sweep_end": "completed"}  # (a resumed sweep said "interrupted")
    best = best_result(results, objective)
    if best is not None:
        metrics.update({f"best/{k}": v for k, v in best.metrics.items()})
        tags |= {"best_child_run_id": best.run_id or "", "best_child": best.name}
    client.log_batch(
        run_id,
        metrics=[Metric(clean_key(k), float(v), now, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    summary = sweep_dir / "summary.md"
    summary.write_text(summary_table(results, objective) + "\n")
    client.log_artifact(run_id, str(summary))
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def end_interrupted_parent_run(info: SweepInfo) -> None:
    """Mark the parent run of a sweep that stopped before its end KILLED (best effort, at
    exit); re-running the sweep with ``trainer.resume=true`` sets it RUNNING again."""
    with contextlib.suppress(Exception):  # at exit, with the store possibly gone
        import mlflow

        client = mlflow.MlflowClient(info.tracking_uri)
        client.set_tag(info.parent_run_id, "toolkit.sweep_end", "interrupted")
        client.set_terminated(info.parent_run_id, status="KILLED")
        print(f"sweep interrupted: parent run {info.parent_run_id} marked KILLED", file=sys.stderr)
