"""A run's lifecycle: the one function that owns the order of a job's steps.

    build and validate everything -> open tracking -> fit (or resume) -> test
    -> post-fit analyses -> outputs -> finish

under one failure policy chosen by the caller (:mod:`toolkit.app.policy`). Bad input stops
while building, before the run is tracked or any work starts. SIGTERM and SIGHUP are turned
into exceptions like Ctrl-C, so every ending goes through the policy: FINISHED, FAILED or
KILLED, never RUNNING. It runs in-process with a composed config (tests call it directly).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from toolkit.app import console
from toolkit.app.interrupts import (
    Interrupted,
    as_interrupted,
    handled,
    raise_if_received,
    signals_raise,
)
from toolkit.app.job import Job, build_job
from toolkit.app.outputs import raw_input_example, write_outputs
from toolkit.app.policy import RunContext
from toolkit.app.post_fit import FitResult, check_skips, run_steps
from toolkit.app.post_fit.structure import receptive_field_report
from toolkit.app.resume import LAST_CHECKPOINT, find_checkpoint, find_finished_job
from toolkit.app.tracking import Recorder, open_recorder, run_params
from toolkit.registry import ConfigError
from toolkit.train.callbacks import Callback
from toolkit.train.checkpoint import EpochCheckpoint, resume_training


class TrackingLost(RuntimeError):
    """The tracking store stopped taking the run's records; the results are on disk."""


def run_lifecycle(cfg: DictConfig, ctx: RunContext, policy, background: bool = False):
    """Run the job ``cfg`` describes in ``ctx``; returns its objective metric (or what the
    policy returns for a failure). ``background`` starts the MLflow run while training
    begins (sweep jobs: the parent process already checked the store)."""
    objective = str(cfg.trainer.objective)
    parent = ctx.sweep.parent_run_id if ctx.sweep else None
    recorder = open_recorder(cfg, ctx.name, ctx.output_dir, parent)
    recorder.fallback_params = run_params(cfg, ctx.choices, cfg)
    with signals_raise():
        try:
            try:  # 1. build and validate everything; 2. open tracking
                raise_if_received()  # while Hydra set the job up
                finished = previous_result(cfg, ctx)
                if finished is not None:
                    return policy.skipped(finished, ctx, objective)
                job = build_job(cfg, threads=ctx.threads)
                settings = post_fit_settings(cfg)
                checkpoint = resume_checkpoint(cfg, ctx)
                meta = resume_training(job.trainer, checkpoint) if checkpoint else {}
                params = run_params(job.config, ctx.choices, cfg)
                recorder.start(params, meta.get("mlflow_run_id"), background)
            except ConfigError as err:
                return policy.rejected(err, ctx, recorder)
            if checkpoint:
                console.say(f"resuming from {checkpoint} after epoch {job.trainer.epoch}")
            show_model(job)
            fit(job, recorder, ctx, cfg)  # 3.
            raise_if_received()
            metrics = evaluate_job(job)  # 4.
            steps = run_steps(FitResult(job, metrics), **settings)  # 5.
            metrics.update(steps.metrics)
            recorder.log_metrics(
                {k: v for k, v in metrics.items() if not k.startswith(("train/", "val/"))},
                step=job.trainer.epoch,
            )
            files = write_outputs(
                job, ctx.output_dir, metrics, steps, final_meta(job, ctx, recorder)
            )  # 6.
            model = files.checkpoint if cfg.logger.log_model else None
            recorder.log_outputs(files, model, raw_input_example(job))
            if recorder.sync_hint:
                raise TrackingLost("the tracking store stopped taking the run's records")
        except (KeyboardInterrupt, Interrupted) as err:
            handled()
            return policy.interrupted(as_interrupted(err), ctx, recorder)
        except Exception as err:
            return policy.failed(err, ctx, recorder)
        return policy.finished(metrics, ctx, recorder, objective)  # 7.


def previous_result(cfg: DictConfig, ctx: RunContext):
    """A resumed sweep's job that already finished (its result), else None."""
    if ctx.sweep is None or not cfg.trainer.resume:
        return None
    return find_finished_job(ctx.fingerprint, search_folders(ctx))


def search_folders(ctx: RunContext) -> list[Path]:
    """Where ``trainer.resume=true`` looks: the job's own folder, its sweep's, then the
    default output trees of the working folder."""
    folders = [ctx.output_dir]
    if ctx.sweep is not None:
        folders.append(ctx.output_dir.parent)
    folders += [Path.cwd() / "multirun", Path.cwd() / "outputs"]
    return folders


def resume_checkpoint(cfg: DictConfig, ctx: RunContext) -> Path | None:
    """The checkpoint to continue, checked to be of this config; None to start afresh
    (also for a sweep job of ``trainer.resume=true`` that never saved one)."""
    if not cfg.trainer.resume:
        return None
    fetch = None
    if cfg.logger.enabled:
        from toolkit.track.checkpoint_store import fetch_checkpoint

        def fetch(run_id: str) -> Path:
            return fetch_checkpoint(
                cfg.logger.tracking_uri, run_id, ctx.output_dir / ".resume", LAST_CHECKPOINT
            )

    try:
        return find_checkpoint(cfg.trainer.resume, cfg, search_folders(ctx), fetch)
    except ConfigError:
        if ctx.sweep is not None and cfg.trainer.resume is True:
            return None
        raise


def post_fit_settings(cfg: DictConfig) -> dict:
    """``run_steps`` keywords from the optional ``post_fit`` node (checked)."""
    node = cfg.get("post_fit") or {}
    skip = tuple(node.get("skip") or ())
    check_skips(list(skip))
    return {"figures": bool(node.get("figures", True)), "skip": skip}


def show_model(job: Job) -> None:
    console.say(job.model.summary())
    table = receptive_field_report(job.model)
    if table is not None:
        console.say(table)


class ResumeArtifacts(Callback):
    """Uploads the epoch checkpoint to the run's artifacts every ``every`` epochs (and
    after the last), so the run can be resumed from another machine."""

    def __init__(self, recorder: Recorder, path: Path, every: int) -> None:
        self.recorder, self.path, self.every = recorder, path, every

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.every and (epoch % self.every == 0 or epoch == trainer.epochs):
            self.recorder.log_checkpoint(self.path)


class StopOnSignal(Callback):
    """After each epoch (logged and checkpointed): stop for a signal that was received but
    whose exception never reached the run (see :mod:`toolkit.app.interrupts`)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        raise_if_received()


def fit(job: Job, recorder: Recorder, ctx: RunContext, cfg: DictConfig) -> None:
    """Train (from where a resumed checkpoint left off), logging each epoch before its
    checkpoint is written: a kill in between never loses an epoch's metrics."""
    path = ctx.output_dir / LAST_CHECKPOINT

    def meta() -> dict:
        return final_meta(job, ctx, recorder)

    job.trainer.callbacks += [
        recorder,
        console.EpochLog(file_only=job.trainer.progress),
        EpochCheckpoint(path, meta),
        ResumeArtifacts(recorder, path, int(cfg.logger.get("checkpoint_every", 1) or 0)),
        StopOnSignal(),
    ]
    job.trainer.fit(job.fit_splits.train, job.fit_splits.val)


def fit_and_evaluate(job: Job) -> dict[str, float]:
    """Train and evaluate ``job`` without tracking or checkpoints (the library API, tests);
    the post-fit steps are :func:`toolkit.app.post_fit.run_steps`."""
    job.trainer.fit(job.fit_splits.train, job.fit_splits.val)
    return evaluate_job(job)


def evaluate_job(job: Job) -> dict[str, float]:
    """The last epoch's train/val metrics, the test metrics and the epochs trained."""
    history = job.trainer.history
    final = {k: v[-1] for k, v in history.items() if k.startswith(("train/", "val/")) and v}
    if job.trainer.model is job.model:  # the outputs the post-fit steps read too
        final.update(job.trainer.score(job.test_outputs(), job.fit_splits.test.y, "test"))
    else:  # the trainer's model follows a frozen prefix: it tests on the prefix's outputs
        final.update(job.trainer.evaluate(job.fit_splits.test, prefix="test"))
    final["epochs"] = job.trainer.epoch
    return final


def final_meta(job: Job, ctx: RunContext, recorder: Recorder) -> dict:
    """A checkpoint's metadata: the model and data it needs, and what it was trained
    with (fingerprint and values, so a resume with other settings is refused)."""
    return {
        **job.checkpoint_meta(),
        "fingerprint": ctx.fingerprint,
        "config": ctx.config_values,
        "mlflow_run_id": recorder.run_id,
    }
