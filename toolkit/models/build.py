"""Build a model from its registry name, hyperparameters and the data's shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.nn.layer import Sequential
from toolkit.registry import models


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
    model = models.build(spec.name, spec.input_shape, spec.num_outputs, key="model", **spec.hparams)
    model.build(spec.input_shape, np.random.default_rng(seed), np.dtype(dtype))
    return model
