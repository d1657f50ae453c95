"""Every config option and every study preset composes, and each preset sweeps keys that
exist in the composed config (or config groups)."""

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from toolkit.app.config_store import register_configs
from toolkit.app.overrides import config_groups, first_job, group_options

CONF = Path(__file__).resolve().parents[1] / "toolkit" / "conf"
register_configs()


def composed(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


OPTIONS = [
    (group, option)
    for group in config_groups(CONF)
    if group not in ("experiment", "hparams_search", "architecture")  # architecture: via model
    for option in group_options(CONF, group)
]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group, option):
    prefix = "+" if group == "model" else ""
    cfg = composed(f"{prefix}{group}={option}", *([] if group == "model" else ["+model=mlp"]))
    assert cfg[group] is not None


@pytest.mark.parametrize("preset", group_options(CONF, "experiment"))
def test_every_study_preset_composes_and_sweeps_real_keys(preset):
    cfg = composed(f"+experiment={preset}")
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params, f"{preset} sweeps nothing"
    groups = config_groups(CONF)
    for key in params:
        assert key in groups or OmegaConf.select(cfg, key) is not None, key
    if preset != "seeds":  # seeds only adds a seed sweep to another preset
        assert "model" in cfg


def test_registry_options_carry_their_signature_defaults():
    cfg = composed("+model=mlp", "optim=rmsprop", "schedule=step")
    assert cfg.optim == {
        "name": "rmsprop",
        "lr": 0.001,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
    }
    assert cfg.schedule == {"name": "step", "step_size": 5, "gamma": 0.5}
    assert list(cfg.model.hidden_sizes) == [128, 64]


def test_a_sweep_is_checked_with_its_first_jobs_values():
    argv = [
        "-m",
        "+model=mlp",
        "optim.lr=0.1,0.01",
        "model.activation=[relu,tanh],[tanh,tanh]",
        "trainer.batch_size=range(32,129,32)",
        "model.dropout=interval(0.1,0.5)",
        "optim.lr=tag(log, interval(1e-4, 1e-1))",
        "optim=glob(*)",
        "hydra.sweep.dir=out",
    ]
    assert first_job(argv) == [
        "-m",
        "+model=mlp",
        "optim.lr=0.1",
        "model.activation=[relu,tanh]",
        "trainer.batch_size=32",
        "model.dropout=0.1",
        "optim.lr=0.0001",
        "hydra.sweep.dir=out",
    ]


def test_augment_steps_take_a_mapping_from_the_command_line():
    cfg = composed("+model=cnn_single", "augment.steps={shift:{max_pixels:2}}")
    assert OmegaConf.to_container(cfg.augment.steps) == {"shift": {"max_pixels": 2}}
    names = composed("+model=cnn_single", "augment.steps=[shift,rotate]").augment.steps
    assert list(names) == ["shift", "rotate"]
    # the CNN recipe's shifts take new values key by key
    cfg = composed("+model=cnn", "augment.steps.shift.max_pixels=2")
    assert OmegaConf.to_container(cfg.augment.steps) == {"shift": {"max_pixels": 2}}


def test_trainer_and_logger_nodes_are_typed():
    register_configs()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["+model=mlp", "trainer.epochs=7", "logger=none"])
        assert cfg.trainer.epochs == 7 and cfg.logger.enabled is False
        with pytest.raises(Exception) as caught:
            compose("config", overrides=["+model=mlp", "trainer.early_stopping.patience=p"])
        assert "could not be converted to Integer" in str(caught.value.__cause__)


RECIPE_MODELS = ["mlp", "cnn", "cnn_single", "resnet", "autoencoder", "conv_autoencoder"]


@pytest.mark.parametrize("model", RECIPE_MODELS)
def test_every_model_option_carries_its_recipe(model):
    cfg = composed(f"+model={model}")
    assert cfg.recipe == model  # in the config, so the run's params show it
    assert cfg.schedule.name == "cosine" and cfg.model.name == model


def test_the_command_line_overrides_the_recipe():
    recipe = composed("+model=mlp", "optim=adam")
    assert recipe.trainer.epochs == 20 and list(recipe.model.activation) == ["relu", "relu"]
    assert recipe.augment.images_only and "shift" in recipe.augment.steps
    assert composed("+model=mlp", "augment=none").augment.steps is None
    cfg = composed("+model=mlp", "optim=adam", "trainer.epochs=2", "schedule=step")
    assert cfg.trainer.epochs == 2 and cfg.schedule.name == "step"
    assert cfg.model.dropout == recipe.model.dropout  # what was not overridden stays


def test_a_recipe_learning_rate_applies_to_any_optimizer():
    cfg = composed("+model=cnn", "optim=sgd")
    assert cfg.optim.name == "sgd" and cfg.optim.lr == composed("+model=cnn").optim.lr
    assert cfg.optim.momentum == 0.0  # sgd's own node, not adam's keys


def test_study_presets_win_over_the_model_recipe():
    optimizers = composed("+experiment=optimizers")
    assert optimizers.schedule.name == "constant" and optimizers.model.dropout == 0.0
    assert list(optimizers.model.activation) == ["relu", "tanh"]  # the reference MLP
    assert optimizers.trainer.epochs == 10
    pooling = composed("+experiment=pooling")
    assert list(pooling.model.channels) == [16, 32] and pooling.model.batchnorm is False
    assert pooling.trainer.epochs == 5 and pooling.model.dropout == 0.25
    assert composed("+model=cnn").trainer.batch_size == 128  # the recipe's batch ...
    for study in ("pooling", "transfer"):  # ... is not the CNN studies' batch
        assert composed(f"+experiment={study}").trainer.batch_size == 64
    for study in ("optimizers", "activation_pairs", "xor", "pooling", "transfer"):  # no shifts
        assert composed(f"+experiment={study}").augment.steps is None
    flow = composed("+experiment=gradient_flow")
    assert flow.schedule.name == "constant" and flow.trainer.epochs == 1


def test_a_model_without_a_recipe_is_its_signature_node():
    cfg = composed("+model=resnet18")
    assert cfg.recipe is None and cfg.schedule.name == "constant"


def test_presets_are_entries_with_other_defaults():
    assert composed("optim=sgd_momentum").optim.momentum == 0.9
    adamw = composed("optim=adamw").optim
    assert adamw.weight_decay == 0.01 and adamw.decoupled is True
    assert composed("split=70-30").split == {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 0}
    assert composed("augment=light").augment.steps.shift == {"max_pixels": 2}


def test_node_defaults_come_from_the_components():
    import inspect

    from toolkit.analysis.latent_probe import ProbeSettings
    from toolkit.data import split_dataset
    from toolkit.train import EarlyStopping, Trainer

    cfg = composed("+model=mlp", "seed=7")
    trainer = inspect.signature(Trainer).parameters
    for key in ("batch_size", "progress", "log_grad_norms", "threads"):
        assert cfg.trainer[key] == trainer[key].default, key
    assert composed("+model=resnet18").trainer.epochs == trainer["epochs"].default
    stopping = inspect.signature(EarlyStopping).parameters
    for key, value in cfg.trainer.early_stopping.items():
        if key != "enabled":
            assert value == stopping[key].default, key
    fractions = inspect.signature(split_dataset).parameters
    assert [cfg.split[k] for k in ("train", "val", "test")] == [
        fractions[k].default for k in ("train", "val", "test")
    ]
    assert cfg.split.seed == 7 and cfg.probe.seed == 7  # following the run's seed
    assert {k: v for k, v in cfg.probe.items() if k != "seed"} == {
        k: v for k, v in vars(ProbeSettings()).items() if k != "seed"
    }
    assert cfg.trainer.threads is None  # decided by the run


def test_validate_config_names_the_key():
    from toolkit.app.validate import validate_config
    from toolkit.registry import ConfigError

    validate_config(composed("+model=mlp"))
    for override, message in [
        ("probe.lr=0", "probe.lr must be > 0"),
        ("trainer.epochs=0", "trainer.epochs must be an integer >= 1"),
        ("split.test=0.2", "split.train + split.val + split.test = 1.2"),
        ("augment.p=-0.1", "augment.p must be in [0, 1]"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate_config(composed("+model=mlp", override))
