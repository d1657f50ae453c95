"""Registries: lookup with close matches, duplicates, plugin discovery."""

import subprocess
import sys
import textwrap

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
