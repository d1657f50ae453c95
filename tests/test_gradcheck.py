"""Every registered layer, activation and loss (plugins included) passes a central-difference
gradient check in float64 with relative error <= 1e-7, away from kinks."""

import numpy as np
import pytest

from toolkit.analysis.gradcheck import check_layer, check_loss, layer_cases
from toolkit.registry import activations, layers, losses

TOLERANCE = 1e-7


def away_from_kinks(shape, kinks, rng) -> np.ndarray:
    """Random float64 inputs at least 0.1 away from every kink."""
    x = rng.uniform(-2.0, 2.0, size=shape)
    for kink in kinks:
        near = np.abs(x - kink) < 0.1
        x[near] = kink + np.where(x[near] >= kink, 0.1, -0.1) + 0.5 * (x[near] - kink)
    return x


def all_layer_cases():
    """Every registered layer's declared cases (``Layer.gradcheck_cases``)."""
    for name in layers.names():
        for i, (kwargs, shape) in enumerate(layer_cases(name) or [(None, None)]):
            yield pytest.param(name, kwargs, shape, id=f"{name}-{i}")


@pytest.mark.parametrize("name,kwargs,shape", list(all_layer_cases()))
def test_layer_gradients(name, kwargs, shape):
    assert kwargs is not None, (
        f"layer '{name}' needs constructor arguments: declare gradcheck_cases on its class"
    )
    rng = np.random.default_rng(0)
    layer = layers.build(name, **kwargs)
    layer.build(shape, rng, np.dtype("float64"))
    x = rng.standard_normal((4, *shape))
    for training in (True, False):
        errors = check_layer(layer, x, training=training)
        assert max(errors.values()) <= TOLERANCE, (training, errors)


@pytest.mark.parametrize("name", activations.names())
def test_activation_gradients(name):
    rng = np.random.default_rng(1)
    activation = activations.build(name)
    activation.build((6,), rng, np.dtype("float64"))
    x = away_from_kinks((4, 6), activation.kinks, rng)
    errors = check_layer(activation, x)
    assert errors["input"] <= TOLERANCE, errors


def loss_inputs(name, rng):
    prediction = rng.standard_normal((5, 4))
    if name == "cross_entropy":
        return prediction, rng.integers(0, 4, size=5)
    if name == "bce":
        return prediction, rng.uniform(0, 1, size=(5, 4))
    return prediction, rng.standard_normal((5, 4))


@pytest.mark.parametrize("name", losses.names())
def test_loss_gradients(name):
    rng = np.random.default_rng(2)
    prediction, target = loss_inputs(name, rng)
    assert check_loss(losses.build(name), prediction, target) <= TOLERANCE


def test_cross_entropy_accepts_distributions_and_label_smoothing():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((5, 4))
    soft = rng.dirichlet(np.ones(4), size=5)
    assert check_loss(losses.build("cross_entropy"), logits, soft) <= TOLERANCE
    smoothed = losses.build("cross_entropy", label_smoothing=0.1)
    assert check_loss(smoothed, logits, rng.integers(0, 4, size=5)) <= TOLERANCE


def test_cross_entropy_on_labels_equals_it_on_their_one_hot_rows():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((7, 4)) * 10  # large logits: the max shift matters
    labels = rng.integers(0, 4, size=7)
    on_labels, on_rows = losses.build("cross_entropy"), losses.build("cross_entropy")
    value = on_labels.forward(logits, labels)
    expected = -np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[range(7), labels]
    assert value == pytest.approx(expected.mean(), rel=1e-12)
    assert on_rows.forward(logits, np.eye(4)[labels]) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(on_labels.backward(), on_rows.backward(), rtol=1e-12, atol=1e-15)


def test_gradient_check_catches_a_wrong_gradient():
    """The checker itself can fail: a layer with a deliberately wrong backward is caught."""
    rng = np.random.default_rng(4)
    layer = layers.build("dense", units=3)
    layer.build((4,), rng, np.dtype("float64"))
    original = layer.backward
    layer.backward = lambda dy: 1.01 * original(dy)
    errors = check_layer(layer, rng.standard_normal((2, 4)))
    assert errors["input"] > 1e-3
