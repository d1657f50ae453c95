"""Run one Hydra job: build it, open its MLflow run, train, record outputs.

A single run stops at bad input with one ``error:`` line and records nothing; its failures
exit non-zero. A job of a sweep records every failure in a FAILED child run and in its
``job_result.json`` and returns, so the other jobs go on (the sweep exits non-zero at the
end, see :mod:`toolkit.app.sweep`).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from toolkit.app.job import (
    Job,
    build_job,
    figures,
    fit_and_test,
    raw_input_example,
    receptive_field_report,
    save_figures,
    write_outputs,
)
from toolkit.app.resume import config_fingerprint, find_checkpoint, find_finished_job
from toolkit.app.sweep import job_name
from toolkit.registry import ConfigError, load_plugins
from toolkit.track.sweep_records import JobResult, SweepInfo
from toolkit.train.checkpoint import EpochCheckpoint, resume_training
from toolkit.train.trainer import DivergenceError


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one ``error:`` line on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_name(cfg: DictConfig, sweep: SweepInfo | None) -> str:
    """The logger's run name, else what this run varies: the swept keys' values in a sweep,
    the command-line overrides otherwise."""
    if cfg.logger.get("run_name"):
        return cfg.logger.run_name
    overrides = list(HydraConfig.get().overrides.task)
    if sweep is not None:
        return job_name(overrides, sweep.swept_keys)
    return ",".join(o.lstrip("+") for o in overrides if not o.startswith("logger.")) or "defaults"


def run_params(config: DictConfig, composed: DictConfig) -> dict[str, str]:
    """The job's resolved ``config`` as dotted params plus the option chosen in each config
    group; a group the job replaced (an autoencoder's loss) is named by its ``name``."""
    from toolkit.track.mlflow_run import flatten_params

    params = flatten_params(OmegaConf.to_container(config, resolve=True))
    for group, option in HydraConfig.get().runtime.choices.items():
        if not group.startswith("hydra") and option is not None:
            node = config.get(group)
            replaced = isinstance(node, DictConfig) and node != composed.get(group)
            params[f"choice/{group}"] = str(node.get("name", option) if replaced else option)
    return params


def open_run(cfg: DictConfig, name: str, sweep: SweepInfo | None, output_dir: Path):
    """The job's MlflowRun (not yet started), a child of the sweep's parent run, or None."""
    if not cfg.logger.enabled:
        return None
    from toolkit.track.mlflow_run import MlflowRun

    tags = {"toolkit.output_dir": str(output_dir.resolve())}
    if sweep and sweep.parent_run_id:
        tags["mlflow.parentRunId"] = sweep.parent_run_id
    return MlflowRun(cfg.logger.tracking_uri, cfg.logger.experiment, name, tags)


def resume_from(cfg: DictConfig, job: Job, fingerprint: str, required: bool) -> dict:
    """Load the checkpoint ``trainer.resume`` names into the job's trainer; returns its
    metadata ({} when not resuming, or when ``required`` is False and none exists)."""
    if not cfg.trainer.resume:
        return {}
    uri = cfg.logger.tracking_uri if cfg.logger.enabled else None
    try:
        source = find_checkpoint(cfg.trainer.resume, fingerprint, Path.cwd(), uri)
    except ConfigError:
        if required:
            raise
        return {}
    meta = resume_training(job.trainer, source)
    print(f"resuming from {source} after epoch {job.trainer.epoch}", file=sys.stderr)
    return meta


def show_model(job: Job) -> None:
    print(job.model.summary(), file=sys.stderr)
    table = receptive_field_report(job)
    if table is not None:
        print(table, file=sys.stderr)


def train_and_record(
    cfg: DictConfig, job: Job, run, output_dir: Path, fingerprint: str
) -> dict[str, float]:
    """Train and test ``job`` (checkpointing every epoch); write its outputs and log them
    to ``run`` (if any)."""

    def checkpoint_meta() -> dict:
        run_id = run.run_id if run is not None else None
        return {**job.checkpoint_meta(), "fingerprint": fingerprint, "mlflow_run_id": run_id}

    tracker = None
    if run is not None:  # log an epoch before checkpointing it: a kill in between
        from toolkit.track.mlflow_run import MlflowMetrics  # must not lose its metrics

        tracker = MlflowMetrics(run, output_dir)
        job.trainer.callbacks.append(tracker)
    job.trainer.callbacks.append(
        EpochCheckpoint(output_dir / "checkpoint_last.npz", checkpoint_meta)
    )
    metrics = fit_and_test(job)
    paths = write_outputs(job, output_dir, metrics)
    figure_paths = save_figures(figures(job), output_dir / "figures")
    if tracker is not None:
        tracker.log({k: v for k, v in metrics.items() if k.startswith("test/")})
        if tracker.sync_hint:  # the server is gone: everything stays in the run directory
            raise TrackingLost(f"{tracker.sync_hint}; outputs are in {output_dir}")
        for key in ("config", "metrics", "receptive_field"):
            if key in paths:
                run.log_artifact(paths[key])
        run.log_artifact(paths["checkpoint"], "checkpoint")
        for path in figure_paths:
            run.log_artifact(path, "figures")
        if cfg.logger.log_model:
            run.log_model(paths["checkpoint"], raw_input_example(job))
    return metrics


class TrackingLost(RuntimeError):
    """The tracking server stopped answering during the run; the results are on disk."""


def done_line(metrics: dict[str, float], output_dir: Path, run, cfg: DictConfig) -> str:
    summary = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
    where = f"; MLflow run {run.run_id} in {cfg.logger.tracking_uri}" if run else ""
    return f"done: {summary}; outputs in {output_dir}{where}"


def run_single(cfg: DictConfig, output_dir: Path, name: str) -> float | None:
    run, fingerprint = None, config_fingerprint(cfg)
    try:
        job = build_job(cfg)
        resumed = resume_from(cfg, job, fingerprint, required=True)
        run = open_run(cfg, name, None, output_dir)
        if run is not None:
            run.start(run_params(job.config, cfg), run_id=resumed.get("mlflow_run_id"))
    except ConfigError as err:
        fail(str(err))
    show_model(job)
    try:
        metrics = train_and_record(cfg, job, run, output_dir, fingerprint)
    except BaseException as err:
        if run is not None:
            run.fail(err)
        if isinstance(err, DivergenceError | ConfigError | TrackingLost):
            fail(f"{err} (run marked FAILED)" if run else str(err), code=1)
        raise
    if run is not None:
        run.finish()
    print(done_line(metrics, output_dir, run, cfg), file=sys.stderr)
    return metrics.get(cfg.trainer.objective)


def run_sweep_job(cfg: DictConfig, output_dir: Path, name: str, sweep: SweepInfo) -> float:
    fingerprint = config_fingerprint(cfg)
    finished = find_finished_job(fingerprint, Path.cwd()) if cfg.trainer.resume else None
    if finished is not None:
        finished.name = name
        finished.save(output_dir)
        print(f"skipped: job {name} already finished (run {finished.run_id})", file=sys.stderr)
        return finished.metrics.get(cfg.trainer.objective, math.nan)
    run = None
    try:
        run = open_run(cfg, name, sweep, output_dir)
        job = build_job(cfg)
        resumed = resume_from(cfg, job, fingerprint, required=False)
        if run is not None:  # MLflow's import and the store open overlap the training
            params = run_params(job.config, cfg)  # e.g. an autoencoder's loss as trained
            run.start(params, run_id=resumed.get("mlflow_run_id"), background=True)
        show_model(job)
        metrics = train_and_record(cfg, job, run, output_dir, fingerprint)
    except Exception as err:  # recorded, not raised: the other jobs go on
        message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        try:
            if run is not None and run.run_id is None:  # failed before its run started
                run.start(run_params(cfg, cfg))
            if run is not None:
                run.fail(err)
        except Exception as tracking_error:  # the result file below is written regardless
            message += f" (MLflow could not record it: {type(tracking_error).__name__})"
        run_id = run.run_id if run is not None else None
        JobResult(name, "FAILED", error=message, run_id=run_id, fingerprint=fingerprint).save(
            output_dir
        )
        print(f"error: job {name}: {message}", file=sys.stderr)
        if "optuna" in str(HydraConfig.get().sweeper.get("_target_", "")):
            raise  # Optuna marks the trial FAIL (it rejects a NaN value) and searches on
        return math.nan
    except BaseException as err:  # interrupted: record it and stop the sweep
        if run is not None:
            run.fail(err)
        raise
    if run is not None:
        run.finish()
    run_id = run.run_id if run is not None else None
    JobResult(name, "FINISHED", metrics, run_id=run_id, fingerprint=fingerprint).save(output_dir)
    print(done_line(metrics, output_dir, run, cfg), file=sys.stderr)
    return metrics.get(cfg.trainer.objective, math.nan)


def run_job(cfg: DictConfig) -> float | None:
    """Train one configuration and record it; returns the objective metric."""
    load_plugins()
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep = SweepInfo.load(Path(hydra_cfg.sweep.dir)) or SweepInfo([], cfg.logger.experiment)
    name = run_name(cfg, sweep)
    if sweep is None:
        return run_single(cfg, output_dir, name)
    return run_sweep_job(cfg, output_dir, name, sweep)
