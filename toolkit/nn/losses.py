"""Losses: ``forward(output, target) -> float`` (mean over the batch), ``backward() -> dL/doutput``.

Models emit raw outputs (logits for classification); each loss owns its output *link*
(softmax for cross-entropy, sigmoid for BCE, identity for MSE) that turns outputs into
predictions, so the numerically delicate part stays fused inside the loss.

Targets: integer class labels of shape (N,) are one-hot encoded where the loss needs
dense targets (MSE and BCE on a classification dataset); dense targets have the output's
shape (N, K).
"""

from __future__ import annotations

import numpy as np

from toolkit.registry import ConfigError, bad_value, losses


def one_hot(labels: np.ndarray, num_classes: int, dtype: np.dtype) -> np.ndarray:
    """(N,) integer labels -> (N, num_classes) one-hot rows."""
    encoded = np.zeros((labels.shape[0], num_classes), dtype=dtype)
    encoded[np.arange(labels.shape[0]), labels] = 1
    return encoded


def dense_target(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The target as an array shaped like ``output`` (one-hot for integer labels)."""
    if target.ndim == 1 and output.ndim == 2 and np.issubdtype(target.dtype, np.integer):
        return one_hot(target, output.shape[1], output.dtype)
    if target.shape != output.shape:
        raise ConfigError(
            f"target shape {target.shape} does not match the model output {output.shape}; "
            "check the model's output size against the dataset"
        )
    return target.astype(output.dtype, copy=False)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log(softmax(logits)) over the last axis without overflow: (N, K) -> (N, K)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class Loss:
    """Base class. ``kinks`` lists output values where the loss is not differentiable."""

    kind = "loss"
    kinks: tuple[float, ...] = ()
    #: the loss is a mean over samples: shards' values weighted by their share of the
    #: batch add up to it (so a data-parallel step may split the batch)
    shards_batch: bool = False

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def link(self, output: np.ndarray) -> np.ndarray:
        """Model outputs -> predictions (probabilities or values)."""
        return output

    def __call__(self, output: np.ndarray, target: np.ndarray) -> float:
        return self.forward(output, target)


@losses.register("cross_entropy")
class CrossEntropy(Loss):
    """Softmax cross-entropy on logits (N, K) with integer labels (N,) or target
    distributions (N, K); mean over the batch, in nats.

    Args:
        label_smoothing: mix ``label_smoothing`` of the uniform distribution into each
            target (as ``torch.nn.CrossEntropyLoss``).
    """

    kind = "cross_entropy"
    shards_batch = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise bad_value(self, "label_smoothing", "in [0, 1)", label_smoothing)
        self.label_smoothing = label_smoothing

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        n, k = output.shape
        if target.ndim == 1 and self.label_smoothing == 0.0:
            # the log-softmax at the labels only: shifted logit - log(sum of exps)
            shifted = output - np.maximum.reduce(output, axis=1, keepdims=True)
            self._probs = probs = np.exp(shifted)
            sums = np.add.reduce(probs, axis=1, keepdims=True)
            probs /= sums
            self._picks = target + np.arange(0, n * k, k)  # flat index of each label
            self._target = None
            return float(np.log(sums).sum() - shifted.ravel().take(self._picks).sum()) / n
        log_probs = log_softmax(output)
        self._probs = np.exp(log_probs)
        dense = dense_target(output, target)
        if self.label_smoothing:
            dense = dense * (1.0 - self.label_smoothing) + self.label_smoothing / k
        self._picks, self._target = None, dense
        return float(-(dense * log_probs).sum() / n)

    def backward(self) -> np.ndarray:
        scale = self._probs.dtype.type(1.0 / self._probs.shape[0])  # the mean over samples
        grad = self._probs * scale
        if self._picks is not None:
            grad.ravel()[self._picks] -= scale
        else:
            grad -= self._target * scale
        return grad

    def link(self, output: np.ndarray) -> np.ndarray:
        return np.exp(log_softmax(output))


@losses.register("mse")
class MeanSquaredError(Loss):
    """Mean of squared errors over all elements: mean((output - target)^2)."""

    kind = "mse"
    shards_batch = True

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        self._diff = output - dense_target(output, target)
        return float(np.mean(self._diff * self._diff))

    def backward(self) -> np.ndarray:
        return self._diff * (2.0 / self._diff.size)


@losses.register("bce")
class BinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits (sigmoid fused, stable for any logit), mean over all
    elements; targets in [0, 1] with the output's shape (or integer labels, one-hot)."""

    kind = "bce"
    shards_batch = True

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        self._output, self._target = output, dense_target(output, target)
        losses_ = np.maximum(output, 0) - output * self._target + np.log1p(np.exp(-np.abs(output)))
        return float(np.mean(losses_))

    def backward(self) -> np.ndarray:
        return (self.link(self._output) - self._target) / self._output.size

    def link(self, output: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.tanh(0.5 * output))
