"""A new layer with weights is one class: registered, with its own gradient-check cases,
weight names and torch layout, it is picked up by the gradient check, the torch interop
(both the index-keyed and the path-keyed state dicts) and the gradient-flow profile,
without touching any other file."""

import numpy as np
import pytest

from toolkit.analysis.gradcheck import check_layer, layer_cases
from toolkit.analysis.gradient_flow import depth_profile
from toolkit.interop.named_state import from_torch_state, state_keys, to_torch_state
from toolkit.interop.torch_state import load_state_dict, to_state_dict, torch_module
from toolkit.nn.activations import Tanh
from toolkit.nn.layer import Layer, Sequential
from toolkit.nn.torch_layout import TorchLayout
from toolkit.registry import layers

NAME = "test_bias_free_linear"


class BiasFreeLinear(Layer):
    """y = x @ kernel + shift: x (N, in) -> y (N, units); ``kernel`` is (in, units), the
    transpose of ``torch.nn.Linear.weight``, and ``shift`` (units,) is its bias."""

    kind = NAME
    gradcheck_cases = [({"units": 3}, (4,)), ({"units": 1}, (2,))]
    weight_names = ("kernel",)
    torch_layout = TorchLayout(
        {"kernel": "weight", "shift": "bias"},
        transposed=frozenset({"kernel"}),
        module=lambda nn, layer: nn.Linear(layer.input_shape[0], layer.units),
    )

    def __init__(self, units: int) -> None:
        super().__init__()
        self.units = units

    def build(self, input_shape, rng, dtype):
        self.input_shape, self.output_shape = tuple(input_shape), (self.units,)
        self.params = {
            "kernel": rng.standard_normal((input_shape[0], self.units)).astype(dtype),
            "shift": rng.standard_normal(self.units).astype(dtype),
        }
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        return self.output_shape

    def forward(self, x, training=False):
        self._x = x
        return x @ self.params["kernel"] + self.params["shift"]

    def backward(self, dy):
        self.grads["kernel"][...] = self._x.T @ dy
        self.grads["shift"][...] = dy.sum(axis=0)
        return dy @ self.params["kernel"].T


@pytest.fixture
def registered():
    layers.register(NAME)(BiasFreeLinear)
    yield
    layers._entries.pop(NAME)  # leave the registry as the other tests expect it


def built(seed: int = 0) -> Sequential:
    model = Sequential([BiasFreeLinear(5), Tanh(), BiasFreeLinear(2)])
    model.build((3,), np.random.default_rng(seed), np.dtype("float32"))
    return model


def test_the_gradient_check_runs_its_declared_cases(registered):
    assert layer_cases(NAME) == BiasFreeLinear.gradcheck_cases
    for kwargs, shape in layer_cases(NAME):
        layer = layers.build(NAME, **kwargs)
        layer.build(shape, np.random.default_rng(0), np.dtype("float64"))
        x = np.random.default_rng(1).standard_normal((4, *shape))
        assert max(check_layer(layer, x).values()) <= 1e-7


def test_a_layer_with_required_arguments_and_no_cases_is_named(registered):
    class Undeclared(BiasFreeLinear):
        gradcheck_cases = Layer.gradcheck_cases

    layers.register(NAME, force=True)(Undeclared)
    assert layer_cases(NAME) is None


def test_interop_reads_its_torch_layout(registered):
    torch = pytest.importorskip("torch")
    model = built(seed=0)
    x = np.random.default_rng(2).standard_normal((6, 3)).astype(np.float32)
    twin = torch_module(model)
    twin.load_state_dict(to_state_dict(model), strict=True)
    with torch.no_grad():
        predicted = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(predicted, model.forward(x), rtol=1e-5, atol=1e-6)

    back = built(seed=1)
    load_state_dict(back, twin.state_dict())
    np.testing.assert_array_equal(back.forward(x), model.forward(x))

    assert (
        state_keys(model)["param/0.test_bias_free_linear/kernel"]
        == "0.test_bias_free_linear.weight"
    )
    state = to_torch_state(model)
    assert tuple(state["2.test_bias_free_linear.weight"].shape) == (2, 5)  # torch's (out, in)
    again = built(seed=2)
    from_torch_state(again, state)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


def test_gradient_flow_follows_its_weight_names():
    model = built()
    history = {"epoch": [1], "grad_norm/0.test_bias_free_linear": [2.0]}
    history["grad_norm/2.test_bias_free_linear"] = [1.0]
    profile = depth_profile(model, history)
    assert profile.layers == ["0.test_bias_free_linear", "2.test_bias_free_linear"]
