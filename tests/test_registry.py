"""Registries: lookup with close matches, duplicates, plugin discovery."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from toolkit.registry import ConfigError, Registry, activations, load_plugins, optimizers


def test_unknown_name_lists_close_matches_on_one_line():
    with pytest.raises(ConfigError) as err:
        optimizers.get("adma", key="optim")
    message = str(err.value)
    assert "unknown optimizer 'adma' (optim=adma)" in message
    assert "did you mean: adam" in message
    assert "sgd" in message and "\n" not in message


def test_duplicate_registration_is_an_error_unless_forced():
    registry = Registry("widget")
    registry.register("a")(lambda: 1)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("a")(lambda: 2)
    registry.register("a", force=True)(lambda: 3)
    assert registry.get("a")() == 3


def test_build_rejects_unknown_hyperparameters():
    with pytest.raises(ConfigError, match="hyperparameters are: lr, momentum"):
        optimizers.build("sgd", object(), lrr=0.1)


def test_example_plugins_are_registered():
    assert "swish" in activations and "lion" in optimizers


def test_plugin_folder_from_environment(tmp_path):
    (tmp_path / "cube.py").write_text(
        textwrap.dedent(
            """
            from toolkit.nn.activations import Activation
            from toolkit.registry import activations

            @activations.register("cube")
            class Cube(Activation):
                def forward(self, x, training=False):
                    self._x = x
                    return x ** 3

                def backward(self, dy):
                    return 3 * self._x ** 2 * dy
            """
        )
    )
    code = (
        "from toolkit.registry import load_plugins, activations; load_plugins();"
        "print('cube' in activations)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"TOOLKIT_PLUGINS": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "True"


def test_loading_plugins_twice_is_harmless():
    load_plugins()
    load_plugins()
    assert "swish" in activations


def test_a_preset_is_its_base_with_other_defaults():
    registry = Registry("widget")

    @registry.register("base")
    def base(x, /, size: int = 1, scale: float = 1.0):
        return (x, size, scale)

    registry.preset("big", "base", "A big base.", size=10)
    assert registry.build("big", "x") == ("x", 10, 1.0)
    assert registry.build("big", "x", size=3) == ("x", 3, 1.0)  # explicit values still win
    assert registry.hyperparameters("big")["size"].default == 10
    assert registry.get("big").__doc__ == "A big base."
    with pytest.raises(ConfigError, match="base has no hyperparameter colour"):
        registry.preset("red", "base", colour="red")


def test_the_optimizer_presets():
    from toolkit.nn.dense import Dense
    from toolkit.optim.optimizers import SGD, Adam

    layer = Dense(2)
    layer.build((3,), np.random.default_rng(0), "float32")
    adamw = optimizers.build("adamw", layer)
    assert isinstance(adamw, Adam) and adamw.decoupled and adamw.weight_decay == 0.01
    momentum = optimizers.build("sgd_momentum", layer, lr=0.05)
    assert isinstance(momentum, SGD) and momentum.momentum == 0.9 and momentum.lr == 0.05


def test_registering_the_same_code_twice_keeps_the_first():
    registry = Registry("widget")
    source = "def make(size: int = 1):\n    return size\n"
    first, second = {}, {}
    exec(compile(source, __file__, "exec"), first)  # same file and code: a copy
    exec(compile(source, __file__, "exec"), second)
    registry.register("make")(first["make"])
    registry.register("make")(second["make"])
    assert registry.get("make") is first["make"]


def test_a_broken_plugin_is_rolled_back_and_named(tmp_path):
    (tmp_path / "half.py").write_text(
        "from toolkit.registry import activations\n"
        "from toolkit.nn.activations import ReLU\n\n"
        "activations.register('half_registered')(type('Half', (ReLU,), {}))\n"
        "raise RuntimeError('boom')\n"
    )
    code = (
        "from toolkit.registry import load_plugins, activations, PLUGIN_FAILURES\n"
        "load_plugins(strict=False)\n"
        "print('half_registered' in activations, PLUGIN_FAILURES[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"TOOLKIT_PLUGINS": str(tmp_path), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == f"False plugin {tmp_path}/half.py, line 5: RuntimeError: boom"
