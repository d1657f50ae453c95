"""iterate_batches / num_batches: coverage, order, partial batches, dtypes, errors."""

import numpy as np
import pytest

from toolkit.data import iterate_batches, num_batches
from toolkit.registry import ConfigError

N = 103  # not a multiple of the batch size


@pytest.fixture
def data():
    x = np.arange(N, dtype=np.float64)[:, None, None] * np.ones((1, 2, 3))  # (N, 2, 3) ids
    y = np.arange(N, dtype=np.int64)
    return x, y


def test_shuffled_epoch_covers_every_sample_exactly_once(data):
    x, y = data
    batches = list(iterate_batches(x, y, 10, shuffle=True, rng=np.random.default_rng(0)))
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(N))
    assert not np.array_equal(seen, np.arange(N))  # actually shuffled
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0, 0], yb)  # inputs stay with their targets


def test_last_partial_batch_is_kept_or_dropped(data):
    x, y = data
    sizes = [len(yb) for _, yb in iterate_batches(x, y, 10, shuffle=False, rng=None)]
    assert sizes == [10] * 10 + [3] and len(sizes) == num_batches(N, 10)
    kept = [len(yb) for _, yb in iterate_batches(x, y, 10, False, None, drop_last=True)]
    assert kept == [10] * 10 and len(kept) == num_batches(N, 10, drop_last=True)


def test_unshuffled_batches_are_in_order(data):
    x, y = data
    seen = np.concatenate([yb for _, yb in iterate_batches(x, y, 32, shuffle=False, rng=None)])
    np.testing.assert_array_equal(seen, np.arange(N))


def test_batches_are_contiguous_float32_and_labels_keep_their_dtype(data):
    x, y = data
    for xb, yb in iterate_batches(x, y, 16, shuffle=True, rng=np.random.default_rng(1)):
        assert xb.dtype == np.float32 and xb.flags.c_contiguous and xb.shape[1:] == (2, 3)
        assert yb.dtype == np.int64 and yb.flags.c_contiguous


def test_float_targets_become_float32(data):
    x, _ = data
    targets = np.zeros((N, 2))
    _, yb = next(iterate_batches(x, targets, 8, shuffle=False, rng=None))
    assert yb.dtype == np.float32 and yb.shape == (8, 2)


def test_the_same_generator_state_gives_the_same_order(data):
    x, y = data

    def order(seed):
        rng = np.random.default_rng(seed)
        return np.concatenate([yb for _, yb in iterate_batches(x, y, 10, True, rng)])

    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))


def test_each_call_draws_a_new_permutation(data):
    x, y = data
    rng = np.random.default_rng(0)
    first = np.concatenate([yb for _, yb in iterate_batches(x, y, 10, True, rng)])
    second = np.concatenate([yb for _, yb in iterate_batches(x, y, 10, True, rng)])
    assert not np.array_equal(first, second)


def test_shuffle_without_a_generator_still_covers_everything(data):
    x, y = data
    seen = np.concatenate([yb for _, yb in iterate_batches(x, y, 7, shuffle=True, rng=None)])
    assert sorted(seen.tolist()) == list(range(N))


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True, "64"])
def test_batch_size_must_be_a_positive_int(data, batch_size):
    x, y = data
    with pytest.raises(ConfigError, match="must be a positive int"):
        next(iterate_batches(x, y, batch_size, shuffle=False, rng=None))
    with pytest.raises(ConfigError, match="must be a positive int"):
        num_batches(N, batch_size)


def test_mismatched_lengths_are_rejected(data):
    x, y = data
    with pytest.raises(ValueError, match="x has 103 samples but y has 102"):
        next(iterate_batches(x, y[:-1], 10, shuffle=False, rng=None))


def test_batches_take_the_requested_float_dtype(data):
    """A float64 model gets float64 batches (and float targets), not float32 ones."""
    x, _ = data
    targets = np.zeros((N, 2), dtype=np.float32)
    for xb, yb in iterate_batches(x, targets, 16, True, np.random.default_rng(1), dtype="float64"):
        assert xb.dtype == np.float64 and xb.flags.c_contiguous
        assert yb.dtype == np.float64
        np.testing.assert_array_equal(xb[:, 0, 0], np.round(xb[:, 0, 0]))  # ids, not rounded


def test_batch_dtype_must_be_a_float_dtype(data):
    x, y = data
    with pytest.raises(ConfigError, match="must be a float dtype"):
        iterate_batches(x, y, 8, shuffle=False, rng=None, dtype="int32")
