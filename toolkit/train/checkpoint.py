"""Checkpoints: a model's arrays plus JSON metadata in one ``.npz`` (no pickles).

Layout of the archive:

* ``param/<layer path>/<key>`` and ``buffer/<layer path>/<key>``: the model's arrays;
* ``meta``: a 0-d unicode array holding JSON (the :class:`ModelSpec`, dtype, data
  normalisation, loss, class names, epoch...);
* training checkpoints (:class:`EpochCheckpoint`) add the trainer's state: optimizer
  slots under ``optim/...``, callback arrays under ``callback/...``, and in ``meta``
  under ``training`` the epoch, history and every random generator's state.

Files are written atomically (temp file + rename), so a killed process never leaves a
truncated checkpoint, and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.models.build import ModelSpec, build_model
from toolkit.nn.layer import Layer
from toolkit.registry import ConfigError
from toolkit.train.callbacks import Callback


def model_arrays(model: Layer) -> dict[str, np.ndarray]:
    """All params and buffers of ``model`` keyed ``param/<path>/<key>``, ``buffer/...``."""
    arrays = {}
    for path, layer in model.named_layers():
        for key, value in layer.params.items():
            arrays[f"param/{path}/{key}"] = value
        for key, value in layer.buffers.items():
            arrays[f"buffer/{path}/{key}"] = value
    return arrays


def save_checkpoint(
    path: str | os.PathLike,
    model: Layer,
    meta: dict[str, Any],
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``model``'s arrays, ``extra`` arrays and ``meta`` (JSON-serialisable) to
    ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {**model_arrays(model), **(extra or {})}
    arrays["meta"] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata of a checkpoint; one-line ConfigErrors for missing,
    corrupt, truncated or pickle-carrying files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist; check the path")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as err:
        raise ConfigError(f"checkpoint {path} holds pickled objects, refused ({err})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(f"checkpoint {path} is corrupt or truncated ({err})") from None
    if "meta" not in arrays:
        raise ConfigError(f"checkpoint {path} has no 'meta' entry; was it written by toolkit?")
    return arrays, json.loads(str(arrays.pop("meta")))


def load_weights(model: Layer, arrays: dict[str, np.ndarray], source: str = "checkpoint") -> None:
    """Copy the ``param/`` and ``buffer/`` entries of ``arrays`` (as from
    :func:`model_arrays`) into ``model``; every mismatch (missing, unexpected or differently
    shaped parameter) is named in one error."""
    arrays = {k: v for k, v in arrays.items() if k.startswith(("param/", "buffer/"))}
    expected = model_arrays(model)
    problems = [f"missing {k}" for k in expected if k not in arrays]
    problems += [f"unexpected {k}" for k in arrays if k not in expected]
    problems += [
        f"{k} is {arrays[k].shape} in the {source} but {v.shape} in the model"
        for k, v in expected.items()
        if k in arrays and arrays[k].shape != v.shape
    ]
    if problems:
        raise ConfigError(f"{source} does not fit the model: {'; '.join(problems)}")
    for key, target in expected.items():
        target[...] = arrays[key]


def load_checkpoint(path: str | os.PathLike) -> tuple[Layer, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights: (model, meta)."""
    arrays, meta = read_checkpoint(path)
    spec = ModelSpec.from_dict(meta["model"])
    model = build_model(spec, dtype=meta.get("dtype", "float32"))
    load_weights(model, arrays, source=f"checkpoint {path}")
    return model, meta


class EpochCheckpoint(Callback):
    """Writes the model and the full training state to ``path`` after every epoch
    (atomically), so a killed run can continue exactly where the last epoch ended.

    Args:
        path: the checkpoint file (overwritten each epoch).
        meta: returns the metadata to store beside the state (model spec, ...).
    """

    def __init__(self, path: str | os.PathLike, meta: Callable[[], dict[str, Any]]) -> None:
        self.path, self.meta = Path(path), meta

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        arrays, training = trainer.state_dict()
        save_checkpoint(self.path, trainer.model, {**self.meta(), "training": training}, arrays)


def resume_training(trainer, path: str | os.PathLike) -> dict[str, Any]:
    """Load a training checkpoint into ``trainer`` (weights, optimizer, RNGs, epoch,
    history, callbacks); returns the checkpoint's metadata."""
    arrays, meta = read_checkpoint(path)
    if "training" not in meta:
        raise ConfigError(f"checkpoint {path} holds weights only, no training state to resume")
    load_weights(trainer.model, arrays, source=f"checkpoint {path}")
    trainer.load_state_dict(arrays, meta["training"])
    return meta
