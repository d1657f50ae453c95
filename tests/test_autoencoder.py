"""Autoencoders: the reference shapes, the reconstruction task the app derives from the
builder, the latent probe, and a run that leaves probe/test_acc and its figures in MLflow."""

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from tests.conftest import requires_mnist
from tests.test_cli import toolkit
from toolkit.analysis.latent_probe import ProbeSettings, encode, encoder_of, fit_probe
from toolkit.app.config_store import register_configs
from toolkit.app.job import build_job
from toolkit.app.lifecycle import fit_and_evaluate
from toolkit.app.post_fit import FitResult, run_steps
from toolkit.models import ModelSpec, build_model
from toolkit.registry import ConfigError

CONF = Path(__file__).resolve().parents[1] / "toolkit" / "conf"
QUICK = [
    "dataset.subset=600",
    "trainer.epochs=2",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "probe.epochs=20",
    "probe.batch_size=32",
    "probe.hidden=[32]",
]


def job_for(*overrides: str):
    register_configs()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return build_job(compose("config", overrides=[*overrides, "logger=none"]))


def test_the_reference_autoencoder_is_784_128_32_128_784_with_a_32_d_encoder():
    model = build_model(ModelSpec("autoencoder", (1, 28, 28), 784))
    widths = [layer.units for _, layer in model.named_layers() if layer.kind == "dense"]
    assert widths == [128, 32, 128, 784]
    x = np.zeros((3, 1, 28, 28), np.float32)
    assert encode(encoder_of(model), x).shape == (3, 32)
    assert model.forward(x).shape == (3, 784)


def test_the_conv_autoencoder_mirrors_its_encoder():
    model = build_model(ModelSpec("conv_autoencoder", (1, 28, 28), 784, {"channels": [4, 8]}))
    shapes = [layer.output_shape for _, layer in model.named_layers()]
    assert shapes[model.encoder_layers - 1] == (32,)
    assert (8, 7, 7) in shapes and (4, 14, 14) in shapes and shapes[-2] == (1, 28, 28)


@pytest.mark.parametrize(
    "spec,message",
    [
        (
            ModelSpec("autoencoder", (1, 28, 28), 10),
            "reconstructs its input: it needs num_outputs = 784",
        ),
        (
            ModelSpec("conv_autoencoder", (1, 28, 28), 784, {"channels": [4, 8, 16]}),
            "must be divisible by 8; the data has 28x28",
        ),
    ],
)
def test_shapes_that_cannot_work_are_one_line_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_model(spec)


def clusters(n: int, classes: int, seed: int, shuffled_labels: bool = False):
    """(n, 8) codes around one centre per class, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = np.random.default_rng(99).normal(0.0, 3.0, (classes, 8))
    codes = centres[labels] + rng.normal(size=(n, 8))
    if shuffled_labels:
        labels = rng.permutation(labels)
    return codes.astype(np.float32), labels


@pytest.mark.parametrize("kind", ["logistic", "mlp", "svm"])
def test_probes_read_class_information_from_codes_and_only_that(kind):
    if kind == "svm":
        pytest.importorskip("sklearn")
    settings = ProbeSettings(kind=kind, hidden=[16], epochs=20, batch_size=32, lr=0.01)
    train, test = clusters(600, 3, seed=0), clusters(300, 3, seed=1)
    assert fit_probe(settings, *train, *test, num_classes=3)["probe/test_acc"] > 0.95
    noise, noise_test = clusters(600, 3, 0, shuffled_labels=True), clusters(300, 3, 1, True)
    assert fit_probe(settings, *noise, *noise_test, num_classes=3)["probe/test_acc"] < 0.5


def test_an_unknown_probe_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="probe.kind='knn' is not one of: none, logistic"):
        ProbeSettings(kind="knn")


@requires_mnist
def test_an_autoencoder_job_reconstructs_its_inputs_then_probes_its_codes(cache_dir):
    job = job_for("+model=autoencoder", *QUICK, "dataset.subset=2000", "trainer.epochs=5")
    assert job.task == "reconstruction" and job.config.loss.name == "mse"
    assert job.spec.num_outputs == 784
    train = job.splits.train
    assert np.array_equal(train.y, train.x.reshape(len(train.x), -1))
    metrics = fit_and_evaluate(job)
    steps = run_steps(FitResult(job, metrics))
    losses = job.trainer.history["train/loss"]
    assert losses[1] < losses[0]
    assert "test/acc" not in metrics and "train/acc" not in job.trainer.history
    assert 0.3 < steps.metrics["probe/test_acc"] <= 1.0  # 10 classes: chance is 0.1
    assert {"reconstructions.png", "latent_pca.png"} <= set(steps.figures)
    assert "confusion_matrix.png" not in steps.figures


@requires_mnist
def test_a_conv_autoencoder_job_runs_with_the_probe_turned_off(cache_dir):
    job = job_for("+model=conv_autoencoder", "model.channels=[4,8]", "probe.kind=none", *QUICK)
    assert job.probe is None
    metrics = fit_and_evaluate(job)
    metrics.update(run_steps(FitResult(job, metrics), figures=False).metrics)
    losses = job.trainer.history["train/loss"]
    assert losses[1] < losses[0] and "probe/test_acc" not in metrics


@requires_mnist
def test_the_command_logs_the_probe_accuracy_and_figures_to_mlflow(tmp_path, cache_dir):
    result = toolkit(
        "+model=autoencoder",
        *QUICK,
        "hydra.run.dir=out",
        "logger.tracking_uri=sqlite:///mlflow.db",
        "logger.log_model=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["toolkit"], output_format="list")
    assert run.data.metrics["probe/test_acc"] == pytest.approx(metrics["probe/test_acc"])
    # the params say what was trained: the reconstruction loss, not the composed default
    assert run.data.params["loss.name"] == "mse"
    assert run.data.params["choice/loss"] == "mse"
    assert run.data.params["choice/optim"] == "adam"
    figures_logged = {
        Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "figures")
    }
    assert {"reconstructions.png", "latent_pca.png", "learning_curves.png"} <= figures_logged
