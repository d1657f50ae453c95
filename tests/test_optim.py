"""Optimizers and schedules follow PyTorch's update rules step for step."""

import numpy as np
import pytest

from toolkit.nn import parallel
from toolkit.nn.dense import Dense
from toolkit.nn.layer import Sequential
from toolkit.optim.optimizer import Optimizer
from toolkit.registry import ConfigError, optimizers, schedules

torch = pytest.importorskip("torch")

CASES = [
    ("sgd", {"lr": 0.1}, torch.optim.SGD, {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (
        "sgd",
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ),
    ("rmsprop", {"lr": 0.01}, torch.optim.RMSprop, {"lr": 0.01, "eps": 1e-8}),
    ("adam", {"lr": 0.01}, torch.optim.Adam, {"lr": 0.01}),
    (
        "adam",
        {"lr": 0.01, "weight_decay": 0.1},
        torch.optim.Adam,
        {"lr": 0.01, "weight_decay": 0.1},
    ),
    ("adamw", {"lr": 0.01}, torch.optim.AdamW, {"lr": 0.01}),
]


def tiny_model() -> Sequential:
    model = Sequential([Dense(3), Dense(2)])
    model.build((4,), np.random.default_rng(0), np.dtype("float64"))
    return model


class LazySlots(Optimizer):
    """A plugin-style optimizer that makes its slot inside update() (momentum SGD)."""

    def update(self, param, grad, state):
        if "velocity" not in state:
            state["velocity"] = np.zeros_like(param)
        state["velocity"] *= 0.9
        state["velocity"] += grad
        param -= self.lr * state["velocity"]


@pytest.mark.parametrize(
    "name,kwargs", [(name, kwargs) for name, kwargs, _, _ in CASES] + [(LazySlots, {"lr": 0.1})]
)
def test_a_step_split_over_threads_is_bit_identical_to_one_pass(name, kwargs):
    # a 600 x 1024 layer is over two shards of parallel.MIN_SHARD_ELEMENTS, so with two
    # threads its elements are split between them (and the small bias is not)
    def trained(threads: int | None) -> list[np.ndarray]:
        model = Sequential([Dense(1024), Dense(3)])
        model.build((600,), np.random.default_rng(0), np.dtype("float32"))
        optimizer = (
            name(model, **kwargs)
            if isinstance(name, type)
            else optimizers.build(name, model, **kwargs)
        )
        grads = np.random.default_rng(1)
        run = None if threads is None else parallel.run_elementwise
        with parallel.using_threads(threads or 1):
            assert (
                threads is None
                or len(
                    parallel.shard_ranges(model.num_params(), min_size=parallel.MIN_SHARD_ELEMENTS)
                )
                == threads
            )
            for _ in range(3):
                for _, layer in model.named_layers():
                    for grad in layer.grads.values():
                        grad[...] = grads.standard_normal(grad.shape)
                optimizer.step(run)
        return [p for _, layer in model.named_layers() for p in layer.params.values()]

    for plain, split in zip(trained(None), trained(2), strict=True):
        np.testing.assert_array_equal(plain, split)


@pytest.mark.parametrize("name,kwargs,torch_cls,torch_kwargs", CASES)
def test_matches_pytorch(name, kwargs, torch_cls, torch_kwargs):
    model = tiny_model()
    arrays = [(layer, key) for _, layer in model.named_layers() for key in layer.params]
    tensors = [torch.tensor(layer.params[key].copy(), requires_grad=True) for layer, key in arrays]
    optimizer = optimizers.build(name, model, **kwargs)
    reference = torch_cls(tensors, **torch_kwargs)
    rng = np.random.default_rng(1)
    for _ in range(5):
        for (layer, key), tensor in zip(arrays, tensors, strict=False):
            grad = rng.standard_normal(layer.params[key].shape)
            layer.grads[key][...] = grad
            tensor.grad = torch.tensor(grad)
        optimizer.step()
        reference.step()
    for (layer, key), tensor in zip(arrays, tensors, strict=False):
        np.testing.assert_allclose(
            layer.params[key], tensor.detach().numpy(), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("sgd", {"lr": -0.1}),
        ("sgd", {"lr": 0}),
        ("adam", {"lr": float("nan")}),
        ("sgd", {"lr": 0.1, "momentum": 1.5}),
        ("sgd", {"lr": 0.1, "nesterov": True}),
        ("adam", {"beta1": 1.0}),
    ],
)
def test_bad_hyperparameters_are_one_line_errors(name, kwargs):
    with pytest.raises(ConfigError) as err:
        optimizers.build(name, tiny_model(), **kwargs)
    message = str(err.value)  # in the engine's terms: the class and its parameter
    assert "\n" not in message and message.startswith(("SGD: ", "Adam: "))
    assert any(f"{param} " in message or f"{param}=" in message for param in kwargs)


def torch_lrs(scheduler_cls, epochs, **kwargs):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = scheduler_cls(optimizer, **kwargs)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(
    "name,kwargs,torch_name,torch_kwargs",
    [
        ("step", {"step_size": 5, "gamma": 0.5}, "StepLR", {"step_size": 5, "gamma": 0.5}),
        ("exponential", {"gamma": 0.97}, "ExponentialLR", {"gamma": 0.97}),
        ("cosine", {"min_lr": 0.001}, "CosineAnnealingLR", {"T_max": 12, "eta_min": 0.001}),
    ],
)
def test_schedules_match_pytorch(name, kwargs, torch_name, torch_kwargs):
    ours = schedules.build(name, 0.1, 12, **kwargs).values()
    theirs = torch_lrs(getattr(torch.optim.lr_scheduler, torch_name), 12, **torch_kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_warmup_ramps_then_follows_the_wrapped_schedule():
    lrs = schedules.build(
        "warmup", 0.1, 10, warmup_epochs=2, start_factor=0.1, after="step"
    ).values()
    assert lrs[:3] == pytest.approx([0.01, 0.055, 0.1])
    assert lrs[2:] == pytest.approx(schedules.build("step", 0.1, 8).values())


def test_every_schedule_stays_positive():
    for name in schedules.names():
        assert all(lr > 0 for lr in schedules.build(name, 0.01, 30).values()), name


def test_warmup_rejects_unknown_inner_schedule():
    with pytest.raises(ConfigError, match="did you mean: cosine"):
        schedules.build("warmup", 0.1, 10, after="cosin")


def test_a_threaded_step_updates_all_parameters_as_one_array_and_follows_replacements():
    """With ``run``, Adam's passes run over one flat array that the layers' params, grads
    and the slots are views of; a slot or parameter put in their place afterwards (a
    loaded state, a user's assignment) is copied in on the next step, and every step
    gives the bits of the per-parameter path (run=None)."""

    def run_steps(run) -> tuple[Sequential, Optimizer]:
        model = tiny_model()
        optimizer = optimizers.build("adam", model, lr=0.01)
        grads = np.random.default_rng(1)
        for step in range(4):
            for _, layer in model.named_layers():
                for grad in layer.grads.values():
                    grad[...] = grads.standard_normal(grad.shape)
            if step == 1:  # a fresh weight array (the other parameters stay views)
                model.layers[0].params["W"] = model.layers[0].params["W"] + 1.0
            if step == 2:  # a fresh state, as a resume loads it
                optimizer.load_state_dict(
                    {k: v * 0.5 for k, v in optimizer.state_dict().items() if k != "steps"}
                    | {"steps": np.array(optimizer.steps)}
                )
            optimizer.step(run)
        return model, optimizer

    plain, _ = run_steps(None)
    flat, optimizer = run_steps(parallel.run_elementwise)
    arrays = [a for _, layer in flat.named_layers() for a in (*layer.params.values(),)]
    one = arrays[0].base
    assert one is not None and all(a.base is one for a in arrays)  # views of one array
    assert all(s["m"].base is not None for s in optimizer.state.values())
    for (_, a), (_, b) in zip(plain.named_layers(), flat.named_layers(), strict=True):
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])


def test_parameters_of_different_dtypes_are_updated_one_by_one():
    model = tiny_model()
    model.layers[1].params["b"] = model.layers[1].params["b"].astype(np.float32)
    model.layers[1].grads["b"] = np.ones(2, dtype=np.float32)
    before = model.layers[1].params["b"].copy()
    optimizer = optimizers.build("sgd", model, lr=0.1, momentum=0.9)
    optimizer.step(parallel.run_elementwise)
    np.testing.assert_allclose(model.layers[1].params["b"], before - 0.1)
    assert not np.shares_memory(model.layers[0].params["W"], model.layers[1].params["W"])


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("adam", {"lr": 0.01}),
        ("sgd", {"lr": 0.1, "momentum": 0.9}),
        ("rmsprop", {"lr": 0.01, "alpha": 0.9}),
    ],
)
@pytest.mark.parametrize("run", [None, parallel.run_elementwise], ids=["per-param", "flat"])
def test_decaying_slots_lose_their_subnormals_and_no_parameter_moves(
    name, kwargs, run, monkeypatch
):
    """Gradients that go quiet leave the slots decaying into subnormal floats, where
    they stay (0.9 x 4 x 2**-149 rounds back to 4 x 2**-149; slow on x86): every
    FLUSH_EVERY steps those become zero, and the parameters keep the bits
    they get without the flush."""
    import toolkit.optim.optimizer as optimizer_module

    def trained(flush_every: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        monkeypatch.setattr(optimizer_module, "FLUSH_EVERY", flush_every)
        model = Sequential([Dense(8), Dense(3)])
        model.build((5,), np.random.default_rng(0), np.dtype("float32"))
        optimizer = optimizers.build(name, model, **kwargs)
        grads = np.random.default_rng(1)
        for step in range(1200):
            for _, layer in model.named_layers():
                for grad in layer.grads.values():
                    grad[...] = grads.standard_normal(grad.shape) * (step < 3)
            optimizer.step(run)
        slots = [s for state in optimizer.state.values() for s in state.values()]
        params = [p.copy() for _, layer in model.named_layers() for p in layer.params.values()]
        return params, slots

    def subnormals(arrays: list[np.ndarray]) -> int:
        tiny = np.finfo(np.float32).tiny
        return sum(int(np.count_nonzero((a != 0) & (np.abs(a) < tiny))) for a in arrays)

    flush_every = optimizer_module.FLUSH_EVERY
    kept_params, kept_slots = trained(10**9)
    flushed_params, flushed_slots = trained(flush_every)
    assert subnormals(kept_slots) > 0  # without the flush the slots hold subnormals
    assert subnormals(flushed_slots) == 0
    for kept, flushed in zip(kept_params, flushed_params, strict=True):
        np.testing.assert_array_equal(kept, flushed)
