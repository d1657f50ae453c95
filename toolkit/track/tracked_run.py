"""One MLflow run, owned by one object: params, metrics, artifacts, resume checkpoints,
the pyfunc model and how the run ended.

Every MLflow call runs, in order, on the run's own thread (MLflow's active run is per
thread), so :meth:`TrackedRun.start` can return at once in sweep jobs: training begins
while MLflow is imported (~1.5 s) and the store opened; the first call that needs the run
waits for it. MLflow is imported there, never at toolkit import time.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

from toolkit.registry import ConfigError
from toolkit.track.names import (
    ERROR_FILE,
    RESUME_FOLDER,
    STALE_ON_RESUME,
    TAG_CHECKPOINT,
    TAG_END,
    TAG_FAILURE,
    TAG_PARENT,
    TAG_PROCESS,
    clean_key,
)
from toolkit.track.orphans import end_orphaned_runs, process_tag
from toolkit.track.store import open_experiment, store_error, use_tracking_uri

END_TIMEOUT_S = 30.0  # how long ending a run may wait for the store (e.g. after a signal)
CHECKPOINT_SLOTS = ("resume_a.npz", "resume_b.npz")


class TrackedRun:
    """One tracked run.

    Args:
        tracking_uri: where MLflow stores runs (``sqlite:///mlflow.db``, ``http://host:port``).
        experiment: experiment name (one per study).
        run_name: shown in the MLflow UI; says what varies.
        tags: run tags set when it starts (or continues).
        experiment_tags: tags of the experiment if this run creates it.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        experiment_tags: dict[str, str] | None = None,
    ) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.run_name, self.tags = run_name, tags or {}
        self.experiment_tags = experiment_tags
        self._run_id: str | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-run")
        self._started: Future | None = None
        self._slot = 0
        self.ended: str | None = None

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (the run may still be starting)."""
        return self._started is not None

    @property
    def run_id(self) -> str | None:
        """The run's id; waits for a start in progress. None if it never started."""
        if self._started is not None:
            futures_wait([self._started])
        return self._run_id

    def start(
        self, params: dict[str, str], run_id: str | None = None, background: bool = False
    ) -> TrackedRun:
        """Start a new run logging ``params``, or continue run ``run_id`` (a resumed
        training: its params are recorded, its stale failure tags are removed). Raises
        ConfigError when the store is unusable; with ``background=True`` it returns at once
        and the error is raised by the first call that needs the run."""
        self._started = self._thread.submit(self._start, params, run_id)
        if not background:
            self.wait()
        return self

    def wait(self) -> None:
        """Block until the run exists; raise what stopped it from starting."""
        if self._started is not None:
            self._started.result()

    def _start(self, params: dict[str, str], run_id: str | None) -> None:
        experiment_id = open_experiment(self.tracking_uri, self.experiment, self.experiment_tags)
        import mlflow

        use_tracking_uri(self.tracking_uri)
        self.mlflow = mlflow
        self.tags[TAG_PROCESS] = process_tag()  # ends this run KILLED if it dies unseen
        if TAG_PARENT not in self.tags:  # a sweep's parent run tidied as the sweep started
            end_orphaned_runs(mlflow.MlflowClient(self.tracking_uri), experiment_id, keep=run_id)
        if run_id is not None:
            try:
                self._run_id = mlflow.start_run(run_id=run_id, tags=self.tags).info.run_id
            except Exception as err:
                raise ConfigError(
                    f"cannot continue MLflow run {run_id} at {self.tracking_uri} ({err})"
                ) from None
            client = mlflow.MlflowClient(self.tracking_uri)
            stale = set(client.get_run(run_id).data.tags) & set(STALE_ON_RESUME)
            for tag in stale:
                client.delete_tag(run_id, tag)
            newest = client.get_run(run_id).data.tags.get(TAG_CHECKPOINT, "")
            self._slot = int(newest.endswith(CHECKPOINT_SLOTS[0]))  # write the other slot
            return
        try:
            run = mlflow.start_run(
                experiment_id=experiment_id, run_name=self.run_name, tags=self.tags
            )
        except Exception as err:
            raise store_error(self.tracking_uri, err) from None
        self._run_id = run.info.run_id  # set first: a failure below still ends this run
        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[i : i + 100]))

    def _call(self, function: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``function`` on the run's thread once the run exists; return its result."""
        self.wait()
        return self._thread.submit(function).result(timeout=timeout)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {clean_key(k): float(v) for k, v in metrics.items()}
        self._call(lambda: self.mlflow.log_metrics(clean, step=step))

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        self._call(lambda: self.mlflow.log_artifact(str(path), artifact_path=folder))

    def set_tags(self, tags: dict[str, str]) -> None:
        self._call(lambda: self.mlflow.set_tags(tags))

    def log_checkpoint(self, path: Path) -> None:
        """Upload a resume checkpoint so that a reader always finds a complete one: it goes
        to the slot the tag does not point at, then the tag moves to it (two files at
        most, whatever the number of epochs)."""
        slot = CHECKPOINT_SLOTS[self._slot]

        def upload() -> None:
            with tempfile.TemporaryDirectory() as folder:
                copy = Path(folder) / slot
                copy.write_bytes(Path(path).read_bytes())
                self.mlflow.log_artifact(str(copy), artifact_path=RESUME_FOLDER)
            self.mlflow.set_tag(TAG_CHECKPOINT, f"{RESUME_FOLDER}/{slot}")

        self._call(upload)
        self._slot = 1 - self._slot

    def log_model(self, checkpoint: Path, input_example) -> None:
        """Log the checkpoint as an MLflow pyfunc model named ``model``."""

        def log() -> None:  # imports MLflow's model code on the run's thread too
            from toolkit.track.pyfunc import log_pyfunc_model

            log_pyfunc_model(checkpoint, input_example)

        self._call(log)

    def end(self, status: str, error: BaseException | None = None, how: str = "") -> bool:
        """End the run as FINISHED, FAILED or KILLED; a failure or interruption also gets a
        one-line ``failure_reason`` tag and its traceback as ``error.txt``. Best effort and
        bounded in time (the store may be what failed); returns whether the store took it."""
        self.ended = status
        ok = True  # a run that never came to exist has nothing to end
        if self.run_id is not None:  # also when the start failed after creating the run
            try:
                self._thread.submit(self._end, status, error, how).result(END_TIMEOUT_S)
            except (Exception, FutureTimeout):
                ok = False
        self._thread.shutdown(wait=False, cancel_futures=True)
        return ok

    def _end(self, status: str, error: BaseException | None, how: str) -> None:
        tags = {TAG_END: how or status.lower()}
        if error is not None:
            tags[TAG_FAILURE] = f"{type(error).__name__}: {error}".splitlines()[0][:5000]
            text = "".join(traceback.format_exception(error))
            self.mlflow.log_text(text, ERROR_FILE)
        self.mlflow.set_tags(tags)
        if status == "FINISHED":  # the resume checkpoints have served; the model stays
            from toolkit.track.checkpoint_store import drop_checkpoints

            drop_checkpoints(self.tracking_uri, self._run_id)
        self.mlflow.end_run(status=status)
