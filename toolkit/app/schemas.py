"""Typed config nodes for the groups that are not registries: ``trainer`` and ``logger``.

They are structured configs (dataclasses in Hydra's ConfigStore, registered by
:func:`toolkit.app.config_store.register_configs`), so a wrong type such as
``trainer.epochs=ten`` or ``logger.log_model=maybe`` fails with one line when Hydra
composes, before any work.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

# OmegaConf reads these annotations at runtime: Optional[...] rather than "X | None".
# ruff: noqa: UP045


@dataclasses.dataclass
class EarlyStoppingConfig:
    """``trainer.early_stopping``: stop when ``monitor`` stops improving."""

    enabled: bool = False
    monitor: str = "val/loss"
    patience: int = 5  # epochs without improvement
    mode: str = "auto"  # min | max | auto (max for accuracies)
    min_delta: float = 0.0
    restore_best: bool = True  # end with the best epoch's weights


@dataclasses.dataclass
class TrainerConfig:
    """``trainer``: how a job trains."""

    epochs: int = 10
    batch_size: int = 64
    progress: bool = True  # a progress bar per epoch
    log_grad_norms: bool = True  # per-layer gradient L2 norms each epoch
    threads: Optional[int] = 1  # BLAS threads per job (null: all cores); README "Threads"
    objective: str = "val/acc"  # the metric a job returns (e.g. to an Optuna sweeper)
    # true | <run dir> | <checkpoint.npz> | <MLflow run id>: continue a run from its last
    # epoch checkpoint; in a sweep, skip the jobs that finished
    resume: Any = False
    early_stopping: EarlyStoppingConfig = dataclasses.field(default_factory=EarlyStoppingConfig)


@dataclasses.dataclass
class LoggerConfig:
    """``logger=mlflow`` (the default): track runs in MLflow. The default store is
    ./mlflow.db (what ``mlflow ui`` opens); point at a server with
    ``logger.tracking_uri=http://HOST:PORT`` (or ``MLFLOW_TRACKING_URI``)."""

    enabled: bool = True
    tracking_uri: Optional[str] = "${oc.env:MLFLOW_TRACKING_URI,sqlite:///mlflow.db}"
    experiment: str = "toolkit"  # one experiment per study
    run_name: Optional[str] = None  # default: what the run varies (its overrides)
    log_model: bool = True  # log the model as an MLflow pyfunc


# logger=none: no tracking; outputs (metrics.json, checkpoint) still go to the run folder
NO_LOGGER = LoggerConfig(enabled=False, tracking_uri=None, log_model=False)

NODES: dict[tuple[str, str], Any] = {
    ("trainer", "default"): TrainerConfig,
    ("logger", "mlflow"): LoggerConfig,
    ("logger", "none"): NO_LOGGER,
}
