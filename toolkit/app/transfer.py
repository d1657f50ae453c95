"""Transfer learning: start a model from pretrained weights, freeze some of it, and plan
what the trainer fits.

The ``transfer`` node (:class:`~toolkit.app.transfer_settings.TransferSettings`) names the
weights (``init_from``: a toolkit checkpoint or MLflow run, torchvision's pretrained
weights ``torchvision:resnet18``, or a ``.pth`` state_dict), whether to use them
(``pretrained``), a new zero head (``reset_head``) and the layers that stay fixed
(``freeze``). :func:`start_from` applies it to a built model and optimizer and returns a
:class:`TransferPlan`: what to record in the checkpoint, and what the trainer fits. When
the leading stages are frozen the plan fits only the rest, on their cached outputs
(:mod:`toolkit.app.frozen_prefix`); the model's own weights are the ones trained.

Weights from torchvision bring their normalisation (ImageNet's per-channel statistics):
data normalised otherwise is re-expressed in the weights' units, and the plan says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from toolkit.app.frozen_prefix import Augment, feature_splits, split_frozen
from toolkit.app.transfer_settings import TransferSettings
from toolkit.data.photos import renormalize
from toolkit.data.splits import ArrayData, Splits
from toolkit.interop.named_state import from_torch_state
from toolkit.interop.pretrained import is_pretrained_source, load_pretrained_weights
from toolkit.nn.layer import Layer
from toolkit.optim.optimizer import Optimizer, names_layer
from toolkit.registry import ConfigError
from toolkit.track.names import RUN_ID
from toolkit.train.checkpoint import load_weights, model_arrays, read_checkpoint

__all__ = [
    "TransferPlan",
    "TransferSettings",
    "checkpoint_file",
    "head_path",
    "load_pretrained",
    "plan_transfer",
    "start_from",
    "transfer_settings",
]


@dataclass
class TransferPlan:
    """What :func:`start_from` did, and what the trainer should fit.

    Attributes:
        record: JSON-serialisable facts for the checkpoint's ``meta["transfer"]`` (where
            the weights came from, the reset head, the frozen parameters, the cached
            prefix, the normalisation adopted), or ``None`` when nothing was done.
        model: what the trainer fits: the whole model, or the part after its frozen
            prefix (sharing the model's layers, so the model is what trains).
        splits: what the trainer fits, validates and tests on: the data, or the frozen
            prefix's outputs for it.
        augment: the trainer's training-batch hook (``augment(x, rng) -> x``): the
            augmentation given, or it followed by the frozen prefix.
        data: the data for everything that runs the whole model (analyses, figures,
            predictions): the splits given, re-normalised if the weights asked for it.
        normalization: the data's normalisation after the plan (the weights' when they
            brought one), to store with the model.
    """

    record: dict[str, Any] | None
    model: Layer
    splits: Splits
    augment: Augment | None
    data: Splits
    normalization: Any = None


def transfer_settings(cfg: DictConfig) -> TransferSettings:
    """The checked ``transfer`` node of ``cfg`` (defaults when it has none)."""
    if "transfer" not in cfg:
        return TransferSettings()
    values = OmegaConf.to_container(cfg.transfer, resolve=True)
    try:
        return TransferSettings(**values).check()
    except TypeError as err:
        raise ConfigError(f"transfer: {err}") from None


def start_from(
    cfg: DictConfig,
    model: Layer,
    optimizer: Optimizer,
    splits: Splits,
    augment: Augment | None = None,
    normalization: Any = None,
    progress: bool = True,
) -> TransferPlan:
    """Apply ``cfg.transfer`` to the built ``model`` and its ``optimizer``: load the
    weights (``cfg.logger.tracking_uri`` finds MLflow runs), reset the head, freeze, and
    plan the fit (see :func:`plan_transfer`)."""
    logger = cfg.get("logger") or {}
    return plan_transfer(
        transfer_settings(cfg),
        model,
        optimizer,
        splits,
        tracking_uri=logger.get("tracking_uri"),
        augment=augment,
        normalization=normalization,
        threads=cfg.trainer.get("threads") if "trainer" in cfg else None,
        progress=progress,
    )


def plan_transfer(
    settings: TransferSettings,
    model: Layer,
    optimizer: Optimizer,
    splits: Splits,
    *,
    tracking_uri: str | None = None,
    augment: Augment | None = None,
    normalization: Any = None,
    threads: int | None = None,
    progress: bool = False,
) -> TransferPlan:
    """Load, reset, freeze, then cut off the frozen prefix (when ``cache_frozen``).

    Args:
        settings: the checked transfer settings.
        model, optimizer: the built model and its optimizer (frozen parameters are
            removed from the optimizer).
        splits: the data the job trains, validates and tests on (images).
        tracking_uri: where MLflow run ids are looked up.
        augment: the job's training augmentation, if any.
        normalization: the data's ``Dataset.normalization``.
        threads: BLAS threads for computing the cached features.
        progress: show a progress bar while computing them.
    """
    record: dict[str, Any] = {}
    check_freeze_patterns(settings.freeze, model)
    if settings.source is not None:
        if is_pretrained_source(settings.source):
            adopted = load_torch_weights(model, settings.source, settings.reset_head, record)
            if adopted is not None and adopted != _as_lists(normalization):
                splits = renormalized(splits, normalization, adopted)
                record["normalization"] = {"from": _as_lists(normalization), "to": adopted}
                normalization = adopted
        else:
            checkpoint = checkpoint_file(settings.source, tracking_uri)
            record["init_from"] = str(checkpoint)
            record["reset_head"] = load_pretrained(model, checkpoint, settings.reset_head)
    if settings.freeze:
        record["frozen"] = optimizer.freeze(settings.freeze)
        if not optimizer.slots:
            raise ConfigError(
                f"transfer.freeze={settings.freeze} freezes every layer: nothing would train; "
                "leave the head (e.g. fc) out of it"
            )
    split = split_frozen(model, optimizer) if settings.freeze and settings.cache_frozen else None
    if split is None:
        return TransferPlan(record or None, model, splits, augment, splits, normalization)
    record["cached_prefix"] = split.names
    fit_splits, hook = feature_splits(split, splits, augment, threads, progress)
    return TransferPlan(record, split.rest, fit_splits, hook, splits, normalization)


def check_freeze_patterns(patterns: list[str], model: Layer) -> None:
    """A one-line ConfigError for a freeze pattern that names no layer with parameters
    (before any weights are loaded), listing the model's stages."""
    paths = [path for path, layer in model.named_layers() if layer.params]
    for pattern in patterns:
        if not any(names_layer(pattern, path) for path in paths):
            stages = dict.fromkeys(name for name, _ in model.children())
            raise ConfigError(
                f"transfer.freeze: {pattern!r} names no layer with parameters; stages: "
                f"{', '.join(stages) or ', '.join(paths)} (or layer paths as the model "
                "summary prints them, or globs)"
            )


def load_torch_weights(
    model: Layer, source: str, reset_head: bool, record: dict[str, Any]
) -> list[list[float]] | None:
    """Load torchvision's (or a ``.pth``) weights into ``model``; returns the
    normalisation they expect (as lists), if known."""
    weights = load_pretrained_weights(source)
    head = head_path(model) if reset_head else None
    from_torch_state(model, weights.state, skip=[head] if head else (), source=weights.source)
    if head is not None:
        for layer_path, layer in model.named_layers():
            if layer_path == head:
                for array in (*layer.params.values(), *layer.buffers.values()):
                    array[...] = 0
    record["init_from"] = weights.source
    record["reset_head"] = head
    if weights.image_size is not None:
        record["pretrained_image_size"] = weights.image_size
    return _as_lists(weights.normalization)


def renormalized(splits: Splits, source: Any, target: Any) -> Splits:
    """The splits' images re-expressed from normalisation ``source`` to ``target``."""

    def convert(data: ArrayData | None) -> ArrayData | None:
        if data is None:
            return None
        if data.x.ndim != 4:
            raise ConfigError(
                f"pretrained image weights need image data (N, C, H, W); got {data.x.shape}"
            )
        return ArrayData(renormalize(data.x, source, target), data.y)

    return Splits(convert(splits.train), convert(splits.val), convert(splits.test))


def _as_lists(normalization: Any) -> Any:
    """``(mean, std)`` with tuples as lists (JSON's form), for comparisons and records."""
    if normalization is None:
        return None
    return [np.atleast_1d(np.asarray(part, dtype=float)).tolist() for part in normalization]


def checkpoint_file(init_from: str, tracking_uri: str | None) -> Path:
    """A local checkpoint for ``init_from``: the file itself, or an MLflow run's final
    checkpoint (a 32-hex run id: the copy in its pyfunc model or ``checkpoint/``; a
    ``runs:/<id>/<path>`` URI: that file) downloaded from ``tracking_uri``."""
    path = Path(init_from).expanduser()
    if path.is_file():
        return path
    if not (RUN_ID.match(init_from) or init_from.startswith("runs:/")):
        raise ConfigError(
            f"transfer.init_from={init_from!r} is neither a checkpoint file nor an MLflow run "
            "id; give the path of a checkpoint.npz, a run id, torchvision:<arch> or a .pth file"
        )
    from toolkit.track.checkpoint_store import final_checkpoint_uri
    from toolkit.track.client import download_artifact

    uri = init_from
    try:
        if not init_from.startswith("runs:/"):  # inside its pyfunc model, or checkpoint/
            uri = final_checkpoint_uri(tracking_uri, init_from)
        local = download_artifact(uri, tracking_uri)
    except Exception as err:  # unknown run, missing artifact, unreachable store
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"transfer.init_from={init_from}: cannot fetch {uri} from {tracking_uri} ({first})"
        ) from None
    return Path(local)


def head_path(model: Layer) -> str:
    """Path of the model's last layer with parameters (its output layer)."""
    paths = [path for path, layer in model.named_layers() if layer.params]
    if not paths:
        raise ConfigError("transfer: the model has no layer with parameters")
    return paths[-1]


def load_pretrained(model: Layer, checkpoint: Path, reset_head: bool) -> str | None:
    """Copy the checkpoint's weights into ``model``; with ``reset_head`` its output layer
    starts from zeros instead (any number of outputs). Returns the reset head's path (or
    ``None``). Shapes that do not fit are one ConfigError naming every mismatch.

    A zero head predicts every class equally at first, so the first steps learn a map from
    the pretrained features; a randomly initialised head on large frozen features needs
    many steps just to undo its own random logits (measured: a head-only fine-tune of the
    MNIST CNN reached 41% instead of 85% in 45 steps).
    """
    arrays, _ = read_checkpoint(checkpoint)
    head = head_path(model) if reset_head else None
    if head is not None:
        prefix = (f"param/{head}/", f"buffer/{head}/")
        arrays = {k: v for k, v in arrays.items() if not k.startswith(prefix)}
        fresh = {
            k: np.zeros_like(v) for k, v in model_arrays(model).items() if k.startswith(prefix)
        }
        arrays.update(fresh)
    load_weights(model, arrays, source=f"checkpoint {checkpoint}")
    return head
