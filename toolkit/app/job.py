"""One training job from a composed config: build everything, train, evaluate, record.

Everything that can be wrong with the config (names, values, shapes, the tracking store,
a checkpoint to start from) is checked while building, before the MLflow run starts and
before any training.

Tasks: a model builder may declare ``task=RECONSTRUCTION`` where it registers
(``@models.register("autoencoder", task=RECONSTRUCTION)``): it is
then trained to output its flattened input (``num_outputs = prod(sample_shape)``, loss
``mse`` where the config names the classification default ``cross_entropy``), and after
training a probe classifier on its frozen encoder's codes reports ``probe/test_acc``.
Otherwise the dataset's task (classification or regression) is the job's.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from toolkit.analysis.latent_probe import ProbeSettings, encoder_of
from toolkit.app.config_keys import augmenter_from, build_from, config_key
from toolkit.app.console import say
from toolkit.app.transfer import start_from, transfer_settings
from toolkit.app.validate import validate_config
from toolkit.data import ArrayData, Augmenter, Dataset, Splits, split_dataset
from toolkit.models import RECONSTRUCTION, ModelSpec, build_model, declared_task
from toolkit.nn.layer import Layer, forward_in_batches
from toolkit.nn.losses import Loss
from toolkit.registry import ConfigError, datasets, losses, models, optimizers, schedules
from toolkit.train import EarlyStopping, Trainer
from toolkit.train.threads import engine_threads

DTYPES = ("float32", "float64")
SCHEDULE_INPUTS = {"base_lr": "optim.lr", "total_epochs": "trainer.epochs"}  # not schedule.*
RECONSTRUCTION_LOSS = "mse"


def component_kwargs(node: DictConfig) -> tuple[str, dict[str, Any]]:
    """``{name: adam, lr: 0.1}`` -> ``("adam", {"lr": 0.1})``."""
    kwargs = OmegaConf.to_container(node, resolve=True)
    return kwargs.pop("name"), kwargs


@dataclass
class Job:
    """Everything a run needs, built and validated from the config.

    Attributes:
        config: the config the job runs (a reconstruction model's loss filled in).
        splits: the job's data: the dataset's splits, or for reconstruction the same inputs
            with their flattened selves as targets (analyses and figures use these).
        fit_splits: what the trainer fits, validates and tests on: ``splits``, or a
            frozen prefix's cached outputs for them (toolkit.app.transfer).
        task: ``classification``, ``regression`` or ``reconstruction``.
        labelled: the dataset's labelled splits (the probe's data; ``splits`` otherwise).
        probe: the latent probe to run after training (models with an encoder only).
        transfer: where the initial weights came from and what is frozen, if anything.
        normalization: the inputs' normalisation (the pretrained weights' if they brought
            one), stored with the model.
    """

    config: DictConfig
    dataset: Dataset
    splits: Splits
    spec: ModelSpec
    model: Layer
    loss: Loss
    trainer: Trainer
    augmenter: Augmenter | None = None
    task: str = "classification"
    labelled: Splits | None = None
    probe: ProbeSettings | None = None
    transfer: dict[str, Any] | None = None
    fit_splits: Splits | None = None
    normalization: Any = None
    _test_outputs: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def classification(self) -> bool:
        return self.task == "classification"

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """The whole model's raw outputs for ``x`` (N, ...) in evaluation mode (the
        trainer's model may be only the part after a frozen prefix)."""
        with engine_threads(self.trainer.threads):
            return forward_in_batches(self.model, x, batch_size)

    def test_outputs(self) -> np.ndarray:
        """The trained model's raw outputs on the test split (N, K), computed once: the
        test metrics and every post-fit step read the same array."""
        if self._test_outputs is None:
            self._test_outputs = self.predict(self.splits.test.x)
        return self._test_outputs

    def checkpoint_meta(self) -> dict[str, Any]:
        name, loss_kwargs = component_kwargs(self.config.loss)
        meta = {
            "model": self.spec.to_dict(),
            "dtype": self.config.dtype,
            "loss": {"name": name, **loss_kwargs},
            "dataset": self.dataset.name,
            "normalization": self.normalization,
            "class_names": self.dataset.class_names,
            "epoch": self.trainer.epoch,
        }
        if self.transfer:
            meta["transfer"] = self.transfer
        return meta


def no_model_message() -> str:
    return (
        "no model chosen: add +model=NAME, e.g. python -m toolkit +model=mlp optim=adam; "
        f"models: {', '.join(models.names())}"
    )


def model_task(model_name: str, dataset: Dataset) -> str:
    """The job's task: the one the model builder declares, else the dataset's."""
    models.get(model_name, key="model")  # an unknown name is named here
    return declared_task(model_name) or dataset.task


def with_loss(cfg: DictConfig, name: str) -> DictConfig:
    """A copy of ``cfg`` whose ``loss`` node is ``{name: <name>}``."""
    config = copy.deepcopy(cfg)
    config.loss = {"name": name}
    return config


def reconstruction_splits(splits: Splits) -> Splits:
    """The same inputs with targets = the inputs flattened (views, no copies)."""

    def targets(data: ArrayData | None) -> ArrayData | None:
        return None if data is None else ArrayData(data.x, data.x.reshape(len(data.x), -1))

    return Splits(targets(splits.train), targets(splits.val), targets(splits.test))


def build_job(
    cfg: DictConfig,
    callbacks: list | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> Job:
    """Build dataset, splits, model, loss, optimizer, schedule and trainer from ``cfg``,
    checking every value on the way (one-line ConfigErrors); ``threads`` replaces a
    ``trainer.threads`` of null (the run decides: all cores, or a sweep job's share).

    Each engine call gets one group's values, inside :func:`config_key` (or
    :func:`build_from`): the engine's errors name its parameters, and this is where the
    config key is put in front of them."""
    if "model" not in cfg:
        raise ConfigError(no_model_message())
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {cfg.dtype!r}")
    validate_config(cfg)  # ranges the schemas cannot express (the pre-check ran it too)
    transfer_settings(cfg)  # before the data is loaded
    model_name, hparams = component_kwargs(cfg.model)
    dataset_name, dataset_kwargs = component_kwargs(cfg.dataset)
    dataset = build_from(datasets, dataset_name, "dataset", **dataset_kwargs)
    task = model_task(model_name, dataset)
    if task == RECONSTRUCTION and cfg.loss.name == "cross_entropy":
        cfg = with_loss(cfg, RECONSTRUCTION_LOSS)
    loss_name, loss_kwargs = component_kwargs(cfg.loss)
    loss = build_from(losses, loss_name, "loss", **loss_kwargs)
    if loss_name == "cross_entropy" and task != "classification":
        raise ConfigError(
            f"loss=cross_entropy needs class labels but dataset={dataset_name} is "
            f"{dataset.task}; use loss=mse"
        )
    probe = node_settings(ProbeSettings, cfg, "probe") if "probe" in cfg else None
    with config_key("split"):
        labelled = split_dataset(dataset, **OmegaConf.to_container(cfg.split, resolve=True))
    num_outputs = math.prod(dataset.sample_shape) if task == RECONSTRUCTION else None
    spec = ModelSpec(model_name, dataset.sample_shape, num_outputs or dataset.num_outputs, hparams)
    with config_key("model"):
        model = build_model(spec, seed=cfg.seed, dtype=cfg.dtype)
    optim_name, optim_kwargs = component_kwargs(cfg.optim)
    optimizer = build_from(optimizers, optim_name, "optim", model, **optim_kwargs)
    schedule_name, schedule_kwargs = component_kwargs(cfg.schedule)
    schedule = build_from(
        schedules,
        schedule_name,
        "schedule",
        optimizer.lr,
        cfg.trainer.epochs,
        keys=SCHEDULE_INPUTS,
        **schedule_kwargs,
    )
    augment = OmegaConf.to_container(cfg.augment, resolve=True)
    augmenter = augmenter_from(augment)
    if augmenter is not None and len(dataset.sample_shape) != 3:
        if not augment["images_only"]:
            raise ConfigError(
                f"augment steps need images (C, H, W) but dataset={dataset_name} has samples "
                f"of shape {dataset.sample_shape}; use augment=none"
            )
        say(f"augment: not applied, dataset={dataset_name} has no images (images_only)")
        augmenter = None
    stopping = OmegaConf.to_container(cfg.trainer.early_stopping, resolve=True)
    all_callbacks = list(callbacks or [])
    if stopping.pop("enabled"):
        check_monitor(stopping["monitor"], task, has_val=labelled.val is not None)
        with config_key("trainer.early_stopping"):
            all_callbacks.append(EarlyStopping(**stopping))
    for split in (labelled.train, labelled.val, labelled.test):
        if split is not None:
            split.x = split.x.astype(cfg.dtype, copy=False)
    splits = reconstruction_splits(labelled) if task == RECONSTRUCTION else labelled
    plan = start_from(
        cfg,
        model,
        optimizer,
        splits,
        augment=augmenter,
        normalization=dataset.normalization,
        progress=progress and cfg.trainer.progress,
    )
    with config_key("trainer", seed="seed"):
        trainer = Trainer(
            plan.model,
            loss,
            optimizer,
            schedule,
            epochs=cfg.trainer.epochs,
            batch_size=cfg.trainer.batch_size,
            seed=cfg.seed,
            classification=task == "classification",
            callbacks=all_callbacks,
            progress=progress and cfg.trainer.progress,
            log_grad_norms=cfg.trainer.log_grad_norms,
            augment=plan.augment,
            threads=cfg.trainer.threads if cfg.trainer.threads is not None else threads,
        )
    if encoder_of(model) is None or (probe is not None and probe.kind == "none"):
        probe = None
    return Job(
        cfg,
        dataset,
        plan.data,
        spec,
        model,
        loss,
        trainer,
        augmenter,
        task,
        labelled,
        probe,
        plan.record,
        fit_splits=plan.splits,
        normalization=plan.normalization,
    )


def logged_metrics(task: str, has_val: bool) -> list[str]:
    """The per-epoch metrics a job of ``task`` logs (what early stopping can monitor)."""
    splits = ["train", "val"] if has_val else ["train"]
    kinds = ["loss", "acc"] if task == "classification" else ["loss"]
    return [f"{s}/{k}" for s in splits for k in kinds]


def check_monitor(monitor: str, task: str, has_val: bool) -> None:
    """ConfigError unless the job logs ``monitor`` every epoch (close matches named)."""
    from toolkit.registry import unknown_name_message

    names = logged_metrics(task, has_val)
    if monitor not in names:
        message = unknown_name_message(
            "metric", monitor, names, key="trainer.early_stopping.monitor"
        )
        raise ConfigError(f"{message} (logged each epoch by this {task} job)")


def node_settings(cls: type, cfg: DictConfig, key: str) -> Any:
    """``cls(**cfg[key])``; unknown keys are a one-line ConfigError."""
    try:
        return cls(**OmegaConf.to_container(cfg[key], resolve=True))
    except TypeError as err:
        raise ConfigError(f"{key}: {err}") from None
