"""Checkpoints: a model's arrays plus JSON metadata in one ``.npz`` (no pickles).

Layout of the archive:

* ``param/<layer path>/<key>`` and ``buffer/<layer path>/<key>``: the model's arrays;
* ``meta``: a 0-d unicode array holding JSON (the :class:`ModelSpec`, dtype, data
  normalisation, loss, class names, epoch...).

Files are written atomically (temp file + rename), so a killed process never leaves a
truncated checkpoint, and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.models.build import ModelSpec, build_model
from toolkit.nn.layer import Layer
from toolkit.registry import ConfigError


def model_arrays(model: Layer) -> dict[str, np.ndarray]:
    """All params and buffers of ``model`` keyed ``param/<path>/<key>``, ``buffer/...``."""
    arrays = {}
    for path, layer in model.named_layers():
        for key, value in layer.params.items():
            arrays[f"param/{path}/{key}"] = value
        for key, value in layer.buffers.items():
            arrays[f"buffer/{path}/{key}"] = value
    return arrays


def save_checkpoint(path: str | os.PathLike, model: Layer, meta: dict[str, Any]) -> Path:
    """Write ``model``'s arrays and ``meta`` (JSON-serialisable) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(model_arrays(model))
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
    """Copy ``arrays`` (as from :func:`model_arrays`) into ``model``; every mismatch
    (missing, unexpected or differently shaped parameter) is named in one error."""
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
