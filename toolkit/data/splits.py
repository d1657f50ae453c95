"""Seeded train/validation/test splits of a :class:`Dataset`.

Two modes, chosen by ``test``:

- ``test == 0``: the dataset's own test set is the test split; ``train`` and ``val``
  (summing to 1) partition its training set, e.g. ``train=0.75, val=0.25``.
- ``test > 0``: training and test data are pooled and cut into ``train``/``val``/``test``
  (summing to 1), e.g. the 70/30, 80/20 and 90/10 studies.

Classification splits are stratified: every class is spread over the splits in the
requested proportions (to within one sample per class), while the split sizes are exact.
Each split keeps the pool's original order (indices ascending).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolkit.data.dataset import Dataset
from toolkit.registry import ParameterError

TOLERANCE = 1e-6
OWNER = "split_dataset"  # the function whose parameters the messages name


@dataclass
class ArrayData:
    """Inputs ``x`` (N, ...) and targets ``y`` (N, ...) of one split."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Splits:
    """The train, validation (``None`` when ``val == 0``) and test data of a run."""

    train: ArrayData
    val: ArrayData | None
    test: ArrayData


def split_dataset(
    dataset: Dataset, /, train: float = 0.9, val: float = 0.1, test: float = 0.0, seed: int = 0
) -> Splits:
    """Split ``dataset`` into train/val/test by fractions (see the module docstring).

    The defaults (the dataset's own test set, its training set split 90/10 into train and
    validation) are also the config's ``split`` defaults (``toolkit.app.schemas``).

    Args:
        dataset: the data to split; its arrays are not modified.
        train, val, test: fractions in [0, 1] summing to 1; ``train`` > 0.
        seed: makes the split reproducible.

    Raises:
        ConfigError: fractions out of range, not summing to 1, or leaving a requested
            split without samples.
    """
    fractions = {"train": train, "val": val, "test": test}
    _check_fractions(fractions)
    if test == 0:
        pool_x, pool_y = dataset.x_train, dataset.y_train
        test_data = ArrayData(dataset.x_test, dataset.y_test)
        if val == 0:
            return Splits(ArrayData(pool_x, pool_y), None, test_data)
    else:
        pool_x = np.concatenate([dataset.x_train, dataset.x_test])
        pool_y = np.concatenate([dataset.y_train, dataset.y_test])
    sizes = _sizes(len(pool_y), fractions)
    if dataset.task == "classification":
        order = _stratified_order(pool_y, seed)
    else:
        order = np.random.default_rng(seed).permutation(len(pool_y))
    bounds = np.cumsum([0, sizes["train"], sizes["val"], sizes["test"]])
    parts = [np.sort(order[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    train_idx, val_idx, test_idx = parts
    return Splits(
        train=ArrayData(pool_x[train_idx], pool_y[train_idx]),
        val=ArrayData(pool_x[val_idx], pool_y[val_idx]) if val > 0 else None,
        test=ArrayData(pool_x[test_idx], pool_y[test_idx]) if test > 0 else test_data,
    )


def _check_fractions(fractions: dict[str, float]) -> None:
    """A one-line ParameterError (naming ``train``, ``val``, ``test``) unless the fractions
    are valid."""
    setting = " ".join(f"{{{name}}}={value}" for name, value in fractions.items())
    for name, value in fractions.items():
        if not 0 <= value <= 1:
            raise ParameterError(OWNER, f"{{{name}}}={value} must be in [0, 1] ({setting})")
    total = sum(fractions.values())
    if abs(total - 1) > TOLERANCE:
        raise ParameterError(
            OWNER,
            f"{{train}} + {{val}} + {{test}} = {total:g} ({setting}) must be 1; "
            "e.g. {train}=0.8 {val}=0 {test}=0.2, or {test}=0 to keep the "
            "dataset's own test set and {train} + {val} = 1",
        )
    if fractions["train"] == 0:
        raise ParameterError(OWNER, f"{{train}} must be > 0 ({setting})")


def _sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Sample counts per split, summing to ``n``; ConfigError if a requested split is empty."""
    val = round(fractions["val"] * n)
    test = round(fractions["test"] * n)
    sizes = {"train": n - val - test, "val": val, "test": test}
    for name, size in sizes.items():
        if fractions[name] > 0 and size == 0:
            raise ParameterError(
                OWNER,
                f"{{{name}}}={fractions[name]} of {n} samples leaves it empty; "
                f"raise {{{name}}} or use more data",
            )
    return sizes


def _stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of ``range(len(labels))`` in which every prefix holds each class in
    (almost exactly) its overall proportion: samples are shuffled, then sorted by their
    quantile ``(rank within class + 0.5) / class size`` (ties stay in shuffled order)."""
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    classes = np.unique(labels[shuffled], return_inverse=True)[1]
    counts = np.bincount(classes)
    by_class = np.argsort(classes, kind="stable")
    rank = np.empty(len(labels))
    rank[by_class] = np.arange(len(labels)) - np.repeat(np.cumsum(counts) - counts, counts)
    quantile = (rank + 0.5) / counts[classes]
    return shuffled[np.argsort(quantile, kind="stable")]
