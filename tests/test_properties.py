"""Property-based tests (Hypothesis) over layer shapes and hyperparameters."""

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from toolkit.analysis.gradcheck import check_layer
from toolkit.nn.layer import Sequential
from toolkit.registry import ConfigError, layers, optimizers, schedules

# derandomize: CI draws the same examples every run (explore more with a local profile)
FAST = settings(max_examples=25, deadline=None, derandomize=True)
F64 = np.dtype("float64")


@st.composite
def conv_cases(draw):
    """A conv2d configuration and an input shape it fits (output size an integer)."""
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    padding = draw(st.integers(0, 1))
    out_size = draw(st.integers(1, 3))
    size = (out_size - 1) * stride + kernel - 2 * padding
    if size < 1:
        size, padding = (out_size - 1) * stride + kernel, 0
    channels = draw(st.integers(1, 2))
    kwargs = {
        "out_channels": draw(st.integers(1, 3)),
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
    }
    return kwargs, (channels, size, size)


def built(layer, shape, seed=0):
    layer.build(shape, np.random.default_rng(seed), F64)
    return layer


@FAST
@given(conv_cases(), st.integers(1, 3))
def test_conv_shapes_agree_and_gradients_check(case, batch):
    kwargs, shape = case
    layer = built(layers.build("conv2d", **kwargs), shape)
    x = np.random.default_rng(1).standard_normal((batch, *shape))
    y = layer.forward(x, training=True)
    assert y.shape == (batch, *layer.output_shape)
    assert layer.backward(np.ones_like(y)).shape == x.shape
    assert all(layer.grads[k].shape == p.shape for k, p in layer.params.items())
    assert max(check_layer(layer, x).values()) <= 1e-7


@FAST
@given(
    st.sampled_from(["maxpool2d", "avgpool2d"]),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(3, 7),
)
def test_pool_gradients_on_random_shapes(kind, kernel, channels, size):
    layer = built(layers.build(kind, kernel_size=kernel), (channels, size, size))
    x = np.random.default_rng(2).standard_normal((2, channels, size, size))
    assert max(check_layer(layer, x).values()) <= 1e-7


@FAST
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.integers(1, 5), st.integers(1, 4))
@example(hidden=[4, 1, 6], features=1, batch=3)  # once failed with the default step
def test_dense_stacks_have_consistent_shapes(hidden, features, batch):
    model = Sequential([layers.build("dense", units=h) for h in hidden])
    built(model, (features,))
    x = np.random.default_rng(3).standard_normal((batch, features))
    y = model.forward(x, training=True)
    assert y.shape == (batch, hidden[-1])
    assert model.backward(np.ones_like(y)).shape == x.shape
    # The stack is linear, so central differences have no truncation error and a large step
    # only shrinks the rounding noise: a bias gradient that nearly cancels over the batch
    # (norm 1e-3 next to weights' 15) is then still checked to 1e-7.
    assert max(check_layer(model, x, eps=1e-3).values()) <= 1e-7


@FAST
@given(
    st.sampled_from(["sgd", "rmsprop", "adam", "adamw"]),
    st.floats(1e-5, 1.0),
    st.floats(0.0, 1e6),
)
def test_optimizers_stay_finite_on_finite_gradients(name, lr, scale):
    model = built(Sequential([layers.build("dense", units=3)]), (4,))
    optimizer = optimizers.build(name, model, lr=lr)
    rng = np.random.default_rng(4)
    ((_, layer),) = model.named_layers()
    for _ in range(5):
        for key in layer.params:
            layer.grads[key][...] = rng.standard_normal(layer.params[key].shape) * scale
            layer.grads[key][0] = 0.0  # exact zeros must not divide by zero
        optimizer.step()
        assert all(np.isfinite(p).all() for p in layer.params.values())


@FAST
@given(
    st.sampled_from(["constant", "step", "exponential", "cosine", "warmup"]),
    st.floats(1e-6, 10.0),
    st.integers(1, 200),
)
def test_schedules_stay_positive(name, lr, epochs):
    lrs = schedules.build(name, lr, epochs).values()
    assert len(lrs) == epochs
    assert all(np.isfinite(v) and v > 0 for v in lrs)


@FAST
@given(st.floats(-10.0, 0.0))
def test_non_positive_learning_rates_are_rejected(lr):
    model = built(Sequential([layers.build("dense", units=2)]), (2,))
    try:
        optimizers.build("sgd", model, lr=lr)
    except ConfigError as err:
        assert "SGD: lr must be a positive number" in str(err)
    else:
        raise AssertionError(f"lr={lr} was accepted")
