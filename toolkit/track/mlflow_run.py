"""One MLflow run: params, per-epoch metrics, figures, checkpoint, pyfunc model, status.

MLflow is imported when a run starts, never at toolkit import time.
"""

from __future__ import annotations

import json
import os
import time
import traceback
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


class MlflowRun:
    """A context for one tracked run.

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
        import mlflow

        self.mlflow = mlflow
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.run_name, self.tags = run_name, tags or {}
        self.run_id: str | None = None
        check_reachable(tracking_uri)
        mlflow.set_tracking_uri(tracking_uri)
        try:
            self.experiment_id = self._experiment_id(experiment)
        except Exception as err:  # any backend failure: name the URI, stop before training
            raise ConfigError(
                f"cannot use MLflow tracking at {tracking_uri} ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); start the server or set "
                "logger.tracking_uri"
            ) from None

    def _experiment_id(self, name: str) -> str:
        client = self.mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name)
        except Exception:  # created concurrently by another job
            return client.get_experiment_by_name(name).experiment_id

    def start(self, params: dict[str, str], run_id: str | None = None) -> MlflowRun:
        """Start a new run logging ``params``, or continue run ``run_id`` (a resumed
        training, whose params are already recorded)."""
        if run_id is not None:
            try:
                run = self.mlflow.start_run(run_id=run_id)
            except Exception as err:
                raise ConfigError(
                    f"cannot continue MLflow run {run_id} at {self.tracking_uri} ({err})"
                ) from None
        else:
            run = self.mlflow.start_run(experiment_id=self.experiment_id, run_name=self.run_name)
            items = list(params.items())
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                self.mlflow.log_params(dict(items[i : i + 100]))
        self.run_id = run.info.run_id
        self.mlflow.set_tags(self.tags)
        return self

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.mlflow.log_metrics({clean_key(k): float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        self.mlflow.log_artifact(str(path), artifact_path=folder)

    def log_model(self, checkpoint: Path, input_example) -> None:
        """Log the checkpoint as an MLflow pyfunc model named ``model``."""
        from toolkit.track.pyfunc import log_pyfunc_model

        log_pyfunc_model(checkpoint, input_example)

    def fail(self, error: BaseException) -> None:
        """Mark the run FAILED with the reason as a tag and the traceback as an artifact."""
        if self.run_id is None:
            return
        message = f"{type(error).__name__}: {error}"
        self.mlflow.set_tag("failure_reason", message[:5000])
        text = "".join(traceback.format_exception(error))
        self.mlflow.log_text(text, "error.txt")
        self.mlflow.end_run(status="FAILED")

    def finish(self) -> None:
        if self.run_id is not None:
            self.mlflow.end_run(status="FINISHED")


class MlflowMetrics(Callback):
    """Logs each epoch's metrics to the active run, with the epoch as the step."""

    def __init__(self, run: MlflowRun) -> None:
        self.run = run

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.run.log_metrics(logs, step=epoch)


def start_parent_run(
    tracking_uri: str, experiment: str, overrides: list[str], swept_keys: list[str]
) -> tuple[str, str]:
    """Create the experiment (and the store's schema) and a RUNNING parent run for a sweep,
    without making it the active run of this process. Returns (experiment id, run id)."""
    tracker = MlflowRun(tracking_uri, experiment)  # ConfigError if the store is unusable
    client = tracker.mlflow.MlflowClient()
    run = client.create_run(
        tracker.experiment_id,
        run_name=f"sweep {','.join(swept_keys) or 'jobs'}",
        tags={"toolkit.sweep": "parent", "toolkit.swept_keys": json.dumps(swept_keys)},
    )
    params = {clean_key(f"sweep/{i}"): o[:MAX_PARAM_LENGTH] for i, o in enumerate(overrides)}
    if params:
        from mlflow.entities import Param

        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return tracker.experiment_id, run.info.run_id


def reuse_parent_run(
    tracking_uri: str, experiment: str, swept_keys: list[str]
) -> tuple[str, str] | None:
    """The newest parent run of ``experiment`` that swept the same keys, set RUNNING again
    (a resumed sweep); None if there is none. Returns (experiment id, run id)."""
    tracker = MlflowRun(tracking_uri, experiment)
    client = tracker.mlflow.MlflowClient()
    parents = client.search_runs(
        [tracker.experiment_id],
        filter_string="tags.`toolkit.sweep` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )
    for parent in parents:
        if json.loads(parent.data.tags.get("toolkit.swept_keys", "[]")) == swept_keys:
            client.update_run(parent.info.run_id, status="RUNNING")
            return tracker.experiment_id, parent.info.run_id
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
    tags = {}
    best = best_result(results, objective)
    if best is not None:
        metrics.update({f"best/{k}": v for k, v in best.metrics.items()})
        tags = {"best_child_run_id": best.run_id or "", "best_child": best.name}
    client.log_batch(
        run_id,
        metrics=[Metric(clean_key(k), float(v), now, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    summary = sweep_dir / "summary.md"
    summary.write_text(summary_table(results, objective) + "\n")
    client.log_artifact(run_id, str(summary))
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
