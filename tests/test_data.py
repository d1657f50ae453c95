"""toolkit.data: the Dataset container, image preprocessing, synthetic datasets and the
dataset registry."""

import numpy as np
import pytest

from toolkit.data import Dataset, load_dataset, preprocess_images
from toolkit.registry import ConfigError, datasets

MNIST_NORMALIZATION = (0.1307, 0.3081)


def test_all_datasets_are_registered():
    expected = {"torchvision", "mnist", "fashion_mnist", "kmnist", "emnist", "cifar10"}
    assert expected | {"xor", "sin", "spirals"} <= set(datasets.names())


def test_unknown_dataset_name_suggests_close_matches():
    with pytest.raises(ConfigError, match="did you mean: mnist") as err:
        load_dataset("mnits")
    assert "\n" not in str(err.value)


def test_unknown_hyperparameter_lists_the_accepted_ones():
    with pytest.raises(ConfigError, match="n_per_class") as err:
        load_dataset("spirals", n_points=10)
    assert "n_points" in str(err.value)


# --- Dataset ---------------------------------------------------------------------------


def test_classification_dataset_shapes():
    x = np.zeros((6, 1, 4, 4), np.float32)
    y = np.arange(6) % 3
    data = Dataset("toy", "classification", x, y, x[:2], y[:2], num_classes=3)
    assert data.sample_shape == (1, 4, 4)
    assert data.num_outputs == 3


def test_regression_dataset_outputs_are_the_target_width():
    x, y = np.zeros((5, 2), np.float32), np.zeros((5, 3), np.float32)
    data = Dataset("toy", "regression", x, y, x, y)
    assert data.sample_shape == (2,)
    assert data.num_outputs == 3


def test_dataset_rejects_mismatched_lengths():
    x = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match="x_train has 5 samples but y_train 4"):
        Dataset("toy", "regression", x, x[:4], x, x)


# --- preprocess_images -----------------------------------------------------------------


def test_grayscale_images_gain_a_channel_axis_and_are_normalised():
    raw = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # (1, 2, 2)
    out = preprocess_images(raw, MNIST_NORMALIZATION)
    mean, std = MNIST_NORMALIZATION
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[0, 0], (raw[0] / 255 - mean) / std, rtol=1e-6, atol=1e-6)


def test_without_normalization_pixels_are_scaled_to_unit_range():
    raw = np.array([[[0, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_images(raw, None), [[[[0.0, 1.0]]]])


def test_channels_last_images_become_channels_first():
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    out = preprocess_images(nhwc, None)
    assert out.shape == (2, 3, 5, 6) and out.flags.c_contiguous
    np.testing.assert_allclose(out[1, 2], nhwc[1, :, :, 2] / 255, rtol=1e-6)


def test_channels_first_images_keep_their_layout():
    nchw = np.full((2, 3, 5, 6), 255, dtype=np.uint8)
    assert preprocess_images(nchw, None).shape == (2, 3, 5, 6)


def test_float_pixels_on_the_raw_scale_are_accepted():
    raw = np.array([[[0.0, 127.5, 255.0]]])  # e.g. JSON input to a deployed model
    np.testing.assert_allclose(preprocess_images(raw, None), [[[[0.0, 0.5, 1.0]]]])


def test_unreadable_image_shape_is_a_config_error():
    with pytest.raises(ConfigError, match=r"cannot read images of shape \(2, 5, 6, 7\)"):
        preprocess_images(np.zeros((2, 5, 6, 7), np.uint8), None)


# --- synthetic datasets ----------------------------------------------------------------


def test_xor_is_the_four_patterns_as_regression_targets():
    data = load_dataset("xor")
    assert data.task == "regression" and data.num_outputs == 1
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.float32
    np.testing.assert_array_equal(data.x_test, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(data.y_test, [[0], [1], [1], [0]])
    rows = {(tuple(x), float(y[0])) for x, y in zip(data.x_train, data.y_train, strict=True)}
    assert rows == {((0, 0), 0.0), ((0, 1), 1.0), ((1, 0), 1.0), ((1, 1), 0.0)}


def test_xor_repeat_tiles_the_patterns_in_a_seeded_order():
    data = load_dataset("xor", repeat=5, seed=3)
    assert data.x_train.shape == (20, 2) and data.y_train.shape == (20, 1)
    np.testing.assert_array_equal(data.y_train[:, 0], np.logical_xor(*data.x_train.T))
    np.testing.assert_array_equal(load_dataset("xor", repeat=5, seed=3).x_train, data.x_train)
    assert not np.array_equal(load_dataset("xor", repeat=5, seed=4).x_train, data.x_train)


def test_sin_targets_and_test_grid():
    data = load_dataset("sin", n_train=50, n_test=9)
    assert data.x_train.shape == data.y_train.shape == (50, 1)
    assert data.x_train.dtype == data.y_train.dtype == np.float32
    assert np.all(np.abs(data.x_train) <= 2 * np.pi + 1e-6)
    np.testing.assert_allclose(data.y_train, np.sin(data.x_train), atol=1e-6)
    np.testing.assert_allclose(data.x_test[:, 0], np.linspace(-2 * np.pi, 2 * np.pi, 9), atol=1e-6)


def test_sin_noise_is_seeded_and_only_on_training_targets():
    noisy = load_dataset("sin", n_train=200, noise=0.1, seed=1)
    residual = noisy.y_train - np.sin(noisy.x_train)
    assert 0.05 < residual.std() < 0.15
    np.testing.assert_allclose(noisy.y_test, np.sin(noisy.x_test), atol=1e-6)
    np.testing.assert_array_equal(
        load_dataset("sin", n_train=200, noise=0.1, seed=1).y_train, noisy.y_train
    )
    assert not np.array_equal(
        load_dataset("sin", n_train=200, noise=0.1, seed=2).x_train, noisy.x_train
    )


@pytest.mark.parametrize("classes", [2, 3])
def test_spirals_have_balanced_classes(classes):
    data = load_dataset("spirals", n_per_class=40, classes=classes)
    n = 40 * classes
    assert data.x_train.shape == data.x_test.shape == (n, 2) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.num_outputs == classes
    assert np.bincount(data.y_train).tolist() == [40] * classes
    assert np.abs(data.x_train).max() <= 1.0
    assert not np.array_equal(data.x_train[np.argsort(data.y_train, kind="stable")], data.x_test)


def test_spirals_are_deterministic_per_seed():
    first, again = load_dataset("spirals", seed=7), load_dataset("spirals", seed=7)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.x_train, load_dataset("spirals", seed=8).x_train)


def test_synthetic_hyperparameters_are_checked():
    with pytest.raises(ConfigError, match="spirals: classes=1 must be >= 2"):
        load_dataset("spirals", classes=1)
    with pytest.raises(ConfigError, match="xor: repeat=0"):
        load_dataset("xor", repeat=0)
    with pytest.raises(ConfigError, match="sin: noise=-1"):
        load_dataset("sin", noise=-1)
