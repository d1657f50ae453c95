"""The command line: ``python -m toolkit +model=mlp optim=adam`` (Hydra).

Plugins load and registry entries become config options before Hydra composes; each
job (also inside launcher worker processes) loads them again, idempotently. Then the
pre-check composes the job once, as Hydra will, so that bad input stops with one
``error:`` line before Hydra creates a folder or a run. ``-m ... --dry-run`` then lists
the sweep's jobs and estimates its wall time instead of running it (toolkit.app.dry_run).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from toolkit.app.command_line import DRY_RUN, parse
from toolkit.app.composition import check_composition
from toolkit.app.config_store import CONF_DIR, register_configs
from toolkit.app.overrides import check_group_overrides
from toolkit.registry import ConfigError, load_plugins

__all__ = ["CONF_DIR", "main"]


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> float | None:
    from toolkit.app.run import run_job

    return run_job(cfg)


def main() -> None:
    """Load plugins, register configs, check the command line, then hand over to Hydra.

    ``--help`` works even when a plugin is broken: it lists what failed to load.
    """
    import toolkit.track  # noqa: F401  (MLflow settings that launcher workers inherit)

    line = parse(sys.argv[1:])
    try:
        line.check_modes()
        load_plugins(strict=not line.help)
        register_configs()
        check_group_overrides(line.overrides, line.config_dirs(CONF_DIR))
        if line.composes_a_job:
            check_composition(line, CONF_DIR)
        if DRY_RUN in line.flags:  # list the sweep's jobs and estimate it; run nothing
            from toolkit.app.dry_run import dry_run

            dry_run(line, CONF_DIR)
            sys.exit(0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    from toolkit.app.interrupts import as_interrupted

    if line.help:
        from toolkit.app.help_speed import share_repository_copies_for_help

        share_repository_copies_for_help()
    try:
        hydra_entry()
    except BaseException as err:  # a signal between or around jobs (Ctrl-C included)
        stop = as_interrupted(err)
        if stop is None:
            raise
        sys.exit(stop.exit_code)  # what the run or sweep was told is already printed
