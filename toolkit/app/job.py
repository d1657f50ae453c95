"""One training job from a composed config: build everything, train, evaluate, record.

Everything that can be wrong with the config (names, values, shapes, the tracking store,
a checkpoint to start from) is checked while building, before the MLflow run starts and
before any training.

Tasks: a model builder may declare ``task = "reconstruction"`` (the autoencoders): it is
then trained to output its flattened input (``num_outputs = prod(sample_shape)``, loss
``mse`` where the config names the classification default ``cross_entropy``), and after
training a probe classifier on its frozen encoder's codes reports ``probe/test_acc``.
Otherwise the dataset's task (classification or regression) is the job's.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from toolkit.analysis.feature_maps import has_conv, stage_outputs
from toolkit.analysis.gradient_flow import depth_profile, flow_metrics, run_figure
from toolkit.analysis.latent_probe import ProbeSettings, encode, encoder_of, fit_probe
from toolkit.analysis.receptive_field import field_table, receptive_fields
from toolkit.app.transfer import TransferSettings, checkpoint_file, load_pretrained
from toolkit.data import ArrayData, Augmenter, Dataset, Splits, build_augmenter, split_dataset
from toolkit.models import ModelSpec, build_model
from toolkit.nn.layer import Layer
from toolkit.nn.losses import Loss
from toolkit.registry import ConfigError, datasets, losses, models, optimizers, schedules
from toolkit.train import EarlyStopping, Trainer, save_checkpoint
from toolkit.train.metrics import confusion_matrix

DTYPES = ("float32", "float64")
RECONSTRUCTION = "reconstruction"
RECONSTRUCTION_LOSS = "mse"
LATENT_POINTS = 2000  # test codes drawn in the latent projection


def component_kwargs(node: DictConfig) -> tuple[str, dict[str, Any]]:
    """``{name: adam, lr: 0.1}`` -> ``("adam", {"lr": 0.1})``."""
    kwargs = OmegaConf.to_container(node, resolve=True)
    return kwargs.pop("name"), kwargs


@dataclass
class Job:
    """Everything a run needs, built and validated from the config.

    Attributes:
        config: the config the job runs (a reconstruction model's loss filled in).
        splits: what the trainer fits and tests: the dataset's, or for reconstruction the
            same inputs with their flattened selves as targets.
        task: ``classification``, ``regression`` or ``reconstruction``.
        labelled: the dataset's labelled splits (the probe's data; ``splits`` otherwise).
        probe: the latent probe to run after training (models with an encoder only).
        transfer: where the initial weights came from and what is frozen, if anything.
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

    @property
    def classification(self) -> bool:
        return self.task == "classification"

    def checkpoint_meta(self) -> dict[str, Any]:
        name, loss_kwargs = component_kwargs(self.config.loss)
        meta = {
            "model": self.spec.to_dict(),
            "dtype": self.config.dtype,
            "loss": {"name": name, **loss_kwargs},
            "dataset": self.dataset.name,
            "normalization": self.dataset.normalization,
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
    """The job's task: the model builder's ``task`` attribute, else the dataset's."""
    return getattr(models.get(model_name, key="model"), "task", dataset.task)


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


def build_job(cfg: DictConfig, callbacks: list | None = None, progress: bool = True) -> Job:
    """Build dataset, splits, model, loss, optimizer, schedule and trainer from ``cfg``."""
    if "model" not in cfg:
        raise ConfigError(no_model_message())
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {cfg.dtype!r}")
    model_name, hparams = component_kwargs(cfg.model)
    dataset_name, dataset_kwargs = component_kwargs(cfg.dataset)
    dataset = datasets.build(dataset_name, key="dataset", **dataset_kwargs)
    task = model_task(model_name, dataset)
    if task == RECONSTRUCTION and cfg.loss.name == "cross_entropy":
        cfg = with_loss(cfg, RECONSTRUCTION_LOSS)
    loss_name, loss_kwargs = component_kwargs(cfg.loss)
    loss = losses.build(loss_name, key="loss", **loss_kwargs)
    if loss_name == "cross_entropy" and task != "classification":
        raise ConfigError(
            f"loss=cross_entropy needs class labels but dataset={dataset_name} is "
            f"{dataset.task}; use loss=mse"
        )
    probe = node_settings(ProbeSettings, cfg, "probe") if "probe" in cfg else None
    labelled = split_dataset(dataset, **OmegaConf.to_container(cfg.split, resolve=True))
    num_outputs = math.prod(dataset.sample_shape) if task == RECONSTRUCTION else None
    spec = ModelSpec(model_name, dataset.sample_shape, num_outputs or dataset.num_outputs, hparams)
    model = build_model(spec, seed=cfg.seed, dtype=cfg.dtype)
    optim_name, optim_kwargs = component_kwargs(cfg.optim)
    optimizer = optimizers.build(optim_name, model, key="optim", **optim_kwargs)
    transfer = start_from(cfg, model, optimizer) if "transfer" in cfg else None
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
        classification=task == "classification",
        callbacks=all_callbacks,
        progress=progress and cfg.trainer.progress,
        log_grad_norms=cfg.trainer.log_grad_norms,
        augment=augmenter,
        threads=cfg.trainer.threads,
    )
    for split in (labelled.train, labelled.val, labelled.test):
        if split is not None:
            split.x = split.x.astype(cfg.dtype, copy=False)
    splits = reconstruction_splits(labelled) if task == RECONSTRUCTION else labelled
    if encoder_of(model) is None or (probe is not None and probe.kind == "none"):
        probe = None
    return Job(
        cfg, dataset, splits, spec, model, loss, trainer, augmenter, task, labelled, probe, transfer
    )


def node_settings(cls: type, cfg: DictConfig, key: str) -> Any:
    """``cls(**cfg[key])``; unknown keys are a one-line ConfigError."""
    try:
        return cls(**OmegaConf.to_container(cfg[key], resolve=True))
    except TypeError as err:
        raise ConfigError(f"{key}: {err}") from None


def start_from(cfg: DictConfig, model: Layer, optimizer) -> dict[str, Any] | None:
    """Apply the ``transfer`` node: load pretrained weights (head reset if asked) and
    freeze layers; returns what was done (for the checkpoint), or None for nothing."""
    settings = node_settings(TransferSettings, cfg, "transfer")
    record: dict[str, Any] = {}
    if settings.source is not None:
        checkpoint = checkpoint_file(settings.source, cfg.logger.tracking_uri)
        record["init_from"] = str(checkpoint)
        record["reset_head"] = load_pretrained(model, checkpoint, settings.reset_head)
    if settings.freeze:
        record["frozen"] = optimizer.freeze(settings.freeze)
    return record or None


def fit_and_test(job: Job) -> dict[str, float]:
    """Train, evaluate on the test split, then analyse (gradient flow, latent probe);
    returns the final metrics."""
    history = job.trainer.fit(job.splits.train, job.splits.val)
    final = {k: v[-1] for k, v in history.items() if k.startswith(("train/", "val/"))}
    final.update(job.trainer.evaluate(job.splits.test, prefix="test"))
    final["epochs"] = job.trainer.epoch
    analysis = analyse(job)
    log_to_run(job, analysis)
    final.update(analysis)
    return final


def analyse(job: Job) -> dict[str, float]:
    """Post-training metrics: ``grad_flow/first_over_last`` (models with two or more
    weight layers) and ``probe/train_acc``, ``probe/test_acc`` (models with an encoder)."""
    metrics: dict[str, float] = {}
    profile = depth_profile(job.model, job.trainer.history)
    if profile is not None and len(profile.layers) > 1:
        metrics.update(flow_metrics(profile))
    if job.probe is not None:
        encoder = encoder_of(job.model)
        train, test = job.labelled.train, job.labelled.test
        metrics.update(
            fit_probe(
                job.probe,
                encode(encoder, train.x),
                train.y,
                encode(encoder, test.x),
                test.y,
                job.dataset.num_classes,
                threads=job.trainer.threads,
            )
        )
    return metrics


def log_to_run(job: Job, metrics: dict[str, float]) -> None:
    """Log post-training metrics to the run the trainer's MLflow callback logs to (the
    app logs only ``test/*`` itself)."""
    from toolkit.track.mlflow_run import MlflowMetrics

    for callback in job.trainer.callbacks:
        if isinstance(callback, MlflowMetrics) and metrics:
            callback.log(metrics, step=job.trainer.epoch)  # kept on disk if the server is gone


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
    profile = depth_profile(job.model, job.trainer.history)
    if profile is not None:
        paths["gradient_flow"] = profile.save(output_dir)
    return paths


def figures(job: Job) -> dict[str, Any]:
    """The run's figures by file name (matplotlib imported here, after training).

    All runs: learning curves, LR schedule, gradient norms per epoch and by depth;
    classifiers: confusion matrix, and the decision regions of 2-D inputs; CNNs also:
    first-layer filters, feature maps of every conv/pool stage for three test images, and a
    grid of misclassified test images; regression: the fitted curve of a 1-D function, the
    decision boundary of 2-D inputs with 0/1 targets (XOR); reconstruction: originals over
    reconstructions and a PCA projection of the test codes coloured by label.
    """
    from toolkit import viz

    history = job.trainer.history
    found = {
        "learning_curves.png": viz.learning_curves(history),
        "lr_schedule.png": viz.lr_schedule(history),
    }
    if any(k.startswith("grad_norm/") for k in history):
        found["grad_norms.png"] = viz.grad_norms(history)
    profile = depth_profile(job.model, history)
    if profile is not None and len(profile.layers) > 1:
        found["gradient_flow.png"] = run_figure(profile)
    if job.augmenter is not None:
        samples = job.splits.train.x[:8]
        augmented = job.augmenter(np.concatenate([samples] * 2), np.random.default_rng(0))
        titles = ["original"] * 8 + ["augmented"] * 16
        found["augmented_samples.png"] = viz.image_grid(
            np.concatenate([samples, augmented]), titles, ncols=8
        )
    if job.task == RECONSTRUCTION:
        found.update(reconstruction_figures(job, viz))
    elif job.classification:
        found.update(classification_figures(job, viz))
    else:
        found.update(regression_figures(job, viz))
    return found


def classification_figures(job: Job, viz) -> dict[str, Any]:
    test = job.splits.test
    probabilities = job.loss.link(job.trainer.predict(test.x))
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(test.y, predictions, job.dataset.num_classes)
    found = {"confusion_matrix.png": viz.confusion_matrix_figure(matrix, job.dataset.class_names)}
    if job.dataset.sample_shape == (2,):
        found["decision_boundary.png"] = viz.decision_boundary(
            lambda points: job.trainer.predict(points.astype(test.x.dtype)).argmax(axis=1),
            test.x,
            test.y,
        )
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


def regression_figures(job: Job, viz) -> dict[str, Any]:
    """The fitted curve (1-D input and target) or the 0.5-threshold decision boundary (2-D
    input, one 0/1 target, e.g. XOR)."""
    test = job.splits.test
    if test.y.ndim != 2 or test.y.shape[1] != 1:
        return {}
    predicted = job.loss.link(job.trainer.predict(test.x))
    if job.dataset.sample_shape == (1,):
        mse = float(np.mean((predicted - test.y) ** 2))
        label = f"{job.spec.name} {job.spec.hparams.get('hidden_sizes', '')}".strip()
        title = f"Fit on the test inputs (MSE {mse:.4g})"
        figure = viz.fitted_curves(test.x[:, 0], test.y[:, 0], {label: predicted[:, 0]}, title)
        return {"fitted_curve.png": figure}
    if job.dataset.sample_shape == (2,) and np.isin(test.y, (0.0, 1.0)).all():

        def above_half(points: np.ndarray) -> np.ndarray:
            outputs = job.loss.link(job.trainer.predict(points.astype(test.x.dtype)))
            return (outputs[:, 0] > 0.5).astype(np.int64)

        labels = test.y[:, 0].astype(np.int64)
        return {"decision_boundary.png": viz.decision_boundary(above_half, test.x, labels)}
    return {}


def reconstruction_figures(job: Job, viz) -> dict[str, Any]:
    """Ten test images over their reconstructions, and the first two principal components
    of the codes of up to LATENT_POINTS test images coloured by their labels."""
    test = job.labelled.test
    found = {
        "reconstructions.png": viz.reconstructions(test.x[:10], job.trainer.predict(test.x[:10]))
    }
    codes = encode(encoder_of(job.model), test.x[:LATENT_POINTS])
    if codes.shape[1] >= 2:
        found["latent_pca.png"] = viz.latent_projection(codes, test.y[:LATENT_POINTS])
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
