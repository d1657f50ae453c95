"""Small generated datasets that need no files: xor, sin regression, spirals.

Each is a registered dataset factory, deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np

from toolkit.data.dataset import Dataset
from toolkit.registry import ParameterError, datasets

XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_TARGETS = np.array([[0], [1], [1], [0]], dtype=np.float32)
SPIRAL_SWEEP_RAD = 4.0  # how far (radians) each spiral arm turns from the centre to radius 1


def _require(condition: bool, owner: str, template: str) -> None:
    """A :class:`~toolkit.registry.ParameterError` of dataset ``owner`` unless ``condition``;
    ``template`` marks its parameters in braces."""
    if not condition:
        raise ParameterError(owner, template)


@datasets.register("xor")
def xor(seed: int = 0, repeat: int = 1) -> Dataset:
    """The four XOR patterns as a regression task (for MSE or BCE on one output).

    Args:
        seed: orders the training rows (a permutation of the ``repeat`` copies).
        repeat: copies of the 4 patterns in the training set (more steps per epoch).

    Returns:
        x_train float32 (4 * repeat, 2), y_train float32 (4 * repeat, 1) in {0, 1};
        the test set is the 4 patterns once, in the order 00, 01, 10, 11.
    """
    _require(
        isinstance(repeat, int) and repeat >= 1,
        "xor",
        f"{{repeat}}={repeat!r} must be an int >= 1",
    )
    order = np.random.default_rng(seed).permutation(4 * repeat)
    return Dataset(
        name="xor",
        task="regression",
        x_train=np.tile(XOR_INPUTS, (repeat, 1))[order],
        y_train=np.tile(XOR_TARGETS, (repeat, 1))[order],
        x_test=XOR_INPUTS.copy(),
        y_test=XOR_TARGETS.copy(),
    )


@datasets.register("sin")
def sin(seed: int = 0, n_train: int = 1000, n_test: int = 200, noise: float = 0.0) -> Dataset:
    """Regression of y = sin(x) on x in [-2 pi, 2 pi].

    Args:
        seed: draws the training inputs (uniform) and noise.
        n_train: training samples, x drawn uniformly.
        n_test: test samples on an evenly spaced grid including both ends.
        noise: std of Gaussian noise added to the training targets only.

    Returns:
        x float32 (N, 1), y float32 (N, 1).
    """
    _require(
        n_train >= 1 and n_test >= 2,
        "sin",
        f"{{n_train}}={n_train} must be >= 1 and {{n_test}}={n_test} >= 2",
    )
    _require(noise >= 0, "sin", f"{{noise}}={noise} must be >= 0")
    rng = np.random.default_rng(seed)
    x_train = rng.uniform(-2 * np.pi, 2 * np.pi, size=(n_train, 1))
    y_train = np.sin(x_train) + noise * rng.standard_normal((n_train, 1))
    x_test = np.linspace(-2 * np.pi, 2 * np.pi, n_test).reshape(-1, 1)
    return Dataset(
        name="sin",
        task="regression",
        x_train=x_train.astype(np.float32),
        y_train=y_train.astype(np.float32),
        x_test=x_test.astype(np.float32),
        y_test=np.sin(x_test).astype(np.float32),
    )


@datasets.register("spirals")
def spirals(seed: int = 0, n_per_class: int = 100, classes: int = 2, noise: float = 0.2) -> Dataset:
    """Interleaved spiral arms in the plane, one class per arm (CS231n's toy problem).

    A point of arm k at radius r ~ U(0, 1) sits at angle 2 pi k / classes + 4 r (+ noise).

    Args:
        seed: draws radii and noise; the test set is an independent draw of the same size.
        n_per_class: points per arm, in the training set and in the test set.
        classes: number of arms (>= 2).
        noise: std of Gaussian noise on the angle, in radians.

    Returns:
        x float32 (classes * n_per_class, 2) in [-1, 1]^2, y int64 class indices;
        training rows in random order, test rows grouped by class.
    """
    _require(classes >= 2, "spirals", f"{{classes}}={classes} must be >= 2")
    _require(n_per_class >= 1, "spirals", f"{{n_per_class}}={n_per_class} must be >= 1")
    _require(noise >= 0, "spirals", f"{{noise}}={noise} must be >= 0")
    rng = np.random.default_rng(seed)
    x_train, y_train = _spiral_points(rng, n_per_class, classes, noise)
    order = rng.permutation(len(y_train))
    x_test, y_test = _spiral_points(rng, n_per_class, classes, noise)
    return Dataset(
        name="spirals",
        task="classification",
        x_train=x_train[order],
        y_train=y_train[order],
        x_test=x_test,
        y_test=y_test,
        num_classes=classes,
        class_names=[f"arm {k}" for k in range(classes)],
    )


def _spiral_points(
    rng: np.random.Generator, n_per_class: int, classes: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """float32 points (classes * n_per_class, 2) and int64 labels, grouped by class."""
    labels = np.repeat(np.arange(classes, dtype=np.int64), n_per_class)
    radius = rng.uniform(0.0, 1.0, size=labels.size)
    angle = 2 * np.pi * labels / classes + SPIRAL_SWEEP_RAD * radius
    angle += noise * rng.standard_normal(labels.size)
    points = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return points.astype(np.float32), labels
