"""The built wheel, installed into a fresh virtual environment, works from any folder: the
configs ship inside the package (``toolkit/conf``), Hydra finds the toolkit's sweeper in
``hydra_plugins``, ``python -m toolkit --help`` lists the groups and recipes, a short
training run ends with a run folder and ``mlflow.db`` in the working folder, and plugins in
that folder's ``plugins/`` and in ``$TOOLKIT_PLUGINS`` are loaded. Nothing is looked up in
the source tree.

The environment gets the locked versions (``uv export --format pylock.toml``) from uv's
cache (offline when the cache holds them all; a cold cache downloads them), then the wheel
itself, resolved against them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv")

pytestmark = pytest.mark.skipif(UV is None, reason="uv not found on PATH")

PROBE = """
import importlib.util, json, toolkit
from toolkit.app.config_store import CONF_DIR
from toolkit.registry import plugin_folders
print(json.dumps({
    "toolkit": toolkit.__file__,
    "conf": str(CONF_DIR),
    "config_yaml": (CONF_DIR / "config.yaml").is_file(),
    "sweeper": importlib.util.find_spec("hydra_plugins.toolkit_optuna_sweeper").origin,
    "plugin_folders": [str(p) for p in plugin_folders()],
}))
"""


def uv(*args: str, cwd: Path) -> None:
    """Run ``uv args`` offline (the locked dependencies are in uv's cache), online when
    the cache lacks something."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_COMPILE_BYTECODE")}
    command = [str(UV), *args]
    result = subprocess.run([*command, "--offline"], cwd=cwd, env=env, capture_output=True)
    if result.returncode != 0:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    uv("build", str(ROOT), "--wheel", "--out-dir", str(dist), "--quiet", cwd=dist)
    (path,) = dist.glob("toolkit-*.whl")
    return path


@pytest.fixture(scope="module")
def python(wheel, tmp_path_factory) -> Iterator[Path]:
    """The interpreter of a fresh virtual environment holding the locked dependencies and
    the wheel (nothing of the source tree)."""
    folder = tmp_path_factory.mktemp("venv")
    lock = folder / "pylock.toml"
    uv("export", "--project", str(ROOT), "--frozen", "--no-dev", "--no-emit-project",
       "--format", "pylock.toml", "--output-file", str(lock), "--quiet", cwd=folder)  # fmt: skip
    venv = folder / "venv"
    uv("venv", str(venv), "--python", sys.executable, "--quiet", cwd=folder)
    interpreter = venv / "bin" / "python"
    uv("pip", "install", "--python", str(interpreter), "-r", str(lock), "--quiet", cwd=folder)
    uv("pip", "install", "--python", str(interpreter), str(wheel), "--quiet", cwd=folder)
    # a folder named plugins beside the installed package (another distribution's) is not
    # the toolkit's: were it searched, this broken file would show in --help
    (site_packages,) = venv.glob("lib/python*/site-packages")
    (site_packages / "plugins").mkdir()
    (site_packages / "plugins" / "stray.py").write_text("raise RuntimeError('not a plugin')\n")
    yield interpreter
    shutil.rmtree(venv)  # gigabytes of links into uv's cache: gone now, not in a later session


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """An empty folder outside the repository, with the example activation in its
    ``plugins/`` (the example optimizer comes through ``$TOOLKIT_PLUGINS``)."""
    folder = tmp_path_factory.mktemp("work")
    assert not folder.resolve().is_relative_to(ROOT)
    (folder / "plugins").mkdir()
    shutil.copy(ROOT / "plugins" / "swish.py", folder / "plugins")
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The user's environment: no source tree on the path, no leaked tracking URI;
    ``$TOOLKIT_PLUGINS`` names a folder holding the example optimizer."""
    elsewhere = tmp_path_factory.mktemp("more-plugins")
    shutil.copy(ROOT / "plugins" / "lion.py", elsewhere)
    dropped = ("PYTHONPATH", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "PYTHONDONTWRITEBYTECODE")
    environment = {k: v for k, v in os.environ.items() if k not in dropped}
    environment["TOOLKIT_PLUGINS"] = str(elsewhere)
    environment["TOOLKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    return environment


def test_the_wheel_ships_the_configs_and_the_hydra_plugin(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    configs = {n for n in names if n.startswith("toolkit/conf/") and n.endswith(".yaml")}
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "toolkit" / "conf").rglob("*.yaml")}
    assert configs == shipped and "toolkit/conf/config.yaml" in configs
    assert "hydra_plugins/toolkit_optuna_sweeper/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "plugins/", "docs/"))]


def test_the_installed_package_finds_everything_in_itself(python, workdir, env):
    result = subprocess.run(
        [str(python), "-c", PROBE], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    site = python.parents[1]
    for key in ("toolkit", "conf", "sweeper"):
        assert Path(found[key]).resolve().is_relative_to(site.resolve()), (key, found[key])
    assert found["config_yaml"]
    # ./plugins and $TOOLKIT_PLUGINS; no folder beside the installed package
    assert found["plugin_folders"] == [
        str((workdir / "plugins").resolve()),
        str(Path(env["TOOLKIT_PLUGINS"]).resolve()),
    ]


def installed_toolkit(python: Path, workdir: Path, env: dict, *args: str):
    """``python -m toolkit ARGS`` of the installed wheel, run in ``workdir``."""
    return subprocess.run(
        [str(python), "-m", "toolkit", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_groups_recipes_and_the_plugins(python, workdir, env):
    result = installed_toolkit(python, workdir, env, "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    for text in (
        "== Configuration groups",
        "experiment: activation_pairs,",
        "hparams_search: mlp_optuna",
        "model: autoencoder, cnn,",
        "optim: adam, adamw, lion, rmsprop,",  # lion from $TOOLKIT_PLUGINS
        "== Model recipes",
        "mlp:",
        "swish",  # from ./plugins
    ):
        assert text in result.stdout, text
    assert "failed to load" not in result.stdout + result.stderr


def test_a_training_run_from_an_empty_folder(python, workdir, env):
    result = installed_toolkit(
        python,
        workdir,
        env,
        "+model=mlp",
        "dataset=spirals",
        "model.hidden_sizes=[16]",
        "model.activation=swish",
        "optim=lion",
        "optim.lr=3e-4",
        "trainer.epochs=2",
        "trainer.progress=false",
        "logger.log_model=false",
        "post_fit.figures=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = workdir.glob("outputs/*/*/metrics.json")
    assert "test/acc" in json.loads(metrics.read_text())
    assert (metrics.parent / "config_resolved.yaml").is_file()
    with sqlite3.connect(workdir / "mlflow.db") as db:
        assert db.execute("select status from runs").fetchall() == [("FINISHED",)]
