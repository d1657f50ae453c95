"""torchvision's ResNet-18 in NumPy: the same logits as torchvision's with the same
weights (float32 tolerance, eval mode), an exact state_dict round trip, torchvision's
shapes and parameter counts, and gradient-checked stages."""

import numpy as np
import pytest

from toolkit.analysis.gradcheck import check_layer
from toolkit.interop.named_state import from_torch_state, state_keys, to_torch_state
from toolkit.models import ModelSpec, build_model
from toolkit.nn.conv import Conv2d
from toolkit.nn.named_sequential import NamedSequential
from toolkit.nn.norm import BatchNorm2d
from toolkit.nn.pad import Pad2d
from toolkit.nn.pool import MaxPool2d
from toolkit.nn.residual import ResidualBlock
from toolkit.registry import ConfigError

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


def torchvision_twin(arch: str, num_classes: int, seed: int = 0):
    """torchvision's model with random weights and batch-norm statistics away from their
    initial 0/1, in eval mode."""
    torch.manual_seed(seed)
    twin = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    with torch.no_grad():
        for module in twin.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return twin.eval()


def test_imported_weights_give_torchvisions_logits_at_224():
    twin = torchvision_twin("resnet18", 1000)
    model = build_model(ModelSpec("resnet18", (3, 224, 224), 1000))
    from_torch_state(model, twin.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    logits = model.forward(x, training=False)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=2e-4)
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_the_state_dict_round_trips_exactly():
    state = torchvision_twin("resnet18", 10).state_dict()
    model = build_model(ModelSpec("resnet18", (3, 32, 32), 10))
    from_torch_state(model, state)
    back = to_torch_state(model)
    assert set(back) == set(state)
    for key, tensor in state.items():
        if not key.endswith("num_batches_tracked"):
            assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key
    twin = torchvision.models.resnet18(weights=None, num_classes=10)
    twin.load_state_dict(back, strict=True)  # torchvision accepts it as its own


@pytest.mark.parametrize("arch,params", [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_torchvisions_parameter_counts_and_any_input_size(arch, params):
    model = build_model(ModelSpec(arch, (3, 224, 224), 1000))
    assert model.num_params() == params
    assert len(state_keys(model)) == len(
        [k for k in getattr(torchvision.models, arch)().state_dict() if "num_batches" not in k]
    )
    small = build_model(ModelSpec(arch, (3, 32, 32), 10))  # CIFAR-sized: layer4 is 1x1
    assert small.stage("layer4").output_shape == (512, 1, 1)
    assert small.forward(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


def test_a_state_dict_that_does_not_fit_names_what_is_wrong():
    model = build_model(ModelSpec("resnet18", (3, 32, 32), 10))
    state = torchvision_twin("resnet18", 1000).state_dict()
    with pytest.raises(ConfigError, match=r"param/fc/W is \(512, 1000\) in the state_dict"):
        from_torch_state(model, state)
    from_torch_state(model, state, skip=["fc"])  # a replaced head is left out
    del state["layer1.0.conv1.weight"]
    with pytest.raises(ConfigError, match=r"missing layer1\.0\.conv1\.weight"):
        from_torch_state(model, state, skip=["fc"])


def stage_cases():
    """Small float64 versions of every kind of ResNet stage."""
    yield (
        "stem",
        NamedSequential(
            {
                "conv1": Conv2d(3, 7, stride=2, padding=3, bias=False, floor_mode=True),
                "bn1": BatchNorm2d(),
            }
        ),
        (2, 9, 9),
    )
    yield (
        "maxpool",
        NamedSequential({"pad": Pad2d(1, float("-inf")), "pool": MaxPool2d(3, 2)}),
        (2, 7, 7),
    )
    yield (
        "layer",
        NamedSequential({"0": ResidualBlock(3, stride=2), "1": ResidualBlock(3)}),
        (2, 6, 6),
    )


@pytest.mark.parametrize("name,stage,shape", list(stage_cases()), ids=["stem", "maxpool", "layer"])
def test_resnet_stages_pass_the_gradient_check(name, stage, shape):
    rng = np.random.default_rng(0)
    stage.build(shape, rng, np.dtype("float64"))
    x = rng.standard_normal((3, *shape))
    for training in (True, False):
        errors = check_layer(stage, x, training=training)
        assert max(errors.values()) <= 1e-7, (name, training, errors)


def test_padded_max_pool_matches_torch():
    x = np.random.default_rng(1).normal(size=(2, 3, 9, 10)).astype(np.float32)
    pool = NamedSequential({"pad": Pad2d(1, float("-inf")), "pool": MaxPool2d(3, 2)})
    pool.build(x.shape[1:], np.random.default_rng(0), np.dtype("float32"))
    expected = torch.nn.MaxPool2d(3, 2, padding=1)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(pool.forward(x), expected)


def test_stages_freeze_by_name():
    from toolkit.registry import optimizers

    model = build_model(ModelSpec("resnet18", (3, 32, 32), 2))
    optimizer = optimizers.build("sgd", model, lr=0.1)
    frozen = optimizer.freeze(["conv1", "bn1", "layer1", "layer2", "layer3"])
    trained = {name for name, _, _ in optimizer.slots}
    assert all(name.startswith(("layer4.", "fc.")) for name in trained)
    assert "layer3.1.bn2.gamma" in frozen and "layer2.0.proj.W" in frozen
