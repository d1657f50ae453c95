"""split_dataset: fractions, modes, reproducibility, disjointness, stratification, errors."""

import numpy as np
import pytest

from toolkit.data import Dataset, load_dataset, split_dataset
from toolkit.registry import ConfigError


def id_dataset(n_train: int = 100, n_test: int = 20, classes: int = 4) -> Dataset:
    """Classification data whose x holds each row's id: train 0..n_train-1, test after."""
    ids = np.arange(n_train + n_test, dtype=np.float32)[:, None]
    labels = np.arange(n_train + n_test) % classes
    return Dataset(
        "ids", "classification", ids[:n_train], labels[:n_train], ids[n_train:], labels[n_train:],
        num_classes=classes,
    )  # fmt: skip


def ids(part) -> set[int]:
    return {int(v) for v in part.x[:, 0]}


def test_no_val_no_test_keeps_the_dataset_as_is():
    data = id_dataset()
    splits = split_dataset(data, train=1.0, val=0.0, test=0.0, seed=0)
    assert splits.val is None
    assert splits.train.x is data.x_train and splits.test.x is data.x_test


def test_validation_is_cut_from_the_training_set_and_the_test_set_is_kept():
    data = id_dataset()
    splits = split_dataset(data, train=0.75, val=0.25, test=0.0, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (75, 25, 20)
    assert ids(splits.train).isdisjoint(ids(splits.val))
    assert ids(splits.train) | ids(splits.val) == set(range(100))
    assert ids(splits.test) == set(range(100, 120))


@pytest.mark.parametrize(("train", "test"), [(0.7, 0.3), (0.8, 0.2), (0.9, 0.1)])
def test_a_test_fraction_pools_and_resplits_all_data(train, test):
    splits = split_dataset(id_dataset(), train=train, val=0.0, test=test, seed=0)
    assert splits.val is None
    assert (len(splits.train), len(splits.test)) == (round(120 * train), round(120 * test))
    assert ids(splits.train).isdisjoint(ids(splits.test))
    assert ids(splits.train) | ids(splits.test) == set(range(120))


def test_three_way_split_is_disjoint_and_complete():
    splits = split_dataset(id_dataset(), train=0.6, val=0.2, test=0.2, seed=1)
    parts = [ids(splits.train), ids(splits.val), ids(splits.test)]
    assert [len(p) for p in parts] == [72, 24, 24]
    assert set.union(*parts) == set(range(120)) and sum(map(len, parts)) == 120


def test_labels_stay_with_their_inputs():
    data = id_dataset()
    splits = split_dataset(data, train=0.7, val=0.1, test=0.2, seed=2)
    for part in (splits.train, splits.val, splits.test):
        np.testing.assert_array_equal(part.y, part.x[:, 0].astype(int) % 4)


def test_splits_are_reproducible_per_seed():
    data = id_dataset()
    first = split_dataset(data, train=0.7, val=0.0, test=0.3, seed=5)
    again = split_dataset(data, train=0.7, val=0.0, test=0.3, seed=5)
    other = split_dataset(data, train=0.7, val=0.0, test=0.3, seed=6)
    np.testing.assert_array_equal(first.test.x, again.test.x)
    assert not np.array_equal(first.test.x, other.test.x)


def test_classification_splits_are_stratified():
    labels = np.repeat([0, 1, 2], [60, 30, 10])  # imbalanced, grouped by class
    x = np.arange(100, dtype=np.float32)[:, None]
    data = Dataset("imbalanced", "classification", x, labels, x[:1], labels[:1], num_classes=3)
    splits = split_dataset(data, train=0.8, val=0.2, test=0.0, seed=0)
    val_counts = np.bincount(splits.val.y, minlength=3)
    assert np.all(np.abs(val_counts - np.array([12, 6, 2])) <= 1), val_counts


def test_regression_data_splits_too():
    splits = split_dataset(load_dataset("sin", n_train=100, n_test=50), train=0.5, val=0.5, seed=0)
    assert len(splits.train) == len(splits.val) == 50 and len(splits.test) == 50
    assert splits.train.y.shape == (50, 1)


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.7, 0.2, 0.2), r"split_dataset: train \+ val \+ test = 1.1"),
        ((0.7, 0.0, 0.0), r"= 0.7 \(train=0.7 val=0.0 test=0.0\) must be 1"),
        ((0.9, -0.2, 0.3), r"val=-0.2 must be in \[0, 1\]"),
        ((0.0, 0.5, 0.5), "split_dataset: train must be > 0"),
    ],
)
def test_bad_fractions_are_one_line_config_errors(fractions, message):
    train, val, test = fractions
    with pytest.raises(ConfigError, match=message) as err:
        split_dataset(id_dataset(), train=train, val=val, test=test, seed=0)
    assert "\n" not in str(err.value)


def test_a_requested_split_too_small_to_hold_a_sample_is_an_error():
    with pytest.raises(ConfigError, match=r"split_dataset: val=0.1 of 4 samples leaves it empty"):
        split_dataset(load_dataset("xor"), train=0.9, val=0.1, test=0.0, seed=0)
