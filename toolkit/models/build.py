"""Build a model from its registry name, hyperparameters and the data's shapes; what a
model builder and the model it returns may declare about themselves.

* The task a builder is made for, declared where it registers:
  ``@models.register("autoencoder", task=RECONSTRUCTION)``, read with
  :func:`declared_task` (builders that declare none take the dataset's task).
* An encoder: a model with an ``encoder()`` method (:class:`HasEncoder`, e.g.
  :class:`~toolkit.models.autoencoder.EncoderDecoder`) maps inputs to codes with it,
  and the latent-probe analyses apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from toolkit.nn.layer import Sequential
from toolkit.registry import models

#: the task of a model trained to output its own (flattened) input
RECONSTRUCTION = "reconstruction"


def declared_task(name: str) -> str | None:
    """The task model builder ``name`` declares (``RECONSTRUCTION`` for the autoencoders),
    or None when it fits the dataset's task."""
    return models.declared(name).get("task")


@runtime_checkable
class HasEncoder(Protocol):
    """A model whose leading layers map an input (N, ...) to a code (N, D)."""

    def encoder(self) -> Sequential:
        """Those leading layers (sharing the model's built layers, no copies)."""
        ...


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model (stored in checkpoints as JSON).

    Attributes:
        name: registered model builder (``"mlp"``, ``"cnn"``...).
        hparams: the builder's keyword hyperparameters.
        input_shape: per-sample input shape, e.g. (1, 28, 28).
        num_outputs: size of the output layer (classes or regression targets).
    """

    name: str
    input_shape: tuple[int, ...]
    num_outputs: int
    hparams: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "hparams": self.hparams,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(data["name"], tuple(data["input_shape"]), data["num_outputs"], data["hparams"])


def build_model(spec: ModelSpec, seed: int = 0, dtype: str | np.dtype = "float32") -> Sequential:
    """Construct and build (initialise) the model ``spec`` describes.

    Raises ConfigError for unknown names, bad hyperparameters or shapes that do not fit,
    before any training starts.
    """
    model = models.build(spec.name, spec.input_shape, spec.num_outputs, **spec.hparams)
    model.build(spec.input_shape, np.random.default_rng(seed), np.dtype(dtype))
    return model
