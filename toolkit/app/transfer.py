"""Transfer learning: start a model from another run's weights, with a new head.

The ``transfer`` config node (options ``scratch``, ``finetune``, ``frozen``)::

    init_from: <checkpoint .npz path, MLflow run id or runs:/ URI>
    pretrained: true      # false: ignore init_from (the from-scratch baseline of a sweep)
    freeze: [0.conv2d]    # layer paths, dotted prefixes or globs the optimizer leaves alone
    reset_head: true      # a new output layer, zero-initialised (new label set)

The weights are loaded into the model the config builds (its shapes must match the
checkpoint's, except the head's when it is reset); frozen layers are skipped by the
optimizer (:meth:`toolkit.optim.Optimizer.freeze`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.nn.layer import Layer
from toolkit.registry import ConfigError
from toolkit.train.checkpoint import load_weights, model_arrays, read_checkpoint

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
CHECKPOINT_ARTIFACT = "checkpoint/checkpoint.npz"


@dataclass
class TransferSettings:
    """The ``transfer`` config node (see the module docstring)."""

    init_from: str | None = None
    pretrained: bool = True
    freeze: list[str] = field(default_factory=list)
    reset_head: bool = False

    def __post_init__(self) -> None:
        if self.pretrained and self.init_from in (None, "???"):
            raise ConfigError(
                "transfer.init_from is not set: give transfer.init_from=<checkpoint.npz path or "
                "MLflow run id> (or transfer=scratch)"
            )

    @property
    def source(self) -> str | None:
        """Where the weights come from, or ``None`` to train from scratch."""
        return self.init_from if self.pretrained else None


def checkpoint_file(init_from: str, tracking_uri: str) -> Path:
    """A local checkpoint for ``init_from``: the file itself, or the ``checkpoint.npz``
    artifact of an MLflow run (a 32-hex run id or a ``runs:/<id>/<path>`` URI) downloaded
    from ``tracking_uri``."""
    path = Path(init_from).expanduser()
    if path.is_file():
        return path
    if not (RUN_ID.match(init_from) or init_from.startswith("runs:/")):
        raise ConfigError(
            f"transfer.init_from={init_from!r} is neither a checkpoint file nor an MLflow run "
            "id; give the path of a checkpoint.npz or a run id"
        )
    import mlflow

    uri = init_from
    if not init_from.startswith("runs:/"):
        uri = f"runs:/{init_from}/{CHECKPOINT_ARTIFACT}"
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
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
