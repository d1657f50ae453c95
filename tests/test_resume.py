"""Determinism and exact resume: same seed -> bit-identical weights; a run continued from
an epoch checkpoint ends bit-identical to an uninterrupted one."""

import numpy as np
import pytest

from toolkit.data import ArrayData, build_augmenter
from toolkit.models import ModelSpec, build_model
from toolkit.registry import losses, optimizers, schedules
from toolkit.train import EarlyStopping, Trainer
from toolkit.train.checkpoint import EpochCheckpoint, resume_training

RNG = np.random.default_rng(0)
IMAGES = RNG.standard_normal((256, 1, 8, 8)).astype(np.float32)
LABELS = (IMAGES.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
TRAIN, VAL = ArrayData(IMAGES[:192], LABELS[:192]), ArrayData(IMAGES[192:], LABELS[192:])
SPEC = ModelSpec("mlp", (1, 8, 8), 2, {"hidden_sizes": [16, 8], "dropout": 0.3})


def make_trainer(epochs: int, callbacks=()) -> Trainer:
    model = build_model(SPEC, seed=1)
    optimizer = optimizers.build("adam", model, lr=0.01)
    return Trainer(
        model,
        losses.build("cross_entropy"),
        optimizer,
        schedules.build("cosine", 0.01, 6),
        epochs=epochs,
        batch_size=32,
        seed=2,
        progress=False,
        augment=build_augmenter({"shift": {"max_pixels": 1}, "noise": {"std": 0.1}}),
        callbacks=[EarlyStopping("val/loss", patience=50), *callbacks],
    )


def learned(history: dict) -> dict:
    """The history without wall-clock timings."""
    return {k: v for k, v in history.items() if not k.startswith("time/")}


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {
        f"{p}.{k}": v.copy()
        for p, layer in trainer.model.named_layers()
        for k, v in layer.params.items()
    }


def test_same_seed_gives_bit_identical_training():
    first, second = make_trainer(3), make_trainer(3)
    first.fit(TRAIN, VAL)
    second.fit(TRAIN, VAL)
    assert learned(first.history) == learned(second.history)
    for key, value in weights(first).items():
        assert np.array_equal(value, weights(second)[key]), key


def test_resumed_training_equals_uninterrupted(tmp_path):
    uninterrupted = make_trainer(6)
    uninterrupted.fit(TRAIN, VAL)

    path = tmp_path / "last.npz"
    interrupted = make_trainer(6, [EpochCheckpoint(path, dict)])
    interrupted.epochs = 2  # stop after epoch 2, as if killed during epoch 3
    interrupted.fit(TRAIN, VAL)

    resumed = make_trainer(6)
    meta = resume_training(resumed, path)
    assert meta["training"]["epoch"] == 2 and resumed.epoch == 2
    resumed.fit(TRAIN, VAL)
    assert learned(resumed.history) == learned(uninterrupted.history)
    for key, value in weights(uninterrupted).items():
        assert np.array_equal(value, weights(resumed)[key]), key


# --- through the command line ------------------------------------------------------------

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.conftest import requires_mnist  # noqa: E402
from toolkit.train.checkpoint import read_checkpoint  # noqa: E402

RUN = [
    "+model=mlp",
    "model.dropout=0.2",
    "augment=light",
    "dataset.subset=12000",
    "trainer.epochs=5",
    "trainer.progress=false",
    "logger.log_model=false",
    "logger.tracking_uri=sqlite:///mlflow.db",
]


def toolkit(*args, cwd: Path, wait: bool = True):
    command = [sys.executable, "-m", "toolkit", *args]
    if not wait:
        return subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def final_state(folder: Path) -> tuple[dict, dict]:
    arrays, _ = read_checkpoint(folder / "checkpoint.npz")
    import json

    return json.loads((folder / "metrics.json").read_text()), arrays


@requires_mnist
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path, cache_dir):
    full, broken = tmp_path / "full", tmp_path / "broken"
    full.mkdir(), broken.mkdir()
    assert toolkit(*RUN, "hydra.run.dir=out", cwd=full).returncode == 0

    process = toolkit(*RUN, cwd=broken, wait=False)  # Hydra's default outputs/<date>/<time>
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = list(broken.glob("outputs/*/*/checkpoint_last.npz"))
        if found and read_checkpoint(found[0])[1]["training"]["epoch"] >= 2:
            checkpoint = found[0]
            break
        time.sleep(0.02)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = read_checkpoint(checkpoint)[1]["training"]["epoch"]
    assert 2 <= killed_at < 5

    resumed = toolkit(*RUN, "hydra.run.dir=resumed", "trainer.resume=true", cwd=broken)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"after epoch {killed_at}" in resumed.stderr

    (expected_metrics, expected), (metrics, arrays) = (
        final_state(full / "out"),
        final_state(broken / "resumed"),
    )
    assert metrics["test/acc"] == expected_metrics["test/acc"]
    for key, value in expected.items():
        assert np.array_equal(arrays[key], value), key

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{broken / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["toolkit"], output_format="list")
    assert run.info.status == "FINISHED"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path):
    result = toolkit(
        "+model=mlp", "dataset=spirals", "trainer.resume=true", "logger=none", cwd=tmp_path
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: trainer.resume=true: no checkpoint of this configuration")
    )


@pytest.mark.slow  # ~45 s; a resumed sweep retraining only its unfinished job runs in CI via SLURM
def test_resumed_sweep_runs_only_the_jobs_that_did_not_finish(tmp_path):
    sweep = [
        "-m",
        "+model=mlp",
        "dataset=spirals",
        "model.activation=relu",
        "trainer.epochs=2",
        "model.hidden_sizes=[8],[16]",
        "trainer.progress=false",
        "logger.log_model=false",
        "logger.tracking_uri=sqlite:///mlflow.db",
        "logger.experiment=resume_study",
    ]
    first = toolkit(*sweep, "optim.lr=0.01,1e30", cwd=tmp_path)
    assert first.returncode == 1 and "2 of 4 jobs finished" in first.stderr

    again = toolkit(*sweep, "optim.lr=0.01,0.02", "trainer.resume=true", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("skipped: job") == 2
    assert "4 of 4 jobs finished" in again.stderr

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["resume_study"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("toolkit.sweep") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    statuses = sorted(r.info.status for r in children)
    assert statuses == ["FAILED", "FAILED", "FINISHED", "FINISHED", "FINISHED", "FINISHED"]
