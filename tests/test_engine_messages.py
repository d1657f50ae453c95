"""The engine raises errors in its own terms; the app adds the config key once.

(a) No string in ``toolkit/nn``, ``optim``, ``train`` or ``data`` names a config path
(``optim.lr``, ``dataset.root``, ``split.{name}``...). (b) Engine APIs called directly name
their parameters. (c) The same bad values through the app's config name the config key,
once.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir

from toolkit.app.config_keys import augmenter_from, build_from, config_key
from toolkit.app.config_store import register_configs
from toolkit.app.job import build_job
from toolkit.data import build_augmenter, load_dataset, split_dataset
from toolkit.nn import Sequential
from toolkit.registry import (
    ConfigError,
    ParameterError,
    augmentations,
    datasets,
    layers,
    optimizers,
    schedules,
)
from toolkit.train import EarlyStopping, Trainer

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "toolkit" / "conf"
ENGINE = ["nn", "optim", "train", "data"]


def config_groups() -> list[str]:
    """The top-level config groups and keys of ``config.yaml`` (``model`` is appended)."""
    config = yaml.safe_load((CONF / "config.yaml").read_text())
    groups = {next(iter(d)) for d in config["defaults"] if isinstance(d, dict)}
    groups = {g for g in groups if not g.startswith(("override", "hydra"))}
    return sorted(groups | {"model", "hydra"})


CONFIG_PATH = re.compile(rf"\b({'|'.join(config_groups())})\.(\{{|[A-Za-z_])")


def message_strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal of ``path`` (f-strings' literal parts too), docstrings aside."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_the_config_groups_are_known():
    assert {"optim", "trainer", "dataset", "split", "augment", "model"} <= set(config_groups())


def test_no_engine_message_names_a_config_path():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for package in ENGINE
        for path in sorted((ROOT / "toolkit" / package).rglob("*.py"))
        for line, text in message_strings(path)
        if CONFIG_PATH.search(text)
    ]
    assert found == [], "\n".join(found)


def model() -> Sequential:
    net = Sequential([layers.build("dense", units=2)])
    net.build((2,), np.random.default_rng(0), np.dtype("float32"))
    return net


def message(call) -> str:
    with pytest.raises(ConfigError) as err:
        call()
    text = str(err.value)
    assert "\n" not in text
    return text


ENGINE_CASES = {
    "optimizer lr": (
        lambda: optimizers.build("adam", model(), lr=-1),
        "Adam: lr must be a positive number; got -1",
    ),
    "sgd nesterov": (
        lambda: optimizers.build("sgd", model(), nesterov=True),
        "SGD: nesterov=True needs momentum > 0",
    ),
    "schedule": (
        lambda: schedules.build("step", 0.1, 10, step_size=0),
        "Step: step_size must be a positive number; got 0",
    ),
    "schedule base lr": (
        lambda: schedules.build("cosine", 0.1, 10, min_lr=1),
        "Cosine: min_lr must be in [0, base_lr=0.1); got 1",
    ),
    "warmup's inner schedule": (
        lambda: schedules.build("warmup", 0.1, 10, after="cosin"),
        "unknown schedule 'cosin' (after=cosin)",
    ),
    "trainer epochs": (
        lambda: Trainer(model(), None, optimizers.build("sgd", model()), epochs=0),
        "Trainer: epochs must be a positive integer; got 0",
    ),
    "trainer threads": (
        lambda: Trainer(model(), None, optimizers.build("sgd", model()), threads=0),
        "Trainer: threads must be a positive integer or None; got 0",
    ),
    "early stopping": (
        lambda: EarlyStopping(patience=0),
        "EarlyStopping: patience must be an integer >= 1; got 0",
    ),
    "split fractions": (
        lambda: split_dataset(datasets.build("spirals"), train=0.5, val=0.3, test=0.5),
        "split_dataset: train + val + test = 1.3 (train=0.5 val=0.3 test=0.5) must be 1",
    ),
    "augmentation": (
        lambda: augmentations.build("rotate", max_degrees=-5),
        "Rotate: max_degrees must be >= 0; got -5",
    ),
    "augmenter step": (
        lambda: build_augmenter({"rotate": {"max_degrees": -5}}),
        "Augmenter: steps.rotate.max_degrees must be >= 0; got -5",
    ),
    "dataset": (
        lambda: load_dataset("spirals", n_per_class=0),
        "spirals: n_per_class=0 must be >= 1",
    ),
    "image folder root": (
        lambda: load_dataset("image_folder"),
        "image_folder: root is not set: give root=<folder of class folders>",
    ),
}


@pytest.mark.parametrize(("call", "expected"), list(ENGINE_CASES.values()), ids=list(ENGINE_CASES))
def test_engine_errors_name_their_parameters(call, expected):
    text = message(call)
    assert text.startswith(expected), text
    assert not CONFIG_PATH.search(text), text


def test_parameter_errors_carry_the_parameter_and_survive_pickling():
    import pickle

    with pytest.raises(ParameterError) as err:
        optimizers.build("adam", model(), lr=-1)
    assert err.value.owner == "Adam" and err.value.param == "lr"
    again = pickle.loads(pickle.dumps(err.value))
    assert str(again) == str(err.value) and again.param == "lr"
    assert str(err.value.under("optim")) == "optim.lr must be a positive number; got -1"


def trainer_epochs_zero() -> None:
    with config_key("trainer"):
        Trainer(model(), None, optimizers.build("sgd", model()), epochs=0)


def early_stopping_mode() -> None:
    with config_key("trainer.early_stopping"):
        EarlyStopping(mode="up")


def split_sum() -> None:
    with config_key("split"):
        split_dataset(datasets.build("spirals"), train=0.5, val=0.3, test=0.5)


APP_MAPPINGS = {
    "optimizer": (
        lambda: build_from(optimizers, "adam", "optim", model(), lr=-1),
        "optim.lr must be a positive number; got -1",
    ),
    "unknown optimizer": (
        lambda: build_from(optimizers, "adma", "optim", model()),
        "unknown optimizer 'adma' (optim=adma)",
    ),
    "trainer": (trainer_epochs_zero, "trainer.epochs must be a positive integer; got 0"),
    "early stopping": (
        early_stopping_mode,
        "trainer.early_stopping.mode must be auto, min or max; got 'up'",
    ),
    "split": (split_sum, "split.train + split.val + split.test = 1.3"),
    "augment": (
        lambda: augmenter_from({"steps": {"rotate": {"max_degrees": -5}}, "p": 1.0}),
        "augment.steps.rotate.max_degrees must be >= 0; got -5",
    ),
}


@pytest.mark.parametrize(("call", "expected"), list(APP_MAPPINGS.values()), ids=list(APP_MAPPINGS))
def test_the_app_puts_the_config_key_in_front_once(call, expected):
    text = message(call)
    assert text.startswith(expected), text
    key = expected.split()[0].split("(")[0]
    assert f".{key}" not in text  # no key doubled (optim.optim.lr)


register_configs()
QUICK = ["+model=mlp", "dataset=spirals", "model.activation=relu", "model.hidden_sizes=[4]"]

JOB_CASES = {
    "optim.lr": (["optim.lr=-1"], "optim.lr must be a positive number; got -1.0"),
    "optim.nesterov": (
        ["optim=sgd", "optim.nesterov=true"],
        "optim.nesterov=true needs optim.momentum > 0 (e.g. 0.9)",
    ),
    "schedule.min_lr": (
        ["schedule=cosine", "schedule.min_lr=1", "optim.lr=0.1"],
        "schedule.min_lr must be in [0, optim.lr=0.1); got 1.0",
    ),
    "schedule.after": (
        ["schedule=warmup", "schedule.after=cosin"],
        "unknown schedule 'cosin' (schedule.after=cosin)",
    ),
    "dataset.n_per_class": (
        ["dataset.n_per_class=0"],
        "dataset.n_per_class=0 must be >= 1",
    ),
    "model.activation": (
        ["model.activation=swihs"],
        "unknown activation 'swihs' (model.activation=swihs)",
    ),
    "loss.label_smoothing": (
        ["loss.label_smoothing=1.5"],
        "loss.label_smoothing must be in [0, 1); got 1.5",
    ),
}


@pytest.mark.parametrize(("overrides", "expected"), list(JOB_CASES.values()), ids=list(JOB_CASES))
def test_a_job_names_the_config_key(overrides, expected):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*QUICK, *overrides])
    text = message(lambda: build_job(cfg, progress=False))
    assert text == expected or text.startswith(f"{expected};"), text
