"""Classification metrics on NumPy arrays."""

from __future__ import annotations

import numpy as np


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows of ``outputs`` (N, K) whose argmax equals ``labels`` (N,)."""
    return float(np.mean(outputs.argmax(axis=1) == labels))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: rows are true classes, columns predicted classes."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
