"""The command line: ``python -m toolkit +model=mlp optim=adam`` (Hydra).

Plugins load and registry entries become config options before Hydra composes; each
job (also inside launcher worker processes) loads them again, idempotently.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from toolkit.app.config_store import register_configs
from toolkit.app.overrides import check_composition, check_group_overrides
from toolkit.registry import ConfigError, load_plugins

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
_MULTIRUN = {"-m", "--multirun"}
_NO_PRECHECK = {"-h", "--help", "--hydra-help", "--info", "-c", "--cfg"}


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> float | None:
    from toolkit.app.run import run_job

    return run_job(cfg)


def main() -> None:
    """Load plugins, register configs, check the overrides, then hand over to Hydra."""
    import toolkit.track  # noqa: F401  (MLflow settings that launcher workers inherit)

    try:
        load_plugins()
        register_configs()
        check_group_overrides(sys.argv[1:], CONF_DIR)
        if not _NO_PRECHECK & set(sys.argv[1:]):
            check_composition(sys.argv[1:], CONF_DIR, multirun=bool(_MULTIRUN & set(sys.argv)))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    hydra_entry()
