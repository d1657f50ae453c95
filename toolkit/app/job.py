"""One training job from a composed config: build everything, train, evaluate, record.

Everything that can be wrong with the config (names, values, shapes, the tracking store)
is checked while building, before the MLflow run starts and before any training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from toolkit.analysis.feature_maps import has_conv, stage_outputs
from toolkit.analysis.receptive_field import field_table, receptive_fields
from toolkit.data import Augmenter, Dataset, Splits, build_augmenter, split_dataset
from toolkit.models import ModelSpec, build_model
from toolkit.nn.layer import Layer
from toolkit.nn.losses import Loss
from toolkit.registry import ConfigError, datasets, losses, models, optimizers, schedules
from toolkit.train import EarlyStopping, Trainer, save_checkpoint
from toolkit.train.metrics import confusion_matrix

DTYPES = ("float32", "float64")


def component_kwargs(node: DictConfig) -> tuple[str, dict[str, Any]]:
    """``{name: adam, lr: 0.1}`` -> ``("adam", {"lr": 0.1})``."""
    kwargs = OmegaConf.to_container(node, resolve=True)
    return kwargs.pop("name"), kwargs


@dataclass
class Job:
    """Everything a run needs, built and validated from the config."""

    config: DictConfig
    dataset: Dataset
    splits: Splits
    spec: ModelSpec
    model: Layer
    loss: Loss
    trainer: Trainer
    augmenter: Augmenter | None = None

    @property
    def classification(self) -> bool:
        return self.dataset.task == "classification"

    def checkpoint_meta(self) -> dict[str, Any]:
        name, loss_kwargs = component_kwargs(self.config.loss)
        return {
            "model": self.spec.to_dict(),
            "dtype": self.config.dtype,
            "loss": {"name": name, **loss_kwargs},
            "dataset": self.dataset.name,
            "normalization": self.dataset.normalization,
            "class_names": self.dataset.class_names,
            "epoch": self.trainer.epoch,
        }


def no_model_message() -> str:
    return (
        "no model chosen: add +model=NAME, e.g. python -m toolkit +model=mlp optim=adam; "
        f"models: {', '.join(models.names())}"
    )


def build_job(cfg: DictConfig, callbacks: list | None = None, progress: bool = True) -> Job:
    """Build dataset, splits, model, loss, optimizer, schedule and trainer from ``cfg``."""
    if "model" not in cfg:
        raise ConfigError(no_model_message())
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {cfg.dtype!r}")
    loss_name, loss_kwargs = component_kwargs(cfg.loss)
    loss = losses.build(loss_name, key="loss", **loss_kwargs)
    dataset_name, dataset_kwargs = component_kwargs(cfg.dataset)
    dataset = datasets.build(dataset_name, key="dataset", **dataset_kwargs)
    if loss_name == "cross_entropy" and dataset.task != "classification":
        raise ConfigError(
            f"loss=cross_entropy needs class labels but dataset={dataset_name} is "
            f"{dataset.task}; use loss=mse"
        )
    splits = split_dataset(dataset, **OmegaConf.to_container(cfg.split, resolve=True))
    model_name, hparams = component_kwargs(cfg.model)
    spec = ModelSpec(model_name, dataset.sample_shape, dataset.num_outputs, hparams)
    model = build_model(spec, seed=cfg.seed, dtype=cfg.dtype)
    optim_name, optim_kwargs = component_kwargs(cfg.optim)
    optimizer = optimizers.build(optim_name, model, key="optim", **optim_kwargs)
    schedule_name, schedule_kwargs = component_kwargs(cfg.schedule)
    schedule = schedules.build(
        schedule_name, optimizer.lr, cfg.trainer.epochs, key="schedule", **schedule_kwargs
    )
    augment = OmegaConf.to_container(cfg.augment, resolve=True)
    augmenter = build_augmenter(augment["steps"], p=augment["p"])
    if augmenter is not None and len(dataset.sample_shape) != 3:
        raise ConfigError(
            f"augment steps need images (C, H, W) but dataset={dataset_name} has samples of "
            f"shape {dataset.sample_shape}; use augment=none"
        )
    stopping = OmegaConf.to_container(cfg.trainer.early_stopping, resolve=True)
    all_callbacks = list(callbacks or [])
    if stopping.pop("enabled"):
        all_callbacks.append(EarlyStopping(**stopping))
    trainer = Trainer(
        model,
        loss,
        optimizer,
        schedule,
        epochs=cfg.trainer.epochs,
        batch_size=cfg.trainer.batch_size,
        seed=cfg.seed,
        classification=dataset.task == "classification",
        callbacks=all_callbacks,
        progress=progress and cfg.trainer.progress,
        log_grad_norms=cfg.trainer.log_grad_norms,
        augment=augmenter,
        threads=cfg.trainer.threads,
    )
    for split in (splits.train, splits.val, splits.test):
        if split is not None:
            split.x = split.x.astype(cfg.dtype, copy=False)
    return Job(cfg, dataset, splits, spec, model, loss, trainer, augmenter)


def fit_and_test(job: Job) -> dict[str, float]:
    """Train, then evaluate on the test split; returns the final metrics."""
    history = job.trainer.fit(job.splits.train, job.splits.val)
    final = {k: v[-1] for k, v in history.items() if k.startswith(("train/", "val/"))}
    final.update(job.trainer.evaluate(job.splits.test, prefix="test"))
    final["epochs"] = job.trainer.epoch
    return final


def write_outputs(job: Job, output_dir: Path, metrics: dict[str, float]) -> dict[str, Path]:
    """Write metrics.json, the resolved config, the checkpoint and the figures."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": output_dir / "metrics.json",
        "config": output_dir / "config_resolved.yaml",
        "checkpoint": output_dir / "checkpoint.npz",
    }
    paths["metrics"].write_text(json.dumps(metrics, indent=2))
    paths["config"].write_text(OmegaConf.to_yaml(job.config, resolve=True))
    save_checkpoint(paths["checkpoint"], job.model, job.checkpoint_meta())
    table = receptive_field_report(job)
    if table is not None:
        paths["receptive_field"] = output_dir / "receptive_field.md"
        paths["receptive_field"].write_text(table + "\n")
    return paths


def figures(job: Job) -> dict[str, Any]:
    """The run's figures by file name (matplotlib imported here, after training).

    All runs: learning curves, LR schedule, gradient norms; classifiers: confusion matrix;
    CNNs also: first-layer filters, feature maps of every conv/pool stage for three test
    images, and a grid of misclassified test images.
    """
    from toolkit import viz

    history = job.trainer.history
    found = {
        "learning_curves.png": viz.learning_curves(history),
        "lr_schedule.png": viz.lr_schedule(history),
    }
    if any(k.startswith("grad_norm/") for k in history):
        found["grad_norms.png"] = viz.grad_norms(history)
    if job.augmenter is not None:
        samples = job.splits.train.x[:8]
        augmented = job.augmenter(np.concatenate([samples] * 2), np.random.default_rng(0))
        titles = ["original"] * 8 + ["augmented"] * 16
        found["augmented_samples.png"] = viz.image_grid(
            np.concatenate([samples, augmented]), titles, ncols=8
        )
    if not job.classification:
        return found
    test = job.splits.test
    probabilities = job.loss.link(job.trainer.predict(test.x))
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(test.y, predictions, job.dataset.num_classes)
    found["confusion_matrix.png"] = viz.confusion_matrix_figure(matrix, job.dataset.class_names)
    if has_conv(job.model):
        first_conv = next(layer for _, layer in job.model.named_layers() if layer.kind == "conv2d")
        found["filters.png"] = viz.filters_figure(first_conv.params["W"])
        maps = stage_outputs(job.model, test.x[:3])
        for i in range(min(3, len(test.x))):
            stages = {name: m[i] for name, m in maps.items()}
            found[f"feature_maps_{i}.png"] = viz.feature_maps_figure(stages, image=test.x[i])
        confidence = probabilities.max(axis=1)
        found["misclassified.png"] = viz.misclassified_grid(test.x, test.y, predictions, confidence)
    return found


def save_figures(found: dict[str, Any], folder: Path) -> list[Path]:
    """Save figures as PNG files in ``folder``; returns their paths."""
    from toolkit.viz import save_figure

    return [save_figure(figure, folder / name) for name, figure in found.items()]


def receptive_field_report(job: Job) -> str | None:
    """The receptive-field table of a CNN (Markdown), or None for models without convs."""
    if not has_conv(job.model):
        return None
    return field_table(receptive_fields(job.model))


def raw_input_example(job: Job, count: int = 5) -> np.ndarray:
    """A few test inputs as a deployed model receives them (uint8 pixels for images)."""
    x = job.splits.test.x[:count]
    if job.dataset.normalization is None:
        return x
    mean, std = job.dataset.normalization
    pixels = np.clip(np.rint((x * std + mean) * 255.0), 0, 255).astype(np.uint8)
    return pixels.reshape(count, *x.shape[2:]) if x.shape[1] == 1 else pixels
