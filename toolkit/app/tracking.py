"""The app's side of tracking: what a job's run is called, which params and tags it gets,
and one recorder object the lifecycle talks to whether tracking is on or off.

:class:`Recorder` is the only owner of a job's MLflow run: it starts (or continues) it,
logs every metric (epochs through its trainer callback, then test and analyses), the
artifacts and the model, and ends it. With ``logger=none`` the same calls do nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from toolkit.track.ui import relevant_params
from toolkit.train.callbacks import Callback


class Recorder(Callback):
    """A job's tracked run, or nothing (``run=None``, tracking off).

    Args:
        run: a :class:`toolkit.track.tracked_run.TrackedRun`, not yet started, or None.
        output_dir: the run folder (unsent metrics are kept there).
    """

    def __init__(self, run, output_dir: Path) -> None:
        self.run, self.output_dir = run, output_dir
        self.fallback_params: dict[str, str] = {}  # recorded if the job fails before starting
        self.metrics = None
        if run is not None:
            from toolkit.track.metrics_log import RunMetrics

            self.metrics = RunMetrics(run, output_dir)

    @property
    def run_id(self) -> str | None:
        return self.run.run_id if self.run is not None else None

    @property
    def where(self) -> str:
        """`` in <uri> (run <id>)`` for messages, '' without tracking."""
        return f"; MLflow run {self.run_id} in {self.run.tracking_uri}" if self.run_id else ""

    def start(self, params: dict[str, str], run_id: str | None, background: bool) -> None:
        """Start (or continue ``run_id``) with ``params``, those the run does not use
        left out (:func:`toolkit.track.ui.relevant_params`)."""
        if self.run is not None:
            self.run.start(relevant_params(params), run_id=run_id, background=background)

    def ensure_started(self, params: dict[str, str] | None = None) -> None:
        """Start the run if it never started (a sweep job that failed while building
        still leaves a FAILED child); waits for a start in progress."""
        if self.run is None:
            return
        if not self.run.started:
            self.run.start(relevant_params(params or self.fallback_params), background=False)
        self.run.wait()

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.log_metrics(logs, epoch)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.metrics is not None:
            self.metrics.log(metrics, step)

    def log_checkpoint(self, path: Path) -> None:
        """Upload a resume checkpoint (kept locally only if the store fails)."""
        if self.run is not None and not self.sync_hint:
            try:
                self.run.log_checkpoint(path)
            except Exception as err:
                from toolkit.app import console

                console.warn(f"resume checkpoint not uploaded ({type(err).__name__}); it is {path}")

    def log_outputs(self, files, model: Path | None, example) -> None:
        """Log the run's files (:class:`toolkit.app.outputs.RunFiles`): the text files,
        the figures, and the final checkpoint once: inside the pyfunc model if ``model``,
        else under ``checkpoint/``; tag ``toolkit.final_checkpoint`` says where (what
        ``transfer.init_from=<run id>`` reads)."""
        from toolkit.track.names import CHECKPOINT_ARTIFACT, MODEL_CHECKPOINT, TAG_FINAL_CHECKPOINT

        if self.run is None or self.sync_hint:
            return
        for path in files.files:
            self.run.log_artifact(path)
        for path in files.figures:
            self.run.log_artifact(path, "figures")
        if model is not None:
            self.run.log_model(model, example)
        else:
            self.run.log_artifact(files.checkpoint, CHECKPOINT_ARTIFACT.partition("/")[0])
        where = MODEL_CHECKPOINT if model is not None else CHECKPOINT_ARTIFACT
        self.run.set_tags({TAG_FINAL_CHECKPOINT: where})

    @property
    def sync_hint(self) -> str | None:
        """How to send what the store did not take, or None."""
        return self.metrics.sync_hint if self.metrics is not None else None

    def end(self, status: str, error: BaseException | None = None, how: str = "") -> bool:
        """End the run; if the store does not take it, keep the end with the unsent
        metrics for the sync command. Returns whether the store took it."""
        if self.run is None or self.run.ended:
            return True
        if not self.run.started:  # never started (failed while building): nothing to end
            return True
        ok = self.run.end(status, error, how) if not self.sync_hint else False
        if not ok and self.metrics is not None:
            self.metrics.keep_end(status)
        return ok


def open_recorder(
    cfg: DictConfig, name: str, output_dir: Path, parent_run_id: str | None
) -> Recorder:
    """The job's recorder (its run not started yet)."""
    if not cfg.logger.enabled:
        return Recorder(None, output_dir)
    from toolkit.track.names import TAG_OUTPUT_DIR, TAG_PARENT
    from toolkit.track.tracked_run import TrackedRun
    from toolkit.track.ui import experiment_tags

    tags = {TAG_OUTPUT_DIR: str(output_dir.resolve())}
    if parent_run_id:
        tags[TAG_PARENT] = parent_run_id
    run = TrackedRun(cfg.logger.tracking_uri, cfg.logger.experiment, name, tags, experiment_tags())
    return Recorder(run, output_dir)


def run_params(config: DictConfig, choices: dict[str, Any], composed: DictConfig) -> dict[str, str]:
    """The job's resolved ``config`` as dotted params plus the option chosen in each config
    group; a group the job replaced (an autoencoder's loss) is named by its ``name``."""
    from toolkit.track.names import flatten_params

    params = flatten_params(OmegaConf.to_container(config, resolve=True))
    for group, option in choices.items():
        if not group.startswith("hydra") and option is not None:
            node = config.get(group)
            replaced = isinstance(node, DictConfig) and node != composed.get(group)
            params[f"choice/{group}"] = str(node.get("name", option) if replaced else option)
    return params
