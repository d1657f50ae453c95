"""Data-parallel training steps (toolkit.nn.data_parallel): shards of the batch on
threads give the single pass's outputs, loss, gradients and batch-norm statistics up to
rounding, reruns are bit-identical, each shard draws its own dropout masks, a failing
shard raises its own error without leaving the others waiting, and models the shards do
not apply to keep the single pass."""

import threading

import numpy as np
import pytest

from toolkit.data import ArrayData
from toolkit.models import ModelSpec, build_model
from toolkit.nn import parallel
from toolkit.nn.activations import ReLU
from toolkit.nn.data_parallel import DataParallel
from toolkit.nn.dense import Dense
from toolkit.nn.layer import Layer, Sequential
from toolkit.nn.norm import BatchNorm
from toolkit.nn.reshape import Flatten
from toolkit.registry import losses, optimizers
from toolkit.train import Trainer

IMAGE = (1, 12, 12)
MODELS = {
    "cnn_bn": ModelSpec("cnn", IMAGE, 3, {"channels": [4, 6], "hidden": 8, "batchnorm": True}),
    "resnet": ModelSpec("resnet", IMAGE, 3, {"channels": [4, 6], "blocks": [1, 1]}),
}


def make_model(name: str, dtype: str = "float64") -> Layer:
    """A model of MODELS, or ``dense_bn``: batch norm on flat features (N, F)."""
    if name != "dense_bn":
        return build_model(MODELS[name], seed=0, dtype=dtype)
    model = Sequential([Flatten(), Dense(16), BatchNorm(), ReLU(), Dense(3)])
    model.build(IMAGE, np.random.default_rng(0), np.dtype(dtype))
    return model


@pytest.fixture(autouse=True)
def shard_small_models(monkeypatch):
    """These test models are far below the GEMM size that pays for a shard."""
    monkeypatch.setattr(parallel, "MIN_SHARD_MACS", 1)


def batch(n: int = 64, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, *IMAGE)).astype(dtype), rng.integers(0, 3, n)


def one_step(name: str, threads: int, dtype: str = "float64", n: int = 64):
    """(shard sizes, output, loss, {path/key: grad}, {path/key: buffer}) of one step."""
    model = make_model(name, dtype)
    model.needs_input_grad = False
    step = DataParallel(model, losses.build("cross_entropy"))
    x, y = batch(n, dtype)
    with parallel.using_threads(threads):
        step.new_epoch(len(x))
        output, value = step.forward_backward(x, y)
        sizes = step.shard_sizes(n)
    named = list(model.named_layers())
    grads = {f"{p}/{k}": g.copy() for p, layer in named for k, g in layer.grads.items()}
    buffers = {f"{p}/{k}": b.copy() for p, layer in named for k, b in layer.buffers.items()}
    return sizes, output, value, grads, buffers


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name", [*MODELS, "dense_bn"])
def test_shards_give_the_single_pass_up_to_rounding(name, threads):
    sizes1, y1, loss1, grads1, buffers1 = one_step(name, 1)
    sizes, y, loss, grads, buffers = one_step(name, threads)
    assert sizes1 == [64] and len(sizes) == threads and sum(sizes) == 64
    np.testing.assert_allclose(y, y1, rtol=1e-12, atol=1e-12)
    assert loss == pytest.approx(loss1, rel=1e-13)
    assert grads.keys() == grads1.keys() and buffers.keys() == buffers1.keys()
    for key in grads1:  # batch-norm gradients included: each shard holds its own share
        np.testing.assert_allclose(grads[key], grads1[key], rtol=1e-10, atol=1e-12, err_msg=key)
    assert any("running_mean" in key for key in buffers1)
    for key in buffers1:  # updated once per step, with the whole batch's statistics
        np.testing.assert_allclose(buffers[key], buffers1[key], rtol=1e-12, atol=1e-14)


def test_an_uneven_last_batch_is_split_too():
    sizes1, y1, loss1, grads1, _ = one_step("cnn_bn", 1, n=21)
    sizes, y, loss, grads, _ = one_step("cnn_bn", 2, n=21)
    assert sizes == [10, 11]
    np.testing.assert_allclose(y, y1, rtol=1e-12, atol=1e-12)
    for key in grads1:
        np.testing.assert_allclose(grads[key], grads1[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", [*MODELS, "dense_bn"])
def test_reruns_on_two_shards_are_bit_identical(name):
    first, second = one_step(name, 2, "float32"), one_step(name, 2, "float32")
    np.testing.assert_array_equal(first[1], second[1])
    for a, b in zip(first[3].values(), second[3].values(), strict=True):
        np.testing.assert_array_equal(a, b)


def dropout_trainer(threads: int) -> tuple[Trainer, ArrayData]:
    spec = ModelSpec("mlp", IMAGE, 3, {"hidden_sizes": [16], "activation": "relu", "dropout": 0.5})
    model = build_model(spec, seed=0)
    x, y = batch(96, "float32")
    trainer = Trainer(
        model, losses.build("cross_entropy"), optimizers.build("adam", model, lr=1e-2),
        epochs=2, batch_size=32, seed=0, progress=False, threads=threads,
    )  # fmt: skip
    return trainer, ArrayData(x, y)


def test_each_shard_draws_its_own_dropout_masks_and_reruns_draw_the_same():
    trainer, data = dropout_trainer(2)
    twin_x = np.concatenate([data.x[:16], data.x[:16]])  # two shards of the same 16 samples
    step = trainer._data_parallel()
    with parallel.using_threads(2):
        step.new_epoch(32)
        output, _ = step.forward_backward(twin_x, data.y[:32])
        assert step.shard_sizes(32) == [16, 16]
    assert not np.allclose(output[:16], output[16:])  # the masks differ between shards
    runs = []
    for _ in range(2):
        trainer, data = dropout_trainer(2)
        history = trainer.fit(data)
        runs.append([history["train/loss"], trainer.model.layers[-1].params["W"].copy()])
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


class FailsOnShard(Layer):
    """Raises ValueError on one shard of a data-parallel step (and on the single pass)."""

    kind = "test_fails_on_shard"
    shards_batch = True
    shard = 1

    def forward(self, x, training=False):
        if parallel.shard_index() == self.shard:
            raise ValueError(f"shard {self.shard} failed")
        return x


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_shard_raises_its_error_and_no_shard_is_left_waiting(failing):
    cnn = make_model("cnn_bn", "float32")
    failer = FailsOnShard()
    failer.shard = failing
    model = Sequential([cnn.layers[0], failer, *cnn.layers[1:]])  # batch norms come after
    step = DataParallel(model, losses.build("cross_entropy"))
    x, y = batch(32, "float32")
    outcome = {}

    def run():
        with parallel.using_threads(2):
            step.new_epoch(len(x))
            try:
                step.forward_backward(x, y)
            except Exception as error:  # noqa: BLE001 - the test reports what was raised
                outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "a shard was left waiting at a batch-norm sum"
    assert isinstance(outcome.get("error"), ValueError)
    assert str(outcome["error"]) == f"shard {failing} failed"


class PerBatchLayer(Layer):
    """A plugin-style layer that does not say it may run on shards (mixes samples)."""

    kind = "per_batch"

    def forward(self, x, training=False):
        return x - x.mean(axis=0)


def test_a_layer_that_does_not_declare_shards_batch_keeps_the_single_pass():
    cnn = make_model("cnn_bn", "float32")
    mixed = Sequential([PerBatchLayer(), *cnn.layers])
    with parallel.using_threads(2):
        assert DataParallel(cnn, losses.build("cross_entropy")).shard_sizes(64) == [32, 32]
        assert DataParallel(mixed, losses.build("cross_entropy")).shard_sizes(64) == [64]


def test_all_sum_outside_a_step_is_the_local_value_and_inside_the_sum_in_shard_order():
    local = np.array([1.0, 2.0])
    assert parallel.all_sum(local) is local
    with parallel.using_threads(3):
        sums = parallel.run_shards(
            lambda start, stop: (parallel.all_sum(np.array([start, stop], float)),
                                 parallel.step_size(stop - start)),
            [2, 3, 4],
        )  # fmt: skip
    for total, size in sums:
        np.testing.assert_array_equal(total, [0 + 2 + 5, 2 + 5 + 9])
        assert size == 9
