"""Every config option and every study preset composes, and each preset sweeps keys that
exist in the composed config (or config groups)."""

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
    if group not in ("experiment", "hparams_search")
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


def test_trainer_and_logger_nodes_are_typed():
    register_configs()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["+model=mlp", "trainer.epochs=7", "logger=none"])
        assert cfg.trainer.epochs == 7 and cfg.logger.enabled is False
        with pytest.raises(Exception) as caught:
            compose("config", overrides=["+model=mlp", "trainer.early_stopping.patience=p"])
        assert "could not be converted to Integer" in str(caught.value.__cause__)
