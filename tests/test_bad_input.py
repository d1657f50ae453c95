"""Bad input fails before any training with one ``error:`` line naming the key and the fix,
and changes nothing already recorded (MLflow runs, output files).

Every case runs the command line in a folder that already holds a finished run."""

import hashlib
import os
import re
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


def toolkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
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
        "unknown activation 'swihs' (model.activation=swihs); did you mean: swish",
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
        "trainer.batch_size must be an integer >= 1; got 0",
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
    "dtype": (spirals("dtype=float16"), "dtype must be one of: float32, float64"),
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
        "trained with another config (model.hidden_sizes: 8 -> 16)",
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


# --- Rejected by the pre-check: before Hydra creates any folder or run -------------------

USER_CONFIGS = {  # a user's own config folder (--config-dir / hydra.searchpath)
    "experiment/tabbed.yaml": "# @package _global_\ntrainer:\n\tepochs: 1\n",
    "experiment/mine.yaml": (
        "# @package _global_\ndefaults:\n  - override /optim: sgd\n\n"
        "hydra:\n  sweeper:\n    params:\n      optim.lr: 0.1,0.05\n"
    ),
    "experiment/zero_epochs.yaml": (
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      trainer.epochs: 1,0\n"
    ),
}
BROKEN_PLUGINS = {  # plugin folders (TOOLKIT_PLUGINS) with one broken file each
    "syntax": ("bad_syntax.py", "from toolkit.registry import activations\n\nclass X(:\n"),
    "import": ("bad_import.py", "import numpy\nimport not_a_module_xyz\n"),
    "clash": (
        "clash.py",
        "from toolkit.registry import optimizers\n\n"
        "@optimizers.register('adam')\nclass Other:\n    pass\n",
    ),
}


@pytest.fixture(scope="module")
def user_folders(tmp_path_factory) -> dict[str, Path]:
    """{"conf": a user's config folder, "syntax"/"import"/"clash": broken plugin folders}."""
    root = tmp_path_factory.mktemp("user")
    for relative, text in USER_CONFIGS.items():
        (root / "conf" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "conf" / relative).write_text(text)
    folders = {"conf": root / "conf"}
    for name, (file_name, text) in BROKEN_PLUGINS.items():
        (root / name).mkdir()
        (root / name / file_name).write_text(text)
        folders[name] = root / name
    return folders


def joblib_sweep(*overrides: str) -> list[str]:
    return ["-m", *spirals("optim.lr=0.1,0.01", "hydra/launcher=joblib", *overrides)]


# name -> (arguments, expected part of the error line); "{conf}" is the user's config folder,
# "{syntax}" etc. a broken plugin folder (then in TOOLKIT_PLUGINS)
PRECHECK_CASES = {
    "mapping with a key its typed node lacks": (
        spirals("logger.reference={{source:x,values:{{a:0.5}}}}"),
        "logger.reference.values.a is not a config key",
    ),
    # OmegaConf fails inside its merge (an AttributeError) for a mapping into a typed null
    "mapping into a typed null node": (
        spirals("logger.reference.values={{relu:0.9}}"),
        "the command-line overrides could not be applied: AttributeError",
    ),
    "seed not an integer": (spirals("seed=abc"), "seed must be an integer >= 0; got 'abc'"),
    "negative seed": (spirals("seed=-1"), "seed must be an integer >= 0; got -1"),
    "multirun with --cfg": (
        ["-m", *spirals("--cfg", "hydra")],
        "-m and --cfg cannot be combined: Hydra does one of --multirun, --cfg",
    ),
    "joblib n_jobs 0": (
        joblib_sweep("hydra.launcher.n_jobs=0"),
        "hydra.launcher.n_jobs must be a non-zero integer (-1: all cores); got 0 "
        "(hydra/launcher=joblib)",
    ),
    "joblib n_jobs not an integer": (
        joblib_sweep("hydra.launcher.n_jobs=two"),
        "hydra.launcher.n_jobs=two; Value 'two' of type 'str' could not be converted",
    ),
    "joblib backend": (
        joblib_sweep("hydra.launcher.backend=lokky"),
        "hydra.launcher.backend must be null or one of: loky, multiprocessing, threading",
    ),
    "n_jobs of the basic launcher": (
        ["-m", *spirals("optim.lr=0.1,0.01", "hydra.launcher.n_jobs=2")],
        "hydra.launcher.n_jobs is not a config key of hydra/launcher=basic",
    ),
    "submitit timeout 0": (
        ["-m", *spirals("optim.lr=0.1,0.01", "hydra/launcher=submitit_local")]
        + ["hydra.launcher.timeout_min=0"],
        "hydra.launcher.timeout_min must be an integer >= 1; got 0",
    ),
    "optuna without trials": (
        ["-m", "+hparams_search=mlp_optuna", "hydra.sweeper.n_trials=0", *COMMON],
        "hydra.sweeper.n_trials must be an integer >= 1; got 0",
    ),
    "tab-indented experiment (--config-dir)": (
        ["--config-dir", "{conf}", "+experiment=tabbed", *spirals()],
        "experiment/tabbed.yaml, line 3, column 1: found character '\\t' that cannot start "
        "any token (YAML indents with spaces, not tabs)",
    ),
    "tab-indented experiment (hydra.searchpath)": (
        ["+experiment=tabbed", "hydra.searchpath=[file://{conf}]", *spirals()],
        "experiment/tabbed.yaml, line 3, column 1",
    ),
    "swept value of a user preset out of range": (
        ["--config-dir", "{conf}", "-m", "+experiment=zero_epochs", *spirals()],
        "trainer.epochs must be an integer >= 1; got 0",
    ),
    "unknown user experiment": (
        ["--config-dir", "{conf}", "+experiment=mien", *spirals()],
        "unknown experiment 'mien' (experiment=mien); did you mean: mine",
    ),
    "misspelled key two levels deep": (
        spirals("trainer.early_stoping.enabled=true"),
        "trainer.early_stoping is not a config key; did you mean: trainer.early_stopping?",
    ),
    "misspelled augmentation step": (
        spirals("augment=light", "augment.steps.shfit.max_pixels=3"),
        "augment.steps.shfit is not a config key; did you mean: augment.steps.shift?",
    ),
    "probe lr": (spirals("probe.lr=-1"), "probe.lr must be > 0; got -1"),
    "probe epochs": (spirals("probe.epochs=0"), "probe.epochs must be an integer >= 1; got 0"),
    "probe kind": (spirals("probe.kind=svn"), "probe.kind='svn' is not one of: none, logistic"),
    "probe hidden size": (spirals("probe.hidden=[64,0]"), "probe.hidden must be integers >= 1"),
    "probe type": (
        spirals("probe.epochs=many"),
        "probe.epochs=many; Value 'many' of type 'str' could not be converted to Integer",
    ),
    "split type": (
        spirals("split.val=half"),
        "split.val=half; Value 'half' of type 'str' could not be converted to Float",
    ),
    "empty train split": (
        spirals("split.train=0", "split.val=1"),
        "split.train must be in (0, 1]; got 0.0",
    ),
    "augment probability": (spirals("augment.p=1.5"), "augment.p must be in [0, 1]; got 1.5"),
    "augment type": (
        spirals("augment.p=often"),
        "augment.p=often; Value 'often' of type 'str' could not be converted to Float",
    ),
    "early stopping on a metric never logged": (
        spirals("trainer.early_stopping.enabled=true", "trainer.early_stopping.monitor=val/los"),
        "trainer.early_stopping.monitor='val/los' is not a metric the trainer logs each epoch; "
        "did you mean: val/loss",
    ),
    "early stopping on val without a validation split": (
        spirals("trainer.early_stopping.enabled=true", "split=70-30"),
        "trainer.early_stopping.monitor=val/loss needs a validation split but split.val=0",
    ),
    "early stopping mode": (
        spirals("trainer.early_stopping.mode=maximum"),
        "trainer.early_stopping.mode must be one of: auto, min, max; got 'maximum'",
    ),
    "early stopping patience": (
        spirals("trainer.early_stopping.patience=0"),
        "trainer.early_stopping.patience must be an integer >= 1; got 0",
    ),
    "zero threads": (spirals("trainer.threads=0"), "trainer.threads must be null or an integer"),
    "sweep value out of range": (
        ["-m", *spirals("probe.lr=0.1,-1")],
        "probe.lr must be > 0; got -1",
    ),
    "plugin with a syntax error": (
        spirals(),
        "plugin {syntax}/bad_syntax.py, line 3: SyntaxError: invalid syntax",
    ),
    "plugin with a missing import": (
        spirals(),
        "plugin {import}/bad_import.py, line 2: ModuleNotFoundError: No module named "
        "'not_a_module_xyz'",
    ),
    "plugin taking a registered name": (
        spirals(),
        "plugin {clash}/clash.py, line 3: ConfigError: optimizer 'adam' is already registered",
    ),
}


def plugin_folder(name: str, user_folders: dict[str, Path]) -> dict[str, str]:
    """TOOLKIT_PLUGINS for a plugin case (named after its folder), else {}."""
    named = re.findall(r"\{(\w+)\}", PRECHECK_CASES[name][1])
    folders = [str(user_folders[n]) for n in named if n in BROKEN_PLUGINS]
    return {"TOOLKIT_PLUGINS": folders[0]} if folders else {}


def paths(folder: Path) -> set[str]:
    """Every file and folder under ``folder``."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("name", list(PRECHECK_CASES))
def test_precheck_rejects_with_one_line_and_creates_nothing(recorded, user_folders, name):
    args, expected = PRECHECK_CASES[name]
    places = {key: str(folder) for key, folder in user_folders.items()}
    args = [a.format(**places) for a in args]
    before, existing = snapshot(recorded), paths(recorded)
    result = toolkit(*args, cwd=recorded, env=plugin_folder(name, user_folders))
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected.format(**places) in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert snapshot(recorded) == before  # no file changed: the store, the outputs
    assert paths(recorded) == existing  # and nothing was created, not even a folder


def test_help_lists_broken_plugins_and_still_works(recorded, user_folders):
    env = {"TOOLKIT_PLUGINS": os.pathsep.join(str(user_folders[k]) for k in BROKEN_PLUGINS)}
    result = toolkit("--help", cwd=recorded, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    section = result.stdout.split("== Plugins that failed to load (not registered) ==")[1]
    for name, (file_name, _) in BROKEN_PLUGINS.items():
        assert f"plugin {user_folders[name] / file_name}, line " in section
    assert "optim: adam, adamw, lion" in result.stdout  # the rest loaded


def test_user_config_folder_experiments_run(recorded, tmp_path, user_folders):
    """--config-dir DIR -m +experiment=mine: found by the pre-check as by Hydra."""
    result = toolkit(
        "--config-dir",
        str(user_folders["conf"]),
        "-m",
        "+experiment=mine",
        *spirals("model.hidden_sizes=[4]", f"hydra.sweep.dir={tmp_path}/sweep"),
        "logger=none",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sweep: 2 of 2 jobs finished" in result.stderr


def test_a_second_checkouts_plugins_are_the_same_plugins(tmp_path):
    """Running from another checkout: ./plugins holds copies of the project's plugins."""
    shutil.copytree(Path(__file__).resolve().parents[1] / "plugins", tmp_path / "plugins")
    result = toolkit(*spirals("optim=lion", "logger=none", "model.hidden_sizes=[4]"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already registered" not in result.stderr
