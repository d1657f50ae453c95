"""A toolkit model's weights go to an equivalent PyTorch model and come back: both make the
same predictions (float32 tolerance), and the round trip is exact."""

import numpy as np
import pytest

from toolkit.interop.torch_state import load_state_dict, to_state_dict, torch_module
from toolkit.models import ModelSpec, build_model
from toolkit.registry import ConfigError

torch = pytest.importorskip("torch")

SPECS = {
    "mlp": ModelSpec("mlp", (1, 28, 28), 10, {"activation": ["relu", "tanh"]}),
    "cnn": ModelSpec("cnn", (1, 28, 28), 10, {"channels": [4, 8], "hidden": 16}),
    "cnn_bn_avgpool": ModelSpec(
        "cnn", (1, 28, 28), 10, {"channels": [4], "hidden": 16, "batchnorm": True, "pool": "avg"}
    ),
    "conv_autoencoder": ModelSpec("conv_autoencoder", (1, 28, 28), 784, {"channels": [4, 8]}),
}


def trained_looking(spec: ModelSpec, seed: int):
    """A built model whose biases and batch-norm statistics are not at their initial
    zeros/ones, so that every array's layout matters."""
    model = build_model(spec, seed=seed)
    rng = np.random.default_rng(seed)
    for _, layer in model.named_layers():
        for array in (*layer.params.values(), *layer.buffers.values()):
            array += rng.normal(0.0, 0.05, array.shape).astype(array.dtype)
            if layer.kind.startswith("batchnorm"):
                np.abs(array, out=array)  # running variances stay positive
    return model


@pytest.mark.parametrize("name", SPECS)
def test_exported_weights_predict_the_same_in_pytorch_and_come_back_exactly(name):
    spec = SPECS[name]
    model = trained_looking(spec, seed=0)
    x = np.random.default_rng(1).normal(size=(8, 1, 28, 28)).astype(np.float32)
    expected = model.forward(x, training=False)

    twin = torch_module(model)
    twin.load_state_dict(to_state_dict(model), strict=True)
    twin.eval()
    with torch.no_grad():
        predicted = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-5)

    back = build_model(spec, seed=1)
    assert not np.allclose(back.forward(x), expected)
    load_state_dict(back, twin.state_dict())
    np.testing.assert_array_equal(back.forward(x, training=False), expected)


def test_a_state_dict_of_another_shape_is_a_clear_error():
    small = build_model(ModelSpec("mlp", (1, 28, 28), 10, {"hidden_sizes": [32, 64]}))
    state = to_state_dict(small)
    model = build_model(SPECS["mlp"])
    with pytest.raises(ConfigError, match=r"param/1\.dense/W is \(784, 32\) in the state_dict"):
        load_state_dict(model, state)
    with pytest.raises(ConfigError, match="unexpected 9.weight"):
        load_state_dict(model, {**to_state_dict(model), "9.weight": torch.zeros(1)})


def test_layers_without_a_torch_twin_are_named():
    model = build_model(ModelSpec("resnet", (1, 8, 8), 3, {"channels": [2], "blocks": [1]}))
    with pytest.raises(ConfigError, match=r"layer 3\.residual_block .* no PyTorch equivalent"):
        torch_module(model)
