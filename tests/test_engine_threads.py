"""The engine on more than one thread (toolkit.nn.parallel): the same results as one
thread up to float rounding, bit-identical reruns for a given thread count, the ReLU that
a max-pool absorbs, and the Trainer training in the model's dtype."""

import numpy as np
import pytest

from toolkit.data import ArrayData
from toolkit.models import ModelSpec, build_model
from toolkit.nn import parallel
from toolkit.nn.activations import Activation
from toolkit.registry import losses, optimizers
from toolkit.train import Trainer

IMAGE = (1, 12, 12)
MODELS = {
    "cnn": ModelSpec("cnn", IMAGE, 3, {"channels": [4, 6], "hidden": 8}),
    "cnn_bn": ModelSpec("cnn", IMAGE, 3, {"channels": [4, 6], "hidden": 8, "batchnorm": True}),
    "resnet": ModelSpec("resnet", IMAGE, 3, {"channels": [4, 6], "blocks": [1, 1]}),
    "mlp": ModelSpec("mlp", IMAGE, 3, {"hidden_sizes": [512, 8], "activation": "relu"}),
}


def forward_backward(name: str, threads: int, dtype: str = "float64"):
    """Output, input gradient and every parameter gradient of one training step."""
    model = build_model(MODELS[name], seed=0, dtype=dtype)
    x = np.random.default_rng(1).standard_normal((64, *IMAGE)).astype(dtype)
    dy = np.random.default_rng(2).standard_normal((64, 3)).astype(dtype)
    with parallel.using_threads(threads):
        y = model.forward(x, training=True).copy()
        dx = model.backward(dy)
    return y, dx, param_grads(model)


def param_grads(model) -> dict[str, np.ndarray]:
    """A copy of every parameter gradient, keyed ``<layer path>/<name>``."""
    return {
        f"{path}/{k}": g.copy()
        for path, layer in model.named_layers()
        for k, g in layer.grads.items()
    }


@pytest.mark.parametrize("name", sorted(MODELS))
def test_two_threads_match_one_thread_up_to_rounding(name):
    y1, dx1, grads1 = forward_backward(name, 1)
    y2, dx2, grads2 = forward_backward(name, 2)
    np.testing.assert_allclose(y2, y1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx2, dx1, rtol=1e-10, atol=1e-12)
    assert grads1.keys() == grads2.keys()
    for key in grads1:
        np.testing.assert_allclose(grads2[key], grads1[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reruns_on_two_threads_are_bit_identical(name):
    first, second = forward_backward(name, 2, "float32"), forward_backward(name, 2, "float32")
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    for key in first[2]:
        np.testing.assert_array_equal(first[2][key], second[2][key], err_msg=key)


def test_a_relu_before_a_max_pool_is_absorbed_without_changing_anything():
    """Sequential runs relu -> maxpool as pool -> relu: the same outputs and gradients,
    bit for bit, as the layers one after another (ties included: constant inputs)."""
    model = build_model(MODELS["cnn"], seed=0, dtype="float32")
    assert model._absorbed(), "the cnn's relu -> maxpool pairs should be fused"
    x = np.random.default_rng(1).standard_normal((16, *IMAGE)).astype(np.float32)
    x[:4] = 0.5  # constant images: every window ties
    dy = np.random.default_rng(2).standard_normal((16, 3)).astype(np.float32)
    fused_y = model.forward(x, training=True).copy()
    fused_dx = model.backward(dy).copy()
    fused = param_grads(model)
    y, dx, grads = layer_by_layer(model, x, dy)
    np.testing.assert_array_equal(fused_y, y)
    np.testing.assert_array_equal(fused_dx, dx)
    assert fused.keys() == grads.keys()
    for key in grads:
        np.testing.assert_array_equal(fused[key], grads[key], err_msg=key)


def test_shard_ranges_cover_the_batch_in_order():
    with parallel.using_threads(3):
        assert parallel.shard_ranges(10) == [(0, 3), (3, 6), (6, 10)]
        assert parallel.shard_ranges(10, min_size=4) == [(0, 5), (5, 10)]
        assert parallel.run(lambda a, b: b - a, parallel.shard_ranges(7)) == [2, 2, 3]
    assert parallel.threads() == 1


class DtypeProbe(Activation):
    """Identity that records the dtype of the batches it sees."""

    kind = "dtype_probe"
    seen: list = []

    def forward(self, x, training=False):
        self.seen.append(x.dtype)
        return x


def small_trainer(dtype: str, threads: int) -> tuple[Trainer, ArrayData]:
    rng = np.random.default_rng(0)
    data = ArrayData(rng.standard_normal((96, *IMAGE)).astype(np.float32), rng.integers(0, 3, 96))
    model = build_model(MODELS["cnn"], seed=0, dtype=dtype)
    model.layers.insert(0, DtypeProbe())
    trainer = Trainer(
        model,
        losses.build("cross_entropy"),
        optimizers.build("adam", model, lr=1e-2),
        epochs=2,
        batch_size=32,
        progress=False,
        threads=threads,
    )
    return trainer, data


def test_a_float64_model_trains_on_float64_batches():
    DtypeProbe.seen = []
    trainer, data = small_trainer("float64", threads=1)
    trainer.fit(data)
    assert DtypeProbe.seen and set(DtypeProbe.seen) == {np.dtype(np.float64)}


def test_trainer_reruns_on_two_threads_are_bit_identical():
    histories = []
    for _ in range(2):
        trainer, data = small_trainer("float32", threads=2)
        histories.append(trainer.fit(data))
        weights = [
            p.copy() for _, layer in trainer.model.named_layers() for p in layer.params.values()
        ]
        histories[-1] = (
            {k: v for k, v in histories[-1].items() if not k.startswith("time/")},
            weights,
        )
    assert histories[0][0] == histories[1][0]
    for a, b in zip(histories[0][1], histories[1][1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_batchnorm_on_channel_major_images_matches_the_nchw_path(training, threads):
    """The per-channel-row path (inputs behind a conv2d) computes what the general path
    computes on the same values in NCHW memory, running statistics included."""
    from toolkit.nn.norm import BatchNorm

    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 5, 6, 6)) * 3 + 1
    dy = rng.standard_normal(x.shape)
    channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    results = []
    for data in (x, channel_major):
        layer = BatchNorm()
        layer.build((5, 6, 6), rng, np.dtype(np.float64))
        layer.params["gamma"][:] = np.linspace(0.5, 2, 5)
        layer.buffers["running_var"][:] = np.linspace(1, 3, 5)
        with parallel.using_threads(threads):
            y = layer.forward(data, training=training)
            dx = layer.backward(dy)
        state = [a.copy() for a in (*layer.grads.values(), *layer.buffers.values())]
        results.append((y, dx, *state))
    for general, rows in zip(*results, strict=True):
        np.testing.assert_allclose(rows, general, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "batch_last"])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_the_2x2_max_pool_fast_path_matches_the_general_one(threads, layout, relu, training):
    """The pairs paths (NCHW / channel-major memory, and batch-last (C, H, W, N) memory)
    pick the same window element as the general k*k loop, ties included, and route the
    same gradient."""
    from toolkit.nn.pool import MaxPool2d

    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal((6, 3, 8, 10)) * 2).astype(np.float32)  # many ties
    x[0] = 0.0
    perm = {"nchw": (0, 1, 2, 3), "channel_major": (1, 0, 2, 3), "batch_last": (1, 2, 3, 0)}
    inverse = tuple(np.argsort(perm[layout]))
    x = np.ascontiguousarray(x.transpose(perm[layout])).transpose(inverse)
    dy = rng.standard_normal((6, 3, 4, 5)).astype(np.float32)
    layer = MaxPool2d(2)
    layer.build((3, 8, 10), rng, np.dtype(np.float32))
    with parallel.using_threads(threads):
        fast_y = layer.forward_relu(x, training) if relu else layer.forward(x, training)
        fast_dx = layer.backward(dy)
    layer._pairs = False
    general_y = layer.forward(np.maximum(x, 0) if relu else x)
    general_dx = layer.backward(dy * (general_y > 0) if relu else dy)
    np.testing.assert_array_equal(fast_y, general_y)
    np.testing.assert_array_equal(fast_dx, general_dx)


def layer_by_layer(model, x, dy, training=True):
    """Output, input gradient and parameter gradients of ``model``'s layers run one
    after another (no layer absorbed into the next)."""
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=training)
    g = dy
    for layer in reversed(model.layers):
        g = layer.backward(g)
    return h, g, param_grads(model)


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_norm_relu_max_pool_run_as_one_unit_give_the_layers_results(threads):
    """Sequential runs conv -> bn -> relu -> maxpool's last three as one unit (the pool
    first, the affine map on a quarter of the elements): the same outputs bit for bit and
    the same gradients up to rounding as the layers one after another, with a channel
    whose batch-norm scale is negative (its windows take the minimum) and tied windows."""
    model = build_model(MODELS["cnn_bn"], seed=0, dtype="float64")
    assert {len(run) for run in model.fusions().values()} == {2}, "bn + relu into each pool"
    norms = [layer for layer in model.layers if layer.kind == "batchnorm"]
    for norm in norms:
        norm.params["gamma"][0] = -0.7
        norm.params["beta"][:] = np.linspace(-0.3, 0.3, norm.params["beta"].size)
    x = np.random.default_rng(1).standard_normal((16, *IMAGE))
    x[:3] = 0.5  # constant images: every window of the first stage ties
    dy = np.random.default_rng(2).standard_normal((16, 3))
    running = [norm.buffers["running_var"].copy() for norm in norms]
    with parallel.using_threads(threads):
        fused_y = model.forward(x, training=True).copy()
        fused_dx = model.backward(dy).copy()
        fused = param_grads(model)
        fused_running = [norm.buffers["running_var"].copy() for norm in norms]
        for norm, var in zip(norms, running, strict=True):
            norm.buffers["running_var"][...] = var
        y, dx, grads = layer_by_layer(model, x, dy)
    np.testing.assert_array_equal(fused_y, y)
    np.testing.assert_allclose(fused_dx, dx, rtol=1e-10, atol=1e-13)
    for key in grads:
        np.testing.assert_allclose(fused[key], grads[key], rtol=1e-10, atol=1e-13, err_msg=key)
    for norm, var in zip(norms, fused_running, strict=True):
        np.testing.assert_array_equal(norm.buffers["running_var"], var)
    eval_y = model.forward(x, training=False)  # evaluation: the layers one after another
    np.testing.assert_array_equal(eval_y, layer_by_layer(model, x, dy, training=False)[0])


def test_the_fused_batch_norm_unit_matches_finite_differences():
    """dL/dx, dL/dgamma and dL/dbeta of bn -> relu -> maxpool on batch-last images (the
    fused path), against central differences of L = sum(y * w); one channel negative."""
    from toolkit.analysis.gradcheck import numeric_gradient
    from toolkit.nn.activations import ReLU
    from toolkit.nn.layer import Sequential
    from toolkit.registry import layers

    rng = np.random.default_rng(3)
    model = Sequential([layers.get("batchnorm")(), ReLU(), layers.get("maxpool2d")(2)])
    model.build((3, 4, 6), rng, np.dtype(np.float64))
    model.layers[0].params["gamma"][...] = [1.3, -0.8, 0.6]
    model.layers[0].params["beta"][...] = [0.2, 0.1, -0.1]
    memory = rng.standard_normal((3, 4, 6, 5))  # (C, H, W, N): batch-last images
    x = memory.transpose(3, 0, 1, 2)
    weights = rng.standard_normal((5, 3, 2, 3))

    def loss() -> float:
        return float(np.sum(model.forward(x, training=True) * weights))

    assert model._absorbed() == {0, 1}
    model.forward(x, training=True)
    dx = model.backward(weights)
    norm = model.layers[0]
    analytic = {"gamma": norm.grads["gamma"].copy(), "beta": norm.grads["beta"].copy()}
    numeric = numeric_gradient(loss, memory).transpose(3, 0, 1, 2)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-7)
    for name, grad in analytic.items():
        numeric = numeric_gradient(loss, norm.params[name])
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
def test_same_convolutions_keep_batch_last_memory_through_the_stage(threads):
    """A stride-1 "same" conv2d returns a view of (C, H, W, N) memory; batch norm (on its
    own and inside the fused bn + ReLU + 2x2 max-pool), the pool and the next conv keep
    that layout (no NCHW copies), and the gradients come back in it too."""
    from toolkit.nn.batch_last import is_batch_last

    model = build_model(MODELS["cnn_bn"], seed=0, dtype="float32")
    x = np.random.default_rng(0).standard_normal((5, *IMAGE)).astype(np.float32)
    fusions, absorbed = model.fusions(), model._absorbed()
    with parallel.using_threads(threads):
        h, outputs = x, []
        for i, layer in enumerate(model.layers[:8]):  # conv, [bn, relu, pool], x2
            if i in absorbed:
                continue
            h = layer.forward_fused(h, fusions[i], True) if i in fusions else layer.forward(h, True)
            outputs.append((layer.kind, h))
        g = np.ones_like(h)
        for i in range(7, 0, -1):
            if i not in absorbed:
                g = model.layers[i].backward(g)
        conv_out = outputs[0][1]
        norm = model.layers[1]
        alone = norm.forward(conv_out, True), norm.backward(np.ones_like(conv_out))
    assert [kind for kind, _ in outputs] == ["conv2d", "maxpool2d"] * 2
    assert all(is_batch_last(out) for _, out in outputs)
    assert is_batch_last(g)  # dL/dx of the first batch norm, from the conv behind it
    assert all(is_batch_last(out) for out in alone)


def test_in_layout_of_copies_only_across_memory_orders():
    """A gradient in channel-major memory meeting a batch-last mask (a layer behind
    one that keeps another order) is re-laid out once; same orders or an unordered ``like``
    pass it through untouched."""
    from toolkit.nn.batch_last import in_layout_of, is_batch_last

    values = np.random.default_rng(0).standard_normal((3, 4, 5, 6))  # (N, C, H, W)
    channel_major = np.ascontiguousarray(values.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    batch_last = np.ascontiguousarray(values.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    moved = in_layout_of(channel_major, batch_last)
    assert is_batch_last(moved) and not is_batch_last(channel_major)
    np.testing.assert_array_equal(moved, values)
    assert in_layout_of(batch_last, batch_last * 2) is batch_last
    assert in_layout_of(channel_major, values[:, :, ::2]) is channel_major  # shapes differ
    strided = np.zeros((3, 4, 5, 12))[..., ::2]  # no contiguous order
    assert in_layout_of(channel_major, strided) is channel_major


def test_the_engine_warms_blas_once_before_its_first_gemm(monkeypatch):
    from toolkit.train import threads

    calls = []
    monkeypatch.setattr(threads.np, "matmul", lambda *args: calls.append(args[0].shape))
    threads.warm_blas.cache_clear()
    for _ in range(2):
        with threads.engine_threads(1):
            pass
    assert calls == [(512, 512)]


def test_a_step_too_small_to_split_shares_its_gemms_on_blas_threads_bit_identically():
    from threadpoolctl import threadpool_info

    spec = ModelSpec("mlp", (1, 28, 28), 10, {"hidden_sizes": [128, 64], "activation": "relu"})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 1, 28, 28)).astype(np.float32)
    data = ArrayData(x, rng.integers(0, 10, 256))
    seen, weights = set(), []
    for _ in range(2):
        model = build_model(spec, seed=0)
        trainer = Trainer(
            model, losses.build("cross_entropy"), optimizers.build("adam", model),
            epochs=2, batch_size=64, progress=False, threads=2,
        )  # fmt: skip
        dense_forward = model.layers[1].forward

        def forward(x, training=False, dense_forward=dense_forward):
            blas = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
            seen.add(("train" if training else "eval", blas))
            return dense_forward(x, training)

        model.layers[1].forward = forward
        trainer.fit(data)
        trainer.predict(x)
        weights.append(
            [p.copy() for _, layer in model.named_layers() for p in layer.params.values()]
        )
    assert seen == {
        ("train", 2),
        ("eval", 1),
    }  # eval shards its batch of 1000 on 1 BLAS thread each
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
