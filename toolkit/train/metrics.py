"""Classification metrics on NumPy arrays."""

from __future__ import annotations

import numpy as np


def is_accuracy(metric: str) -> bool:
    """Whether metric name ``metric`` is an accuracy, a fraction in [0, 1] (``val/acc``,
    ``probe/test_acc``)."""
    return metric.endswith("acc")


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better: accuracies rank highest first, everything
    else (losses, errors, gradient norms) lowest first. The one rule for early stopping,
    sweep objectives, run tables and study reports."""
    return is_accuracy(metric)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows of ``outputs`` (N, K) whose argmax equals ``labels`` (N,)."""
    return float(np.mean(outputs.argmax(axis=1) == labels))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: rows are true classes, columns predicted classes."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
