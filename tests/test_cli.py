"""The command line, run as a user runs it: python -m toolkit ... in a fresh folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_mnist

QUICK = ["trainer.progress=false", "dataset.subset=1000", "trainer.epochs=2"]


def toolkit(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_model_lists_the_models_without_a_traceback(tmp_path):
    result = toolkit(cwd=tmp_path)
    assert result.returncode == 2
    assert "+model=NAME" in result.stderr and "mlp" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_groups_options_and_registered_components(tmp_path):
    result = toolkit("--help", cwd=tmp_path)
    assert result.returncode == 0
    for text in (
        "optim: adam, adamw, lion, rmsprop, sgd",
        "schedule:",
        "swish",
        "dataset:",
        "model:",
        "initializer:",
    ):
        assert text in result.stdout, text


def test_help_reuses_one_repository_copy_and_prints_what_hydra_prints(tmp_path):
    """--help with the shared repository copy (toolkit.app.help_speed) prints the same
    text as Hydra's own, which deep-copies the config repository for each of its queries."""
    count_copies = (
        "import sys, hydra._internal.config_loader_impl as loader;"
        "made = loader.ConfigLoaderImpl._parse_overrides_and_create_caching_repo;"
        "copies = [];"
        "loader.ConfigLoaderImpl._parse_overrides_and_create_caching_repo = "
        "lambda *a: copies.append(1) or made(*a);"
        "import toolkit.app.help_speed as speed;"
        "speed.share_repository_copies_for_help = speed.share_repository_copies_for_help "
        "if sys.argv[1] == 'shared' else (lambda: None);"
        "import atexit; atexit.register(lambda: print('copies', len(copies), file=sys.stderr));"
        "sys.argv = ['toolkit', '--help', '+model=cnn', 'optim=sgd'];"
        "from toolkit.app.cli import main; main()"
    )
    runs = {
        mode: subprocess.run(
            [sys.executable, "-c", count_copies, mode],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for mode in ("shared", "hydra")
    }
    assert [r.returncode for r in runs.values()] == [0, 0], runs["shared"].stderr
    assert runs["shared"].stdout == runs["hydra"].stdout
    assert "optim: adam, adamw" in runs["shared"].stdout
    copies = {m: int(r.stderr.split("copies ")[-1]) for m, r in runs.items()}
    assert copies["shared"] <= 3 < 50 < copies["hydra"], copies


def test_cli_startup_imports_no_heavy_library():
    code = (
        "import sys; from toolkit.app.cli import main; from toolkit.registry import load_plugins;"
        "from toolkit.app.config_store import register_configs; load_plugins(); register_configs();"
        "print(sorted(m for m in ('mlflow', 'torch', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@requires_mnist
def test_a_run_leaves_a_complete_mlflow_run(tmp_path, cache_dir):
    result = toolkit(
        "+model=mlp",
        "optim=adam",
        *QUICK,
        "hydra.run.dir=out",
        "logger.tracking_uri=sqlite:///mlflow.db",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 0.5 < metrics["test/acc"] <= 1.0

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    (run,) = mlflow.search_runs(experiment_names=["toolkit"], output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001"
    assert run.data.params["choice/optim"] == "adam"
    assert run.data.params["model.hidden_sizes"] == "128,64"  # lists read as people write them
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "grad_norm/1.dense"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 2, key
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"figures", "config_resolved.yaml", "metrics.json"} <= artifacts
    assert "checkpoint" not in artifacts  # the final weights are stored once, in the model
    assert run.data.tags["toolkit.final_checkpoint"] == "model/artifacts/checkpoint.npz"
    figures = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures")}
    assert {
        "learning_curves.png",
        "confusion_matrix.png",
        "lr_schedule.png",
        "grad_norms.png",
    } <= figures

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    from toolkit.data import load_dataset

    raw = np.fromfile(
        Path(os.environ["TOOLKIT_DATA_DIR"]) / "MNIST/raw/t10k-images-idx3-ubyte",
        dtype=np.uint8,
        offset=16,
    ).reshape(-1, 28, 28)[:20]
    probabilities = np.asarray(model.predict(raw))
    assert probabilities.shape == (20, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    labels = load_dataset("mnist").y_test[:20]
    assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.5


def test_diverging_run_is_marked_failed_and_exits_nonzero(tmp_path):
    result = toolkit(
        "+model=mlp",
        "dataset=spirals",
        "model.activation=relu",
        "optim=sgd",
        "optim.lr=1e30",
        "trainer.progress=false",
        "logger.tracking_uri=sqlite:///runs.db",
        "logger.log_model=false",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "training diverged" in result.stderr and "Traceback" not in result.stderr

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'runs.db'}")
    (run,) = mlflow.search_runs(experiment_names=["toolkit"], output_format="list")
    assert run.info.status == "FAILED"
    assert "training diverged" in run.data.tags["failure_reason"]


def test_plugins_work_from_the_command_line_without_yaml(tmp_path):
    result = toolkit(
        "+model=mlp",
        "dataset=spirals",
        "model.activation=swish",
        "optim=lion",
        "trainer.epochs=2",
        "trainer.progress=false",
        "logger=none",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done: test/loss=" in result.stderr


@requires_mnist
def test_cnn_run_writes_conv_figures_and_receptive_fields(tmp_path, cache_dir):
    result = toolkit(
        "+model=cnn",
        "dataset.subset=600",
        "trainer.epochs=1",
        "logger=none",
        "trainer.progress=false",
        "hydra.run.dir=out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = {p.name for p in (tmp_path / "out" / "figures").iterdir()}
    assert {
        "filters.png",
        "feature_maps_0.png",
        "misclassified.png",
        "confusion_matrix.png",
    } <= figures
    table = (tmp_path / "out" / "receptive_field.md").read_text()
    assert "| 7.maxpool2d | (32, 7, 7) | 10x10 | 4 |" in table  # the cnn recipe: batch norm, 16/32
