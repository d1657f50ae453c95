"""The convolutional model builders: shapes, options, training signal and config errors."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.nn.layer import Sequential
from toolkit.registry import ConfigError, load_builtins, models

load_builtins()

MNIST = (1, 28, 28)


def build(name: str, input_shape=MNIST, num_outputs: int = 10, **hparams) -> Sequential:
    model = models.build(name, input_shape, num_outputs, **hparams)
    assert isinstance(model, Sequential)
    model.build(input_shape, np.random.default_rng(0), np.dtype(np.float32))
    return model


def images(n: int = 4, shape=MNIST) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "hparams"),
    [
        ("cnn", {}),
        ("cnn", {"pool": "avg", "batchnorm": True, "dropout": 0.5, "activation": "tanh"}),
        ("cnn", {"channels": [8], "kernel_size": 5, "hidden": 16}),
        ("cnn_single", {}),
        ("resnet", {"channels": [4, 8], "blocks": [1, 1]}),
        ("resnet", {"channels": [4, 8], "blocks": [1, 2], "residual": False}),
        ("resnet", {"channels": [4], "blocks": [1], "batchnorm": False}),
    ],
)
def test_models_produce_logits_for_mnist(name, hparams):
    model = build(name, **hparams)
    x = images()
    logits = model.forward(x, training=True)
    assert logits.shape == (4, 10) and logits.dtype == np.float32
    dx = model.backward(np.ones_like(logits))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert model.forward(x, training=False).shape == (4, 10)


def test_cnn_default_architecture():
    model = build("cnn")
    kinds = [layer.kind for _, layer in model.named_layers()]
    assert kinds == [
        "conv2d", "relu", "maxpool2d", "conv2d", "relu", "maxpool2d",
        "flatten", "dense", "relu", "dense",
    ]  # fmt: skip
    assert model[5].output_shape == (32, 7, 7)
    assert model.num_params() == 160 + 4640 + 1568 * 128 + 128 + 1290


def test_cnn_single_is_the_reference_net():
    model = build("cnn_single")
    assert model[0].params["W"].shape == (8, 1, 3, 3)
    assert model[0].output_shape == (8, 26, 26)
    assert model[3].params["W"].shape == (8 * 26 * 26, 10)


def test_resnet_plain_twin_has_the_same_parameters_without_skips():
    residual = build("resnet", channels=[4, 8], blocks=[1, 1])
    plain = build("resnet", channels=[4, 8], blocks=[1, 1], residual=False)
    paths = [path for path, _ in residual.named_layers()]
    assert "4.residual_block.proj" not in [p for p, _ in plain.named_layers()]
    assert "4.residual_block.proj" in paths
    assert residual.output_shape == plain.output_shape == (10,)
    assert residual[4].output_shape == (8, 14, 14)


def test_cnn_learns_a_small_batch():
    """A few Adam-free SGD steps on one batch reduce the cross-entropy: gradients flow."""
    model = build("cnn", channels=[4, 8], hidden=16)
    x, labels = images(8), np.arange(8) % 10
    losses = []
    for _ in range(15):
        logits = model.forward(x, training=True)
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        losses.append(-np.log(probs[np.arange(8), labels]).mean())
        probs[np.arange(8), labels] -= 1
        model.backward(probs / 8)
        for _, layer in model.named_layers():
            for key, param in layer.params.items():
                param -= 0.05 * layer.grads[key]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    ("name", "hparams", "message"),
    [
        ("cnn", {"pool": "mean"}, "model.pool='mean' is not one of: avg, max"),
        ("cnn", {"channels": [16, 0]}, "model.channels=0 must be a positive integer"),
        ("cnn", {"channels": []}, "model.channels=[] must be a non-empty list"),
        ("cnn", {"kernel_size": 4}, "model.kernel_size=4 must be odd"),
        ("cnn", {"hidden": -1}, "model.hidden=-1 must be a positive integer"),
        ("cnn", {"dropout": 1.0}, "model.dropout=1.0 must be in [0, 1)"),
        ("cnn", {"activation": "relux"}, "unknown activation 'relux'"),
        ("cnn_single", {"filters": 2.5}, "model.filters=2.5 must be a positive integer"),
        ("resnet", {"blocks": [1, 1]}, "model.blocks has 2 entries but model.channels has 3"),
        ("resnet", {"channels": "16"}, "model.channels='16' must be a non-empty list"),
    ],
)
def test_bad_hyperparameters_raise_config_error(name, hparams, message):
    with pytest.raises(ConfigError) as info:
        models.build(name, MNIST, 10, **hparams)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["cnn", "cnn_single", "resnet"])
def test_flat_inputs_are_rejected_with_the_fix(name):
    with pytest.raises(ConfigError, match=r"needs \(channels, height, width\) images"):
        models.build(name, (784,), 10)


def test_too_many_pooling_stages_name_the_layer_and_shape():
    model = models.build("cnn", (1, 8, 8), 10, channels=[4, 4, 4, 4])
    with pytest.raises(ConfigError, match=r"MaxPool2d.*\(4, 1, 1\).*larger than the 1x1 input"):
        model.build((1, 8, 8), np.random.default_rng(0), np.dtype(np.float32))
