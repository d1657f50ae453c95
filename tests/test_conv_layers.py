"""Convolution, pooling, batch norm and residual layers against PyTorch (float64), by
central-difference gradient checks, and their shape errors."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.analysis.gradcheck import check_layer
from toolkit.nn.avg_pool import AvgPool2d, GlobalAvgPool
from toolkit.nn.conv import Conv2d
from toolkit.nn.layer import Layer
from toolkit.nn.norm import BatchNorm, BatchNorm1d, BatchNorm2d
from toolkit.nn.pool import MaxPool2d
from toolkit.nn.residual import ResidualBlock
from toolkit.registry import ConfigError, layers

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {"rtol": 1e-10, "atol": 1e-12}


def built(layer: Layer, input_shape: tuple[int, ...], dtype=np.float64, seed: int = 0) -> Layer:
    layer.build(input_shape, np.random.default_rng(seed), np.dtype(dtype))
    return layer


def t(array: np.ndarray, grad: bool = False):
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


def forward_backward(layer: Layer, x: np.ndarray, training: bool = True, seed: int = 1):
    """The layer's y and dx for a random upstream gradient dy (returned too)."""
    y = layer.forward(x, training)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    return y, layer.backward(dy), dy


def torch_grads(y, dy: np.ndarray, *tensors) -> list[np.ndarray]:
    y.backward(t(dy))
    return [tensor.grad.numpy() for tensor in tensors]


# --- conv2d -------------------------------------------------------------------------

CONV_CASES = [
    # (N, C, H, W), out_channels, kernel, stride, padding, bias
    ((2, 3, 6, 6), 4, 3, 1, 0, True),
    ((2, 3, 6, 5), 4, 3, 1, 1, True),
    ((2, 2, 7, 7), 3, 3, 1, "same", False),
    ((2, 2, 7, 9), 3, 3, 2, 1, True),
    ((3, 2, 9, 9), 5, 3, 2, 0, False),
    ((2, 3, 8, 8), 2, 5, 1, 2, True),
    ((2, 1, 8, 8), 4, 2, 2, 0, True),
    ((2, 4, 5, 5), 3, 1, 1, 0, True),
    ((2, 2, 2, 3), 3, 7, 1, 3, False),  # "same" kernel larger than the image
    ((3, 2, 1, 1), 2, 5, 1, "same", True),
]


@pytest.mark.parametrize(("x_shape", "out", "k", "stride", "padding", "bias"), CONV_CASES)
def test_conv2d_matches_torch(x_shape, out, k, stride, padding, bias):
    x = np.random.default_rng(0).standard_normal(x_shape)
    conv = built(Conv2d(out, k, stride, padding, bias=bias), x_shape[1:])
    y, dx, dy = forward_backward(conv, x)
    assert_conv_matches_torch(conv, x, y, dx, dy)
    assert conv.output_shape == y.shape[1:]


def assert_conv_matches_torch(conv: Conv2d, x, y, dx, dy) -> None:
    """y, dx and the conv's gradients for upstream dy are torch's ``F.conv2d``'s."""
    xt, wt = t(x, grad=True), t(conv.params["W"], grad=True)
    bt = t(conv.params["b"], grad=True) if conv.bias else None
    yt = F.conv2d(xt, wt, bt, stride=conv.stride, padding=conv.pad)
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    grads = torch_grads(yt, dy, xt, wt, *([bt] if conv.bias else []))
    np.testing.assert_allclose(dx, grads[0], **TOL)
    np.testing.assert_allclose(conv.grads["W"], grads[1], **TOL)
    if conv.bias:
        np.testing.assert_allclose(conv.grads["b"], grads[2], **TOL)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("k", "stride", "padding", "bias"),
    [(3, 1, "same", True), (1, 1, 0, True), (5, 1, "same", False), (3, 2, 1, True),
     (1, 2, 0, False), (2, 2, 0, True), (3, 3, 2, True)],
)  # fmt: skip
def test_conv2d_in_many_chunks_matches_torch_step_after_step(
    monkeypatch, threads, k, stride, padding, bias
):
    """im2col runs one chunk of output rows at a time into buffers the layer keeps
    (conv_batch_last.CHUNK_BYTES, here a row or a few per chunk so that every shard loops
    over chunks of unequal length), and dx one convolution of dy (stride 1) or a scatter
    of W^T dy (strided; with k < s some input pixels get no tap): torch's results on every
    step, also when the batch size changes and after the backward has used the buffers."""
    from toolkit.nn import conv_batch_last, parallel

    monkeypatch.setattr(conv_batch_last, "CHUNK_BYTES", 2 * 9 * 4 * 8 * 7)
    conv = built(Conv2d(4, k, stride, padding, bias=bias, floor_mode=True), (3, 9, 8))
    for batch in (5, 5, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 9, 8))
        with parallel.using_threads(threads):
            y, dx, dy = forward_backward(conv, x, seed=batch)
        assert_conv_matches_torch(conv, x, y, dx, dy)


def test_a_strided_convs_input_gradient_split_over_channels_matches_torch(monkeypatch):
    """A strided conv's dx scatters W^T dy per shard of input channels (forced here on
    2 threads by a zero sharding threshold): torch's dx, and the same bits on a rerun."""
    from toolkit.nn import parallel

    monkeypatch.setattr(parallel, "MIN_SHARD_MACS", 0)
    conv = built(Conv2d(4, 3, stride=2, padding=1, floor_mode=True), (8, 9, 8))
    x = np.random.default_rng(0).standard_normal((3, 8, 9, 8))
    with parallel.using_threads(2):
        y, dx, dy = forward_backward(conv, x)
        rerun = forward_backward(conv, x)[1]
    assert "scattered taps 4 from channel 4" in conv._workspace  # the second shard's
    assert_conv_matches_torch(conv, x, y, dx, dy)
    np.testing.assert_array_equal(rerun, dx)


def test_conv2d_floor_mode_drops_leftover_rows_like_torch():
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 7))
    conv = built(Conv2d(3, 3, stride=2, padding=1, floor_mode=True), (2, 8, 7))
    y, dx, dy = forward_backward(conv, x)
    xt, wt, bt = t(x, True), t(conv.params["W"], True), t(conv.params["b"], True)
    yt = F.conv2d(xt, wt, bt, stride=2, padding=1)
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, torch_grads(yt, dy, xt)[0], **TOL)


def test_conv2d_float32_stays_float32():
    conv = built(Conv2d(4, 3, padding="same"), (2, 6, 6), dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    y, dx, _ = forward_backward(conv, x)
    dtypes = {y.dtype, dx.dtype, conv.grads["W"].dtype, conv.grads["b"].dtype}
    assert dtypes == {np.dtype(np.float32)}


def test_conv2d_weights_have_torch_layout_and_registry_name():
    conv = built(layers.get("conv2d")(8, kernel_size=5), (3, 10, 10))
    assert conv.params["W"].shape == (8, 3, 5, 5)
    assert conv.params["b"].shape == (8,)
    assert conv.output_shape == (8, 6, 6)


# --- pooling ------------------------------------------------------------------------

POOL_CASES = [
    # (N, C, H, W), kernel, stride
    ((2, 3, 8, 8), 2, None),
    ((2, 3, 7, 7), 2, None),  # odd: last row/column dropped
    ((2, 2, 7, 6), 3, 2),  # overlapping windows
    ((2, 2, 9, 7), 3, None),
    ((1, 2, 5, 5), 2, 1),
]


@pytest.mark.parametrize(("x_shape", "k", "stride"), POOL_CASES)
@pytest.mark.parametrize(
    ("cls", "torch_fn"), [(MaxPool2d, F.max_pool2d), (AvgPool2d, F.avg_pool2d)]
)
def test_pool_matches_torch(cls, torch_fn, x_shape, k, stride):
    x = np.random.default_rng(0).standard_normal(x_shape)
    pool = built(cls(k, stride), x_shape[1:])
    y, dx, dy = forward_backward(pool, x)
    xt = t(x, grad=True)
    yt = torch_fn(xt, k, stride)
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, torch_grads(yt, dy, xt)[0], **TOL)


def test_maxpool_odd_size_gives_zero_gradient_to_dropped_row():
    pool = built(MaxPool2d(2), (1, 7, 7))
    x = np.random.default_rng(0).standard_normal((2, 1, 7, 7))
    y, dx, _ = forward_backward(pool, x)
    assert y.shape == (2, 1, 3, 3)
    assert not dx[:, :, 6, :].any() and not dx[:, :, :, 6].any()


def test_maxpool_ties_send_the_gradient_to_the_first_maximum():
    pool = built(MaxPool2d(2), (1, 4, 4))
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 3.0], [3.0, 3.0]]
    dx = pool.backward(np.ones_like(pool.forward(x, training=True)))
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[0, 2] = expected[2, 0] = 1.0  # all-zero windows: top-left
    expected[2, 3] = 1.0  # first of the three 3.0s in row-major order
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize(("x_shape", "k", "stride"), [((2, 3, 9, 10), 3, 2), ((1, 2, 7, 7), 2, 1)])
def test_overlapping_maxpool_ties_route_like_torch(x_shape, k, stride):
    """Many equal values in overlapping windows: each window's gradient goes to the
    element PyTorch's argmax picks (the first maximum in row-major order)."""
    x = np.random.default_rng(3).integers(0, 3, size=x_shape).astype(np.float64)
    pool = built(MaxPool2d(k, stride), x_shape[1:])
    y, dx, dy = forward_backward(pool, x)
    xt = t(x, grad=True)
    yt = F.max_pool2d(xt, k, stride)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(dx, torch_grads(yt, dy, xt)[0], **TOL)


def test_global_avgpool_matches_torch():
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 6))
    pool = built(GlobalAvgPool(), (4, 5, 6))
    y, dx, dy = forward_backward(pool, x)
    xt = t(x, grad=True)
    yt = xt.mean(dim=(2, 3))
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, torch_grads(yt, dy, xt)[0], **TOL)
    assert pool.output_shape == (4,)


# --- batch norm ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "x_shape", "torch_cls"),
    [
        (BatchNorm, (6, 4), torch.nn.BatchNorm1d),
        (BatchNorm, (4, 3, 5, 5), torch.nn.BatchNorm2d),
        (BatchNorm1d, (6, 4), torch.nn.BatchNorm1d),
        (BatchNorm2d, (4, 3, 5, 5), torch.nn.BatchNorm2d),
    ],
)
def test_batchnorm_train_and_eval_match_torch(cls, x_shape, torch_cls):
    rng = np.random.default_rng(0)
    bn = built(cls(momentum=0.2, eps=1e-3), x_shape[1:])
    bn.params["gamma"][:] = rng.uniform(0.5, 1.5, x_shape[1])
    bn.params["beta"][:] = rng.standard_normal(x_shape[1])
    ref = torch_cls(x_shape[1], momentum=0.2, eps=1e-3).double()
    with torch.no_grad():
        ref.weight.copy_(t(bn.params["gamma"]))
        ref.bias.copy_(t(bn.params["beta"]))

    for step in range(2):  # training: batch statistics, running stats updated twice
        x = rng.standard_normal(x_shape) * 3 + 1
        y, dx, dy = forward_backward(bn, x, training=True, seed=step)
        ref.train()
        ref.zero_grad()
        xt = t(x, grad=True)
        yt = ref(xt)
        np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
        np.testing.assert_allclose(dx, torch_grads(yt, dy, xt)[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(bn.grads["gamma"], ref.weight.grad.numpy(), **TOL)
        np.testing.assert_allclose(bn.grads["beta"], ref.bias.grad.numpy(), **TOL)
    np.testing.assert_allclose(bn.buffers["running_mean"], ref.running_mean.numpy(), **TOL)
    np.testing.assert_allclose(bn.buffers["running_var"], ref.running_var.numpy(), **TOL)

    x = rng.standard_normal(x_shape)  # evaluation: running statistics, nothing updated
    running = {k: v.copy() for k, v in bn.buffers.items()}
    y, dx, dy = forward_backward(bn, x, training=False)
    ref.eval()
    ref.zero_grad()
    xt = t(x, grad=True)
    yt = ref(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, torch_grads(yt, dy, xt)[0], **TOL)
    np.testing.assert_allclose(bn.grads["gamma"], ref.weight.grad.numpy(), **TOL)
    for name, value in running.items():
        np.testing.assert_array_equal(bn.buffers[name], value)


# --- residual block -----------------------------------------------------------------


def torch_block(block: ResidualBlock, x):
    """The block's computation written with torch.nn.functional, sharing its weights."""

    def conv(layer, h):
        weight = t(layer.params["W"], grad=True)
        bias = t(layer.params["b"], grad=True) if "b" in layer.params else None
        return F.conv2d(h, weight, bias, stride=layer.stride, padding=layer.pad)

    def norm(layer, h):
        if layer is None:
            return h
        gamma, beta = t(layer.params["gamma"]), t(layer.params["beta"])
        return F.batch_norm(h, None, None, gamma, beta, training=True, eps=layer.eps)

    h = F.relu(norm(block.bn1, conv(block.conv1, x)))
    h = norm(block.bn2, conv(block.conv2, h))
    if block.shortcut:
        h = h + (norm(block.proj_bn, conv(block.proj, x)) if block.proj else x)
    return F.relu(h)


@pytest.mark.parametrize(
    ("in_channels", "out", "stride", "shortcut", "batchnorm", "projected"),
    [
        (3, 3, 1, True, True, False),  # identity shortcut
        (3, 3, 1, True, False, False),
        (2, 4, 1, True, True, True),  # projection: more channels
        (3, 3, 2, True, True, True),  # projection: stride 2 (8 -> 4)
        (2, 4, 2, True, False, True),
        (2, 4, 2, False, True, False),  # plain twin: no shortcut at all
    ],
)
def test_residual_block_matches_torch(in_channels, out, stride, shortcut, batchnorm, projected):
    x = np.random.default_rng(0).standard_normal((3, in_channels, 8, 7))
    block = built(ResidualBlock(out, stride, shortcut, batchnorm), (in_channels, 8, 7))
    assert (block.proj is not None) == projected
    y, dx, dy = forward_backward(block, x)
    xt = t(x, grad=True)
    yt = torch_block(block, xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    assert block.output_shape == y.shape[1:] == (out, -(-8 // stride), -(-7 // stride))
    np.testing.assert_allclose(dx, torch_grads(yt, dy, xt)[0], rtol=1e-9, atol=1e-12)


def test_residual_block_exposes_its_sub_layers():
    block = built(ResidualBlock(4, stride=2), (2, 6, 6))
    paths = [path for path, _ in block.named_layers("block")]
    assert paths == [f"block.{n}" for n in ("conv1", "bn1", "conv2", "bn2", "proj", "proj_bn")]
    assert block.num_params() == sum(
        p.size for _, leaf in block.named_layers() for p in leaf.params.values()
    )
    plain = built(ResidualBlock(4, shortcut=False, batchnorm=False), (2, 6, 6))
    assert [path for path, _ in plain.named_layers()] == ["conv1", "conv2"]


# --- gradient checks ----------------------------------------------------------------

GRADCHECK_CASES = [
    (Conv2d(3, 3, 1, 1), (2, 2, 5, 5)),
    (Conv2d(2, 3, 2, 0, bias=False), (2, 2, 7, 5)),
    (Conv2d(2, 3, 2, 1, floor_mode=True), (1, 2, 6, 6)),
    (MaxPool2d(2), (2, 2, 4, 6)),  # the 2x2/2 pairs fast path
    (MaxPool2d(2), (2, 2, 5, 5)),
    (MaxPool2d(3, 2), (2, 2, 7, 7)),
    (AvgPool2d(2), (2, 2, 4, 4)),
    (AvgPool2d(2), (2, 2, 5, 4)),
    (AvgPool2d(3, 1), (1, 2, 5, 5)),
    (GlobalAvgPool(), (2, 3, 4, 4)),
    (BatchNorm(), (5, 4)),
    (BatchNorm(), (3, 2, 4, 4)),
    (ResidualBlock(2), (2, 2, 5, 5)),
    (ResidualBlock(3, stride=2), (2, 2, 5, 5)),
    (ResidualBlock(3, batchnorm=False), (2, 2, 4, 4)),
    (ResidualBlock(2, shortcut=False), (2, 2, 4, 4)),
]


@pytest.mark.parametrize(
    ("layer", "x_shape"), GRADCHECK_CASES, ids=[repr(layer) for layer, _ in GRADCHECK_CASES]
)
def test_gradient_check(layer, x_shape):
    x = np.random.default_rng(3).standard_normal(x_shape)
    errors = check_layer(built(layer, x_shape[1:]), x, training=True)
    assert max(errors.values()) <= 1e-7, errors


def test_batchnorm_eval_gradient_check():
    bn = built(BatchNorm(), (3, 4, 4))
    bn.forward(np.random.default_rng(0).standard_normal((8, 3, 4, 4)) + 2, training=True)
    errors = check_layer(bn, np.random.default_rng(1).standard_normal((2, 3, 4, 4)), False)
    assert max(errors.values()) <= 1e-7, errors


# --- shape and configuration errors -------------------------------------------------


def build_error(layer: Layer, input_shape: tuple[int, ...]) -> str:
    with pytest.raises(ConfigError) as info:
        built(layer, input_shape)
    message = str(info.value)
    assert "\n" not in message
    assert str(input_shape) in message
    return message


def test_conv2d_non_integer_output_size_names_the_fix():
    message = build_error(Conv2d(8, 3, stride=2), (1, 28, 28))
    assert "Conv2d" in message and "non-integer output size (28 + 2*0 - 3) / 2" in message
    assert "use stride=1 (or floor_mode=True" in message  # no symmetric padding fits


def test_conv2d_non_integer_output_size_suggests_a_padding_that_fits():
    message = build_error(Conv2d(8, 3, stride=3), (1, 28, 28))
    assert "use padding=1 or stride=1" in message


def test_conv2d_kernel_larger_than_input():
    message = build_error(Conv2d(4, 5), (1, 3, 3))
    assert "Conv2d" in message and "larger than the padded input" in message
    assert "kernel_size<=3" in message


def test_conv2d_wrong_in_channels_and_rank():
    message = build_error(Conv2d(4, in_channels=3), (1, 8, 8))
    assert "in_channels=3" in message and "use in_channels=1" in message
    assert "(channels, height, width)" in build_error(Conv2d(4), (784,))


def test_conv2d_bad_arguments():
    with pytest.raises(ConfigError, match="same"):
        Conv2d(4, 3, stride=2, padding="same")
    with pytest.raises(ConfigError, match="kernel_size"):
        Conv2d(4, 0)
    with pytest.raises(ConfigError, match="padding"):
        Conv2d(4, 3, padding="valid")


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d])
def test_pool_window_larger_than_input(cls):
    message = build_error(cls(3), (2, 2, 5))
    assert cls.__name__ in message and "larger than the 2x5 input" in message
    assert "kernel_size<=2" in message


def test_batchnorm_aliases_check_the_rank():
    assert "(channels, height, width)" in build_error(BatchNorm2d(), (4,))
    assert "(features,)" in build_error(BatchNorm1d(), (3, 4, 4))
    assert "(features,) or (channels, height, width)" in build_error(BatchNorm(), (3, 4))


def test_residual_block_rejects_even_kernels():
    with pytest.raises(ConfigError, match="kernel_size=2 must be odd"):
        ResidualBlock(4, kernel_size=2)


# --- memory layouts -----------------------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        Conv2d(3, 3, padding=1),
        Conv2d(3, 2, 2),
        Conv2d(3, 3, 2, 1, floor_mode=True),
        MaxPool2d(2),
        MaxPool2d(3, 2),
        AvgPool2d(2),
        BatchNorm(),
        GlobalAvgPool(),
    ],
    ids=repr,
)
def test_channel_major_and_strided_inputs_give_the_same_results(layer):
    """conv2d returns batch-last views; every layer must accept any memory layout."""
    x = np.random.default_rng(0).standard_normal((4, 2, 8, 8))
    built(layer, (2, 8, 8))
    y, dx, dy = forward_backward(layer, x)
    channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    strided = np.zeros((4, 2, 8, 16))[..., ::2]
    strided[...] = x
    for other in (channel_major, strided):
        y2 = layer.forward(other, training=True)
        dy2 = np.asfortranarray(dy)
        np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.backward(dy2), dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("layer", "x_shape"),
    [
        (Conv2d(3, 3, padding=1), (2, 2, 5, 5)),
        (Conv2d(3, 3, 2, floor_mode=True), (2, 2, 6, 6)),
        (BatchNorm(), (4, 2, 3, 3)),
        (ResidualBlock(3, stride=2), (2, 2, 6, 6)),
        (ResidualBlock(2), (2, 2, 4, 4)),
    ],
    ids=repr,
)
def test_first_layer_skips_the_input_gradient_but_not_its_own(layer, x_shape):
    x = np.random.default_rng(0).standard_normal(x_shape)
    built(layer, x_shape[1:])
    forward_backward(layer, x)
    expected = {
        f"{p}.{k}": g.copy() for p, leaf in layer.named_layers() for k, g in leaf.grads.items()
    }
    layer.needs_input_grad = False
    y = layer.forward(x, training=True)
    assert layer.backward(np.random.default_rng(1).standard_normal(y.shape)) is None
    for path, leaf in layer.named_layers():
        for key, grad in leaf.grads.items():
            np.testing.assert_allclose(grad, expected[f"{path}.{key}"], rtol=1e-12, atol=1e-14)
