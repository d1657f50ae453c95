"""Typed config nodes for the groups that are not registries: ``trainer``, ``logger``,
``split``, ``augment`` and ``probe``, and their presets.

Every default lives once, in the component that uses it: the trainer's in
``Trainer.__init__``, early stopping's in ``EarlyStopping.__init__``, the split fractions
in ``split_dataset``, the augmentation probability in ``build_augmenter``, the probe's in
``ProbeSettings``; the nodes here are generated from them. They are structured configs
(stored in Hydra's ConfigStore by :func:`toolkit.app.config_store.register_configs`), so
a wrong type such as ``trainer.epochs=ten``, ``probe.lr=fast`` or ``split.val=half`` fails
with one line when Hydra composes, before any work; :mod:`toolkit.app.validate` checks ranges.

Presets of one component are instances of its node with some values changed, declared
here (``split=70-30``, ``augment=light``, ``logger=none``) or, for registry entries, beside
the component (``optimizers.preset("sgd_momentum", "sgd", momentum=0.9)``). YAML files
under ``conf/`` are only for presets that combine components: model recipes and studies.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from toolkit.analysis.latent_probe import ProbeSettings
from toolkit.app.signature_nodes import node_from_signature
from toolkit.app.transfer_settings import CONFIG_NODES as TRANSFER_NODES
from toolkit.data import build_augmenter, split_dataset
from toolkit.train import EarlyStopping, Trainer

# OmegaConf reads these annotations at runtime: Optional[...] rather than "X | None".
# ruff: noqa: UP045

SEED = "${seed}"  # the run's seed, unless a node's seed is set on its own

# ``trainer.early_stopping``: EarlyStopping's keyword arguments and whether it is on.
EarlyStoppingConfig = node_from_signature(
    EarlyStopping, "EarlyStoppingConfig", first=[("enabled", bool, False)]
)

# ``split``: split_dataset's fractions and seed (test 0 keeps the dataset's own test set).
SplitConfig = node_from_signature(split_dataset, "SplitConfig", defaults={"seed": SEED})


# ``trainer``: how a job trains. The Trainer's own settings come from its signature
# (epochs, batch_size, progress, log_grad_norms, threads: null = decided by the run, all
# cores for a single run and cores / parallel jobs for a sweep job; README "Threads"),
# then what the app adds: the metric a job returns (e.g. to an Optuna sweeper); resume
# (true | <run dir> | <checkpoint.npz> | <MLflow run id>: continue a run from its last
# epoch checkpoint; in a sweep, skip the jobs that finished); early stopping.
TrainerConfig = node_from_signature(
    Trainer,
    "TrainerConfig",
    only=("epochs", "batch_size", "progress", "log_grad_norms", "threads"),
    last=[
        ("objective", str, "val/acc"),
        ("resume", Any, False),
        (
            "early_stopping",
            EarlyStoppingConfig,
            dataclasses.field(default_factory=EarlyStoppingConfig),
        ),
    ],
)


@dataclasses.dataclass
class ReferenceConfig:
    """``logger.reference``: ``values`` maps a report row's label (``scratch``,
    ``relu,tanh``) to the published ``metric``; ``source`` says where they come from."""

    source: str = ""
    metric: str = "test/acc"
    values: Optional[dict[str, float]] = None


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
    # upload the resume checkpoint to the run's artifacts every N epochs (0: never), so
    # trainer.resume=<run id> continues the run from any machine that reaches the store
    checkpoint_every: int = 1
    # published results a study's report prints beside its own table (a study preset sets
    # them); not a param of the runs
    reference: ReferenceConfig = dataclasses.field(default_factory=lambda: ReferenceConfig())


@dataclasses.dataclass
class AugmentConfig:
    """``augment``: ``steps`` maps augmentation names to their hyperparameters, applied in
    order (null: no augmentation); ``p`` is the probability that a training sample is
    augmented; ``images_only`` lets data without images train unaugmented (a model
    recipe's augmentation) instead of being refused."""

    # a name, a list of names or a mapping name -> hyperparameters (build_augmenter);
    # Any, so that a mapping given on the command line merges into the null default
    steps: Any = None
    p: float = inspect.signature(build_augmenter).parameters["p"].default
    images_only: bool = False


@dataclasses.dataclass
class PostFitConfig:
    """``post_fit``: the analyses after training (toolkit.app.post_fit). ``figures=false``
    skips every figure (large sweeps); ``skip`` names steps to leave out."""

    figures: bool = True
    skip: list[str] = dataclasses.field(default_factory=list)


def probe_node() -> DictConfig:
    """``probe``: :class:`ProbeSettings` itself, its seed following the run's."""
    node = OmegaConf.structured(ProbeSettings)
    node.seed = SEED
    return node


def split_preset(train: float, val: float, test: float) -> Any:
    return SplitConfig(train=train, val=val, test=test)


NODES: dict[tuple[str, str], Any] = {
    ("trainer", "default"): TrainerConfig,
    ("post_fit", "default"): PostFitConfig,
    ("logger", "mlflow"): LoggerConfig,
    # no tracking; outputs (metrics.json, checkpoint) still go to the run folder
    ("logger", "none"): LoggerConfig(enabled=False, tracking_uri=None, log_model=False),
    ("split", "default"): SplitConfig,
    # the reference study's splits: all data pooled, cut train/test, no validation
    ("split", "70-30"): split_preset(0.7, 0.0, 0.3),
    ("split", "80-20"): split_preset(0.8, 0.0, 0.2),
    ("split", "90-10"): split_preset(0.9, 0.0, 0.1),
    # the dataset's own test set, its training set split 75/25 into train/validation
    ("split", "val25"): split_preset(0.75, 0.25, 0.0),
    ("augment", "none"): AugmentConfig,
    # the MLP and CNN recipes': shifts of up to 1 pixel, where the data are images
    ("augment", "shift1"): AugmentConfig(steps={"shift": {"max_pixels": 1}}, images_only=True),
    # small random shifts and rotations, per training batch (vectorised NumPy, seeded)
    ("augment", "light"): AugmentConfig(
        steps={"shift": {"max_pixels": 2}, "rotate": {"max_degrees": 10}}
    ),
    # rotation + scale + shift in one resampling pass, then elastic distortion (Simard)
    ("augment", "strong"): AugmentConfig(
        steps={
            "affine": {"max_degrees": 12, "max_pixels": 2, "min_scale": 0.9, "max_scale": 1.1},
            "elastic": {"alpha": 34, "sigma": 4},
        }
    ),
    ("probe", "default"): probe_node(),
    **TRANSFER_NODES,  # transfer=scratch|finetune|frozen|...: toolkit.app.transfer_settings
}
