"""Bad input fails before any training with one ``error:`` line naming the key and the fix,
and changes nothing already recorded (MLflow runs, output files).

Every case runs the command line in a folder that already holds a finished run."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_mnist

COMMON = [
    "trainer.progress=false",
    "trainer.epochs=1",
    "logger.log_model=false",
    "logger.tracking_uri=sqlite:///mlflow.db",
]
QUICK = [*COMMON, "dataset.subset=1000"]  # MNIST runs


def toolkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its content."""
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, cache_dir) -> Path:
    """A folder with one finished run (MLflow store + outputs) and some checkpoints."""
    folder = tmp_path_factory.mktemp("recorded")
    done = toolkit(
        "+model=mlp",
        "dataset=spirals",
        "model.activation=relu",
        "model.hidden_sizes=[8]",
        "hydra.run.dir=outputs/done",
        *COMMON,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    checkpoint = folder / "outputs" / "done" / "checkpoint_last.npz"
    (folder / "truncated.npz").write_bytes(checkpoint.read_bytes()[:200])
    np.savez(folder / "pickled.npz", meta=np.array("{}"), x=np.array([{"a": 1}], dtype=object))
    return folder


def spirals(*overrides: str) -> list[str]:
    return ["+model=mlp", "dataset=spirals", "model.activation=relu", *COMMON, *overrides]


CASES = {
    "unknown option": (
        ["+model=mlp", "optim=adma"],
        "unknown optim 'adma' (optim=adma); did you mean: adam",
    ),
    "unknown model": (["+model=mpl"], "unknown model 'mpl' (model=mpl); did you mean: mlp"),
    "unknown activation": (
        spirals("model.activation=swihs"),
        "unknown activation 'swihs' (activation=swihs); did you mean: swish",
    ),
    "unknown key": (
        spirals("optim.lrr=0.1"),
        "optim.lrr is not a config key; did you mean: optim.lr?",
    ),
    "wrong type": (
        spirals("optim.lr=abc"),
        "optim.lr=abc; Value 'abc' of type 'str' could not be converted to Float",
    ),
    "wrong trainer type": (
        spirals("trainer.epochs=ten"),
        "trainer.epochs=ten; Value 'ten' of type 'str' could not be converted to Integer",
    ),
    "wrong logger type": (
        spirals("logger.log_model=maybe"),
        "logger.log_model=maybe; Value 'maybe' is not a valid bool",
    ),
    "sweep over an unknown key": (
        ["-m", *spirals("optim.lrr=0.1,0.01")],
        "optim.lrr is not a config key; did you mean: optim.lr?",
    ),
    "sweep value of the wrong type": (
        ["-m", *spirals("optim.lr=0.1,abc")],
        "optim.lr=abc: Value 'abc' of type 'str' could not be converted to Float",
    ),
    "unknown launcher": (
        ["-m", *spirals("optim.lr=0.1,0.01", "hydra/launcher=joblb")],
        "unknown hydra/launcher 'joblb' (hydra/launcher=joblb); did you mean: joblib",
    ),
    "negative lr": (spirals("optim.lr=-1"), "optim.lr must be a positive number; got -1"),
    "zero batch size": (
        spirals("trainer.batch_size=0"),
        "trainer.batch_size must be a positive integer; got 0",
    ),
    "fractional epochs": (
        spirals("trainer.epochs=1.5"),
        "trainer.epochs=1.5; Value '1.5' of type 'float' could not be converted to Integer",
    ),
    "dropout 1": (spirals("model.dropout=1.0"), "dropout rate must be in [0, 1); got 1.0"),
    "zero hidden size": (
        spirals("model.hidden_sizes=[8,0]"),
        "model.hidden_sizes must be positive integers",
    ),
    "activation count": (
        spirals("model.hidden_sizes=[8,8,8]", "model.activation=[relu,tanh]"),
        "model.activation has 2 entries but model.hidden_sizes has 3",
    ),
    "split sum": (spirals("split.val=0.3"), "split.train + split.val + split.test = 1.2"),
    "dtype": (spirals("dtype=float16"), "dtype must be one of float32, float64"),
    "loss for task": (
        ["+model=mlp", "dataset=sin", *COMMON],
        "loss=cross_entropy needs class labels but dataset=sin is regression; use loss=mse",
    ),
    "augment non-images": (
        spirals("augment=light"),
        "augment steps need images (C, H, W) but dataset=spirals",
    ),
    "warmup inner schedule": (
        spirals("schedule=warmup", "schedule.after=cosin"),
        "unknown schedule 'cosin' (schedule.after=cosin); did you mean: cosine",
    ),
    "kernel larger than input": (
        ["+model=cnn_single", "model.kernel_size=31", *QUICK],
        "the 31x31 kernel is larger than the padded input (28+2*0)",
    ),
    "missing dataset folder": (
        ["+model=mlp", "dataset.root=/nonexistent", *QUICK],
        "MNIST not found in /nonexistent/MNIST/raw",
    ),
    "unwritable output folder": (
        spirals("hydra.run.dir=/proc/nope/out"),
        "output folder /proc/nope/out cannot be created",
    ),
    "unwritable tracking folder": (
        spirals("logger.tracking_uri=sqlite:////proc/nope/mlflow.db"),
        "MLflow store sqlite:////proc/nope/mlflow.db: folder /proc/nope is missing or not writable",
    ),
    "unreachable tracking server": (
        spirals("logger.tracking_uri=http://127.0.0.1:9"),
        "MLflow tracking server http://127.0.0.1:9 is unreachable",
    ),
    "resume with nothing to resume": (
        spirals("model.hidden_sizes=[4]", "trainer.resume=true"),
        "trainer.resume=true: no checkpoint of this configuration",
    ),
    "checkpoint of another architecture": (
        spirals("model.hidden_sizes=[16]", "trainer.resume=outputs/done"),
        "does not fit the model: param/0.dense/W is (2, 8) in the checkpoint",
    ),
    "truncated checkpoint": (
        spirals("trainer.resume=truncated.npz"),
        "checkpoint truncated.npz is corrupt or truncated",
    ),
    "pickled checkpoint": (
        spirals("trainer.resume=pickled.npz"),
        "checkpoint pickled.npz holds pickled objects, refused",
    ),
}


@pytest.mark.parametrize("args,expected", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_and_records_nothing(recorded, args, expected):
    before = snapshot(recorded)
    result = toolkit(*args, cwd=recorded)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    after = snapshot(recorded)
    # nothing recorded changed (other cases' Hydra folders from the same second may have)
    kept = {k: v for k, v in before.items() if not k.startswith("outputs/") or "/done/" in k}
    assert {k: v for k, v in after.items() if k in kept} == kept
    assert not [k for k in after if k not in before and not k.startswith("outputs/")]


@requires_mnist
def test_corrupted_dataset_file_is_named_with_its_md5(tmp_path, cache_dir):
    source = Path(os.environ["TOOLKIT_DATA_DIR"]) / "MNIST"
    copy = tmp_path / "data" / "MNIST"
    shutil.copytree(source, copy)
    labels = copy / "raw" / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[-1] ^= 0xFF
    labels.chmod(0o644)
    labels.write_bytes(bytes(data))
    result = toolkit("+model=mlp", f"dataset.root={tmp_path / 'data'}", *QUICK, cwd=tmp_path)
    assert result.returncode == 2
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"dataset file {labels} is corrupted: md5" in error
    assert "expected 27ae3e4e09519cfbb04c329615203637" in error
