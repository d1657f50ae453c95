"""The command line: ``python -m toolkit +model=mlp optim=adam`` (Hydra).

Plugins load and registry entries become config options before Hydra composes; each
job (also inside launcher worker processes) loads them again, idempotently.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from toolkit.app.config_store import register_configs
from toolkit.app.overrides import check_composition, check_group_overrides
from toolkit.registry import ConfigError, load_plugins

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one ``error:`` line on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_name(cfg: DictConfig) -> str:
    """The logger's run name, else the command-line overrides (what this run varies)."""
    if cfg.logger.get("run_name"):
        return cfg.logger.run_name
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("logger.")]
    return ",".join(o.lstrip("+") for o in overrides) or "defaults"


def run_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as dotted params plus the option chosen in each config group."""
    from toolkit.track.mlflow_run import flatten_params

    params = flatten_params(OmegaConf.to_container(cfg, resolve=True))
    for group, option in HydraConfig.get().runtime.choices.items():
        if not group.startswith("hydra") and option is not None:
            params[f"choice/{group}"] = str(option)
    return params


def run_job(cfg: DictConfig) -> float | None:
    """Train one configuration and record it; returns the monitored validation metric."""
    from toolkit.app.job import (
        build_job,
        figures,
        fit_and_test,
        raw_input_example,
        receptive_field_report,
        save_figures,
        write_outputs,
    )
    from toolkit.train.trainer import DivergenceError

    load_plugins()
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    run = None
    try:
        job = build_job(cfg)
        if cfg.logger.enabled:
            from toolkit.track.mlflow_run import MlflowRun

            run = MlflowRun(cfg.logger.tracking_uri, cfg.logger.experiment, run_name(cfg))
    except ConfigError as err:
        fail(str(err))
    print(job.model.summary(), file=sys.stderr)
    table = receptive_field_report(job)
    if table is not None:
        print(table, file=sys.stderr)
    try:
        if run is not None:
            from toolkit.track.mlflow_run import MlflowMetrics

            run.start(run_params(cfg))
            job.trainer.callbacks.append(MlflowMetrics(run))
        metrics = fit_and_test(job)
        paths = write_outputs(job, output_dir, metrics)
        figure_paths = save_figures(figures(job), output_dir / "figures")
        if run is not None:
            run.log_metrics({k: v for k, v in metrics.items() if k.startswith("test/")})
            run.log_artifact(paths["config"])
            run.log_artifact(paths["metrics"])
            run.log_artifact(paths["checkpoint"], "checkpoint")
            if "receptive_field" in paths:
                run.log_artifact(paths["receptive_field"])
            for path in figure_paths:
                run.log_artifact(path, "figures")
            if cfg.logger.log_model:
                run.log_model(paths["checkpoint"], raw_input_example(job))
    except BaseException as err:
        if run is not None:
            run.fail(err)
        if isinstance(err, DivergenceError | ConfigError):
            fail(f"{err} (run marked FAILED)" if run else str(err), code=1)
        raise
    if run is not None:
        run.finish()
    summary = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
    where = f"; MLflow run {run.run_id} in {cfg.logger.tracking_uri}" if run else ""
    print(f"done: {summary}; outputs in {output_dir}{where}", file=sys.stderr)
    return metrics.get(cfg.trainer.objective)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> float | None:
    return run_job(cfg)


def main() -> None:
    """Load plugins, register configs, check group overrides, then hand over to Hydra."""
    try:
        load_plugins()
        register_configs()
        check_group_overrides(sys.argv[1:], CONF_DIR)
        if not {"-m", "--multirun", "-h", "--help", "--hydra-help"} & set(sys.argv[1:]):
            check_composition(sys.argv[1:], CONF_DIR)
    except ConfigError as err:
        fail(str(err))
    hydra_entry()
