"""Predictions from a trained model on raw inputs (what a deployed model receives)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from toolkit.data.dataset import preprocess_images
from toolkit.nn.layer import Layer, forward_in_batches
from toolkit.registry import ConfigError, losses
from toolkit.train.checkpoint import load_checkpoint


class Predictor:
    """Turns raw inputs into predictions: preprocessing, forward pass, the loss's link.

    Raw images are uint8 pixels, e.g. MNIST as (N, 28, 28) or flattened (N, 784); they get
    the training run's scaling and normalisation. Float inputs are taken as already
    preprocessed and only reshaped to (N, *input_shape).
    """

    def __init__(self, model: Layer, meta: dict[str, Any]) -> None:
        self.model = model
        loss_config = dict(meta["loss"])
        self.loss = losses.build(loss_config.pop("name"), **loss_config)
        self.input_shape = tuple(meta["model"]["input_shape"])
        self.normalization = meta.get("normalization")
        self.dtype = np.dtype(meta.get("dtype", "float32"))
        self.class_names = meta.get("class_names")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> Predictor:
        return cls(*load_checkpoint(path))

    def prepare(self, raw: Any) -> np.ndarray:
        """(N, ...) raw inputs -> (N, *input_shape) model inputs in the model's dtype."""
        x = np.asarray(raw)
        if np.issubdtype(x.dtype, np.integer):
            x = preprocess_images(x.astype(np.uint8), self.normalization)
        size = int(np.prod(self.input_shape))
        if x.size % size:
            raise ConfigError(
                f"inputs of shape {x.shape} do not hold samples of shape {self.input_shape}"
            )
        return x.reshape(-1, *self.input_shape).astype(self.dtype, copy=False)

    def predict_proba(self, raw: Any, batch_size: int = 1000) -> np.ndarray:
        """(N, ...) raw inputs -> (N, K) predictions (class probabilities for classifiers)."""
        return self.loss.link(forward_in_batches(self.model, self.prepare(raw), batch_size))
