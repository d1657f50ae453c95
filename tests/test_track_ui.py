"""The MLflow-UI helpers (toolkit.track.ui): experiment kind and study view, readable param
values, irrelevant params, short run names and the parent's headline metrics."""

from __future__ import annotations

import json
import math

import pytest

from toolkit.track import ui


def test_experiment_tags_make_mlflow_treat_the_study_as_machine_learning():
    assert ui.experiment_tags() == {"mlflow.experimentKind": "custom_model_development"}


def test_study_view_selects_swept_params_seed_last_then_metrics_sorted_best_first():
    tags = ui.study_view_tags(["seed", "model.activation"])
    (key,) = tags
    assert key == "mlflow.sharedViewState.toolkit"
    view = json.loads(tags[key])
    assert view["selectedColumns"] == [
        "params.`model.activation`",
        "params.`seed`",
        "metrics.`test/acc`",
        "metrics.`val/acc`",
    ]
    assert view["orderByKey"] == "metrics.`test/acc`" and view["orderByAsc"] is False
    assert ui.study_view(["optim.lr"], ["val/loss"])["orderByAsc"] is True  # lowest loss first
    assert view["runsHiddenMode"] == "SHOW_ALL" and view["chartsSearchFilter"] == "test/acc"


def test_experiment_url_opens_the_runs_table_in_the_study_view():
    url = ui.experiment_url("http://127.0.0.1:5000/", "3")
    assert url == (
        "http://127.0.0.1:5000/#/experiments/3/runs"
        "?workflowType=machine_learning&viewStateShareKey=toolkit"
    )
    assert "viewStateShareKey" not in ui.experiment_url("http://h:1", "3", with_view=False)


def test_run_url_opens_a_run_or_one_of_its_artifacts_as_machine_learning():
    assert ui.run_url("http://h:5000", "3", "abc") == (
        "http://h:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    assert ui.run_url("http://h:5000/", "3", "abc", "report/report.html") == (
        "http://h:5000/#/experiments/3/runs/abc/artifacts/report/report.html"
        "?workflowType=machine_learning"
    )


@pytest.mark.parametrize(
    "value,text",
    [
        (["relu", "tanh"], "relu,tanh"),
        (("relu", "relu"), "relu,relu"),
        ([128, 64], "128,64"),
        ([], ""),
        ([[3, 3], [2, 2]], "[[3,3],[2,2]]"),
        ({"a": 1}, '{"a":1}'),
        (None, "None"),
        (0.001, "0.001"),
        (True, "True"),
        ("adam", "adam"),
    ],
)
def test_param_values_read_like_the_command_line(value, text):
    assert ui.param_value(value) == text


def test_readable_params_flatten_to_dotted_keys():
    config = {"model": {"activation": ["relu", "tanh"], "hidden_sizes": [128, 64]}, "seed": 0}
    assert ui.readable_params(config) == {
        "model.activation": "relu,tanh",
        "model.hidden_sizes": "128,64",
        "seed": "0",
    }
    assert ui.readable_params({"transfer": {}}) == {"transfer": "{}"}


CLASSIFIER_PARAMS = {
    "choice/probe": "default",
    "choice/transfer": "scratch",
    "choice/augment": "none",
    "probe.kind": "mlp",
    "probe.lr": "0.001",
    "transfer.init_from": "None",
    "transfer.freeze": "",
    "augment.p": "1.0",
    "trainer.early_stopping.enabled": "False",
    "trainer.early_stopping.patience": "5",
    "trainer.epochs": "15",
    "model.activation": "relu,tanh",
}


def test_a_plain_classifier_drops_probe_transfer_augment_and_early_stopping_settings():
    dropped = ui.irrelevant_params(CLASSIFIER_PARAMS, probe=False)
    assert dropped == {
        "choice/probe",
        "probe.kind",
        "probe.lr",
        "transfer.init_from",
        "transfer.freeze",
        "augment.p",
        "trainer.early_stopping.patience",
    }
    kept = ui.relevant_params(CLASSIFIER_PARAMS, probe=False)
    assert list(kept) == [
        "choice/transfer",
        "choice/augment",
        "trainer.early_stopping.enabled",
        "trainer.epochs",
        "model.activation",
    ]


def test_settings_in_use_are_kept():
    params = CLASSIFIER_PARAMS | {
        "choice/transfer": "finetune",
        "transfer.init_from": "run123",
        "choice/augment": "light",
        "trainer.early_stopping.enabled": "True",
    }
    assert ui.irrelevant_params(params, probe=True) == set()
    # without flags: an autoencoder with a probe kind other than none has a probe, a set
    # init_from means transfer
    autoencoder = params | {"model.name": "conv_autoencoder"}
    assert ui.irrelevant_params(autoencoder) == set()
    assert "probe.lr" in ui.irrelevant_params(autoencoder | {"probe.kind": "none"})
    assert "probe.lr" in ui.irrelevant_params(params | {"model.name": "mlp"})  # no encoder
    assert "transfer.freeze" in ui.irrelevant_params(params, transfer=False)


@pytest.mark.parametrize(
    "values,name",
    [
        ({"model.activation": ["relu", "tanh"]}, "relu,tanh"),
        ({"model.activation": "relu,tanh"}, "relu,tanh"),
        ({"optim.lr": 0.01}, "lr=0.01"),
        ({"optim": "adam"}, "adam"),
        ({"seed": 2}, "s=2"),
        ({"model.activation": ["sigmoid", "sigmoid"], "seed": 2}, "sigmoid,sigmoid s=2"),
        ({"optim": "sgd", "optim.lr": 0.1}, "sgd lr=0.1"),
        ({"model.dropout": 0.2, "augment": "light"}, "dropout=0.2 light"),
        ({"model.hidden_sizes": [128, 64]}, "hidden_sizes=128,64"),
        ({"model.batch_norm": True}, "batch_norm=True"),
        ({"optim.lr": 0.1, "probe.lr": 0.01}, "optim.lr=0.1 probe.lr=0.01"),
        ({}, "job"),
    ],
)
def test_child_run_names_say_what_varies_in_few_characters(values, name):
    assert ui.child_run_name(values) == name


def test_child_run_names_follow_the_swept_key_order():
    values = {"seed": 1, "model.activation": "relu,relu"}
    assert ui.child_run_name(values, ["model.activation", "seed"]) == "relu,relu s=1"


def test_short_keys_keep_the_shortest_unique_tail():
    keys = ["model.activation", "optim.lr", "probe.lr", "seed"]
    assert ui.short_keys(keys) == {
        "model.activation": "activation",
        "optim.lr": "optim.lr",
        "probe.lr": "probe.lr",
        "seed": "s",
    }


def test_parent_headline_metrics_repeat_the_best_childs_metrics_under_their_own_keys():
    best = {"test/acc": 0.98, "val/acc": 0.97, "train/loss": 0.1, "epochs": 15, "x": math.nan}
    headline = ui.parent_headline_metrics(best)
    assert headline == {
        "best/test/acc": 0.98,
        "best/val/acc": 0.97,
        "best/train/loss": 0.1,
        "best/epochs": 15.0,
        "test/acc": 0.98,
        "val/acc": 0.97,
        "train/loss": 0.1,
    }
