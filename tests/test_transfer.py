"""Transfer learning: frozen layers never change, pretrained weights load into a model with
a new head, bad checkpoints are clear errors, and the transfer config drives a real job."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from tests.conftest import requires_mnist
from toolkit.app.config_store import register_configs
from toolkit.app.transfer import checkpoint_file, head_path, load_pretrained, start_from
from toolkit.data import ArrayData, load_dataset, split_dataset
from toolkit.models import ModelSpec, build_model
from toolkit.registry import ConfigError, losses, optimizers
from toolkit.train import Trainer, save_checkpoint
from toolkit.train.checkpoint import model_arrays

CONF = Path(__file__).resolve().parents[1] / "toolkit" / "conf"
SMALL_CNN = {"channels": [4, 8], "hidden": 16}
BACKBONE = ["0.conv2d", "3.conv2d"]


def small_cnn(num_outputs: int, seed: int = 0):
    return build_model(ModelSpec("cnn", (1, 12, 12), num_outputs, SMALL_CNN), seed=seed)


def random_images(n: int, classes: int, seed: int = 0) -> ArrayData:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 1, 12, 12)).astype(np.float32)
    return ArrayData(images, rng.integers(0, classes, n))


def snapshot(model) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model_arrays(model).items()}


def test_frozen_layers_stay_bit_identical_while_the_rest_trains():
    model = small_cnn(3)
    before = snapshot(model)
    optimizer = optimizers.build("adamw", model, lr=0.01, weight_decay=0.1)
    frozen = optimizer.freeze(["0.conv2d", "3"])  # a layer path and a dotted prefix
    assert frozen == ["0.conv2d.W", "0.conv2d.b", "3.conv2d.W", "3.conv2d.b"]
    trainer = Trainer(model, losses.build("cross_entropy"), optimizer, epochs=2, progress=False)
    trainer.fit(random_images(64, 3))
    after = model_arrays(model)
    for key, value in before.items():
        if key.startswith(("param/0.conv2d/", "param/3.conv2d/")):
            assert np.array_equal(after[key], value), key
        else:
            assert not np.array_equal(after[key], value), key
    assert trainer.history["grad_norm/0.conv2d"][0] > 0  # gradients still flow and are logged


def test_freeze_patterns_accept_globs_and_unknown_ones_list_the_layers():
    optimizer = optimizers.build("sgd", small_cnn(3), lr=0.1)
    assert optimizer.freeze(["*dense"]) == ["7.dense.W", "7.dense.b", "9.dense.W", "9.dense.b"]
    listed = r"'4\.relu' names no layer .*layers: 0\.conv2d, 3\.conv2d"
    with pytest.raises(ConfigError, match=listed):
        optimizer.freeze(["4.relu"])


def test_pretrained_weights_load_under_a_new_zero_head(tmp_path):
    source = small_cnn(10, seed=0)
    path = save_checkpoint(tmp_path / "source.npz", source, {"note": "source"})
    target = small_cnn(5, seed=1)
    assert load_pretrained(target, path, reset_head=True) == head_path(target) == "9.dense"
    for key, value in model_arrays(target).items():
        if key.startswith("param/9.dense/"):
            assert value.shape[-1] == 5 and not value.any(), key
        else:
            assert np.array_equal(value, model_arrays(source)[key]), key


def test_a_checkpoint_that_does_not_fit_names_every_mismatch(tmp_path):
    path = save_checkpoint(tmp_path / "source.npz", small_cnn(10), {})
    head = r"9\.dense/W is \(16, 10\) in the checkpoint .* \(16, 5\)"
    with pytest.raises(ConfigError, match=head):
        load_pretrained(small_cnn(5), path, reset_head=False)
    wider = build_model(ModelSpec("cnn", (1, 12, 12), 10, {**SMALL_CNN, "hidden": 32}))
    with pytest.raises(ConfigError, match=r"param/7\.dense/W is \(72, 16\) .* but \(72, 32\)"):
        load_pretrained(wider, path, reset_head=True)


def test_init_from_accepts_an_mlflow_run_id(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    path = save_checkpoint(tmp_path / "checkpoint.npz", small_cnn(10), {})
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(path), "checkpoint")
    fetched = checkpoint_file(run.info.run_id, uri)
    assert fetched.read_bytes() == path.read_bytes()
    with pytest.raises(ConfigError, match="neither a checkpoint file nor an MLflow run id"):
        checkpoint_file(str(tmp_path / "missing.npz"), uri)


@requires_mnist
def test_mnist_classes_relabels_a_subset_of_the_digits(cache_dir):
    full = load_dataset("mnist")
    five_to_nine = load_dataset("mnist_classes", classes=[5, 6, 7, 8, 9], train_samples=300)
    assert five_to_nine.num_classes == 5 and len(five_to_nine.y_train) == 300
    assert five_to_nine.class_names[0] == full.class_names[5]
    assert len(five_to_nine.y_test) == np.isin(full.y_test, [5, 6, 7, 8, 9]).sum()
    first = np.flatnonzero(full.y_test >= 5)[0]
    assert np.array_equal(five_to_nine.x_test[0], full.x_test[first])
    assert five_to_nine.y_test[0] == full.y_test[first] - 5
    assert five_to_nine.normalization == full.normalization


@requires_mnist
def test_transfer_config_freezes_the_backbone_of_a_pretrained_cnn(tmp_path, cache_dir):
    """``transfer=frozen`` composed by Hydra, applied by :func:`start_from` (the call the
    run lifecycle makes): the convolutions keep the source's weights, the rest trains on
    the cached outputs of the frozen prefix."""
    source = build_model(ModelSpec("cnn", (1, 28, 28), 5, SMALL_CNN), seed=3)
    checkpoint = save_checkpoint(tmp_path / "source.npz", source, {})
    register_configs()
    overrides = [
        "+model=cnn",
        "dataset=mnist_classes",
        "dataset.classes=[5,6,7,8,9]",
        "dataset.train_samples=200",
        "transfer=frozen",
        f"transfer.init_from={checkpoint}",
        "logger=none",
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    dataset = load_dataset("mnist_classes", classes=[5, 6, 7, 8, 9], train_samples=200)
    splits = split_dataset(dataset, train=0.9, val=0.1)
    model = build_model(ModelSpec("cnn", (1, 28, 28), 5, SMALL_CNN), seed=0)
    optimizer = optimizers.build("adam", model, lr=0.001)
    plan = start_from(cfg, model, optimizer, splits, normalization=dataset.normalization)
    assert plan.record["frozen"][0] == "0.conv2d.W"
    assert plan.record["cached_prefix"] == [f"{i}.{k}" for i, k in enumerate(PREFIX_KINDS)]
    assert plan.splits.train.x.shape == (len(splits.train), 8 * 7 * 7)
    trainer = Trainer(
        plan.model, losses.build("cross_entropy"), optimizer, epochs=1, progress=False
    )
    trainer.fit(plan.splits.train, plan.splits.val)
    assert 0.0 <= trainer.evaluate(plan.splits.test)["test/acc"] <= 1.0
    trained, pretrained = model_arrays(model), model_arrays(source)
    for key in trained:
        frozen = key.startswith(tuple(f"param/{path}/" for path in BACKBONE))
        assert np.array_equal(trained[key], pretrained[key]) == frozen, key


PREFIX_KINDS = ["conv2d", "relu", "maxpool2d", "conv2d", "relu", "maxpool2d", "flatten"]


def test_a_runs_final_weights_are_stored_once_and_still_start_a_transfer(tmp_path):
    """With the pyfunc model logged, the final checkpoint lives only inside the model: no
    ``checkpoint/`` copy; ``transfer.init_from=<run id>`` reads the model's copy and the
    model still loads and predicts."""
    import os
    import subprocess
    import sys

    mlflow = pytest.importorskip("mlflow")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    source = ["+model=mlp", "dataset=spirals", "trainer.epochs=1", "trainer.progress=false"]
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", *source, "hydra.run.dir=out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("toolkit").experiment_id])
    assert "checkpoint" not in {a.path for a in client.list_artifacts(run.info.run_id)}
    fetched = checkpoint_file(run.info.run_id, uri)
    assert fetched.read_bytes() == (tmp_path / "out" / "checkpoint.npz").read_bytes()
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert np.asarray(model.predict(np.zeros((3, 2), dtype=np.float32))).shape == (3, 2)
