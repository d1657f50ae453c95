"""``python -m toolkit -m ... --dry-run``: what a sweep would run, without running it.

The sweep is planned with Hydra's own code: the master config is composed as
``hydra.multirun`` composes it, the basic sweeper's job lists come from
``BasicSweeper.split_arguments`` (its ``params`` first, then the command line, as its
``sweep`` does) and each job's config from the config loader's ``load_sweep_config``, as
the launcher builds it; each job's name is :func:`toolkit.app.run.run_name`, the name
its child run would get. An Optuna search chooses its trials from the results of the
earlier ones, so only its search space and ``n_trials`` are listed.

Then a short timing probe (:mod:`toolkit.app.dry_run_estimate`) extrapolates the wall
time. Nothing is tracked (no MLflow run, no ``mlflow.db``) and no output folder is made:
the flag is handled before Hydra starts, like ``--cfg`` or ``--info``, and it is not a
config key, so it never reaches a run's params or its resume fingerprint.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from toolkit.app.command_line import DRY_RUN as FLAG
from toolkit.app.command_line import CommandLine
from toolkit.app.sweep import swept_keys
from toolkit.registry import ConfigError

BASIC_SWEEPER = "BasicSweeper"
OPTUNA_SWEEPER = "Optuna"


@dataclass
class PlannedJob:
    """One job of the sweep: its number, child-run name, overrides and config."""

    num: int
    name: str
    overrides: list[str]
    config: DictConfig  # with its ``hydra`` node, as the launcher composes it


@dataclass
class SweepPlan:
    """What a sweep would run.

    Attributes:
        kind: ``basic`` (a grid: ``jobs`` lists every job) or ``optuna`` (``jobs`` holds
            one job with the non-searched values, the probe's; ``n_trials`` are run).
        batches: the job numbers of each batch the sweeper hands to the launcher.
    """

    kind: str
    master: DictConfig
    keys: list[str]
    jobs: list[PlannedJob]
    batches: list[list[int]] = field(default_factory=list)
    n_trials: int = 0
    search_space: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.n_trials if self.kind == "optuna" else len(self.jobs)


def target(node: DictConfig, key: str) -> str:
    """The ``_target_`` of ``hydra.<key>`` (the sweeper's or launcher's class)."""
    return str(OmegaConf.select(node, f"hydra.{key}._target_") or "")


def plan_sweep(line: CommandLine, conf_dir: Path) -> SweepPlan:
    """Plan the sweep ``line`` asks for, with Hydra's own sweeper and config loader."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    with initialize_config_dir(str(conf_dir), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config(  # as hydra.main's multirun composes it
            line.config_name,
            [*line.compose_overrides(), "hydra.mode=MULTIRUN"],
            run_mode=RunMode.MULTIRUN,
            with_log_configuration=False,
        )
        loader = hydra.config_loader
        sweeper = target(master, "sweeper")
        arguments = list(OmegaConf.to_container(master.hydra.overrides.task, resolve=False))
        if sweeper.endswith(BASIC_SWEEPER):
            return _grid_plan(master, loader, arguments)
        if OPTUNA_SWEEPER in sweeper:
            return _optuna_plan(master, loader, arguments)
    raise ConfigError(
        f"{FLAG} plans the basic and Optuna sweepers, not hydra.sweeper._target_={sweeper}"
    )


def _sweeper_params(master: DictConfig) -> dict[str, Any]:
    params = OmegaConf.select(master, "hydra.sweeper.params")
    return OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else {}


def _job(loader, master: DictConfig, num: int, overrides: list[str], keys: list[str]):
    """A job's config as the launcher composes it, and its child run's name."""
    from toolkit.app.run import run_name
    from toolkit.track.sweep_records import SweepInfo

    cfg = loader.load_sweep_config(master, overrides)
    with open_dict(cfg):
        cfg.hydra.job.num = num
        cfg.hydra.job.id = num
    sweep = SweepInfo(keys, study=str(cfg.logger.experiment))
    return PlannedJob(num, run_name(cfg, cfg.hydra, sweep), overrides, cfg)


def _grid_plan(master: DictConfig, loader, arguments: list[str]) -> SweepPlan:
    """Hydra's basic sweeper: every combination, in its order and batches."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = _sweeper_params(master)
    max_batch = OmegaConf.select(master, "hydra.sweeper.max_batch_size")
    sweeper = BasicSweeper(max_batch_size=max_batch, params=params)
    parser = OverridesParser.create(config_loader=loader)
    parsed = parser.parse_overrides(sweeper._parse_config() + arguments)
    keys = swept_keys(arguments, params)
    jobs: list[PlannedJob] = []
    batches: list[list[int]] = []
    for batch in BasicSweeper.split_arguments(parsed, sweeper.max_batch_size):
        start = len(jobs)
        jobs += [_job(loader, master, start + i, list(o), keys) for i, o in enumerate(batch)]
        batches.append(list(range(start, len(jobs))))
    return SweepPlan("basic", master, keys, jobs, batches)


def _optuna_plan(master: DictConfig, loader, arguments: list[str]) -> SweepPlan:
    """An Optuna search: its space and trial count; the probe job takes the values the
    config has where the search would sample them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=loader)
    space = _sweeper_params(master)
    fixed: list[str] = []
    for arg in arguments:
        override = parser.parse_override(arg)
        if override.is_sweep_override():
            space[override.get_key_element()] = override.get_value_element_as_str()
        else:
            fixed.append(arg)
    keys = swept_keys(arguments, _sweeper_params(master))
    sweeper = master.hydra.sweeper
    n_trials, per_batch = int(sweeper.n_trials), max(1, int(sweeper.get("n_jobs") or 1))
    batches, start = [], 0
    while start < n_trials:
        batches.append(list(range(start, min(n_trials, start + per_batch))))
        start += per_batch
    probe = _job(loader, master, 0, fixed, keys)
    return SweepPlan("optuna", master, keys, [probe], batches, n_trials, space)


def common_overrides(jobs: list[PlannedJob]) -> list[str]:
    """The overrides every job has (printed once)."""
    first = jobs[0].overrides if jobs else []
    return [o for o in first if all(o in job.overrides for job in jobs)]


def job_lines(plan: SweepPlan) -> list[str]:
    """The listing: the sweep's size, what every job shares, one line per job."""
    launcher = target(plan.master, "launcher").rpartition(".")[2] or "?"
    study = plan.master.logger.experiment
    if plan.kind == "optuna":
        sweeper = plan.master.hydra.sweeper
        lines = [
            f"dry run: Optuna search of {plan.n_trials} trials (hydra.sweeper.n_trials), "
            f"{len(plan.batches[0]) if plan.batches else 0} asked at a time "
            f"(hydra.sweeper.n_jobs), {sweeper.get('direction')} {plan.master.trainer.objective}; "
            f"experiment {study}, {launcher}; nothing is run or recorded",
            "trials are chosen adaptively (each batch from the results of the ones before), "
            "so they cannot be listed; the search space:",
        ]
        lines += [f"  {key}: {value}" for key, value in plan.search_space.items()]
        lines.append("every trial: " + (" ".join(plan.jobs[0].overrides) or "(no overrides)"))
        return lines
    common = common_overrides(plan.jobs)
    width = max(len(job.name) for job in plan.jobs)
    lines = [
        f"dry run: {len(plan.jobs)} jobs (swept: {', '.join(plan.keys) or 'nothing'}); "
        f"experiment {study}, {launcher}; nothing is run or recorded",
        "every job: " + (" ".join(common) or "(no overrides)"),
        f"  #  {'name'.ljust(width)}  overrides",
    ]
    for job in plan.jobs:
        own = [o for o in job.overrides if o not in common]
        lines.append(f"{job.num:>3}  {job.name.ljust(width)}  {' '.join(own) or '-'}")
    return lines


def dry_run(line: CommandLine, conf_dir: Path) -> None:
    """Print the sweep's jobs and an estimate of its wall time (stdout). Raises
    ConfigError with one line for what is wrong (the caller prints ``error:``)."""
    if not line.multirun:
        raise ConfigError(f"{FLAG} lists the jobs of a sweep: add -m (--multirun)")
    from toolkit.app.dry_run_estimate import estimate

    plan = plan_sweep(line, conf_dir)
    for text in job_lines(plan):
        print(text)
    sys.stdout.flush()
    for text in estimate(plan):
        print(text)
