"""The Hydra task function: one job of a single run or a sweep, handed to the lifecycle
with the failure policy that fits it (see :mod:`toolkit.app.lifecycle`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from toolkit.app import console
from toolkit.app.lifecycle import run_lifecycle
from toolkit.app.policy import RunContext, SingleRunPolicy, SweepJobPolicy
from toolkit.app.resume import config_fingerprint, training_values
from toolkit.app.sweep import job_name
from toolkit.registry import load_plugins
from toolkit.track.sweep_records import SweepInfo


def run_name(cfg: DictConfig, hydra_cfg, sweep: SweepInfo | None) -> str:
    """The logger's run name, else what this run varies: the swept keys' values in a sweep,
    the command-line overrides otherwise."""
    if cfg.logger.get("run_name"):
        return cfg.logger.run_name
    overrides = list(hydra_cfg.overrides.task)
    if sweep is not None:
        return job_name(cfg, dict(hydra_cfg.runtime.choices), sweep.swept_keys)
    return ",".join(o.lstrip("+") for o in overrides if not o.startswith("logger.")) or "defaults"


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(hydra_cfg) -> int:
    """Engine threads where ``trainer.threads`` is null: all cores for a single run or for
    jobs that run one after another; cores / parallel jobs under a parallel launcher."""
    cores = available_cores()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return cores
    launcher = hydra_cfg.launcher
    parallel = launcher.get("n_jobs") or 1
    if "cpus_per_task" in launcher and launcher.cpus_per_task:  # submitit: the allocation
        return min(cores, int(launcher.cpus_per_task))
    if parallel < 0:  # joblib: -1 means one job per core
        return 1
    return max(1, cores // int(parallel))


def job_context(cfg: DictConfig) -> RunContext:
    """The RunContext of the Hydra job being run."""
    hydra_cfg = HydraConfig.get()
    sweep = None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep = SweepInfo.load(Path(hydra_cfg.sweep.dir)) or SweepInfo([], cfg.logger.experiment)
    name = run_name(cfg, hydra_cfg, sweep)
    parallel = sweep is not None and "joblib" in str(hydra_cfg.launcher.get("_target_", ""))
    if parallel:
        console.set_label(f"{hydra_cfg.job.num}: {name}")
    return RunContext(
        output_dir=Path(hydra_cfg.runtime.output_dir),
        name=name,
        argv=sys.argv[1:],
        sweep=sweep,
        optuna="optuna" in str(hydra_cfg.sweeper.get("_target_", "")),
        choices=dict(hydra_cfg.runtime.choices),
        threads=threads_per_job(hydra_cfg),
        fingerprint=config_fingerprint(cfg),
        config_values=training_values(cfg),
    )


def run_job(cfg: DictConfig) -> float | None:
    """Train one configuration and record it; returns the objective metric."""
    load_plugins()
    ctx = job_context(cfg)
    if ctx.sweep is None:
        return run_lifecycle(cfg, ctx, SingleRunPolicy())
    return run_lifecycle(cfg, ctx, SweepJobPolicy(optuna=ctx.optuna), background=True)
