"""Plugin discovery: entry points and plugin folders, loaded once, failures named.

A plugin is a module that registers components (``@activations.register("swish")``). It
comes from the ``toolkit.plugins`` entry-point group of an installed package, or is a
``*.py`` file in a plugin folder (``./plugins``, ``$TOOLKIT_PLUGINS``, folders given by the
caller and, when the package runs from a source checkout, the checkout's ``plugins/``). A
broken plugin never takes the command line down with a traceback: it is rolled back and
named with its file, line and error, and ``python -m toolkit --help`` still works and
lists it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

# toolkit.registry is imported inside the functions that use it: it re-exports this
# module's names, so either module can be imported first without an import cycle.

ENTRY_POINT_GROUP = "toolkit.plugins"
PLUGINS_ENV_VAR = "TOOLKIT_PLUGINS"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded: its file (or entry point), the line, the error."""

    source: str
    line: int | None
    error: str

    def __str__(self) -> str:
        where = f"{self.source}, line {self.line}" if self.line else self.source
        return f"plugin {where}: {self.error}"


PLUGIN_FAILURES: list[PluginFailure] = []  # every plugin this process failed to load
_attempted: set[str] = set()  # entry points and files tried, loaded or not
_loaded_digests: dict[str, Path] = {}  # sha256 of a loaded plugin file -> its path


def checkout_plugins() -> Path | None:
    """The source checkout's ``plugins/`` when the package runs from one (``uv sync``'s
    editable install: a ``pyproject.toml`` beside the ``toolkit`` package), else None. An
    installed wheel lives in ``site-packages``, where nothing beside the package is ours."""
    project = Path(__file__).resolve().parents[1]
    return project / "plugins" if (project / "pyproject.toml").is_file() else None


def plugin_folders(extra: list[str | os.PathLike] | None = None) -> list[Path]:
    """Folders searched for plugin modules: the checkout's ``plugins/`` (when running from
    a source checkout, see :func:`checkout_plugins`), ``./plugins``, ``$TOOLKIT_PLUGINS``
    (``os.pathsep``-separated) and ``extra``; only those that exist."""
    checkout = checkout_plugins()
    candidates: list[Path] = [checkout] if checkout is not None else []
    candidates.append(Path.cwd() / "plugins")
    candidates += [Path(p) for p in os.environ.get(PLUGINS_ENV_VAR, "").split(os.pathsep) if p]
    candidates += [Path(p) for p in extra or []]
    seen: list[Path] = []
    for folder in candidates:
        folder = folder.resolve()
        if folder.is_dir() and folder not in seen:
            seen.append(folder)
    return seen


def load_plugins(
    extra_folders: list[str | os.PathLike] | None = None, *, strict: bool = True
) -> list[str]:
    """Load the built-ins, then plugins: the ``toolkit.plugins`` entry points and every
    ``*.py`` file (not starting with ``_``) in the plugin folders.

    Idempotent: each file is imported once per process, and a file with the same content
    as one already loaded (another checkout's copy of the same plugin) is skipped. A
    plugin that fails (a syntax error, a missing import, a clashing name) is rolled back
    (nothing it registered stays) and recorded in :data:`PLUGIN_FAILURES`; with
    ``strict`` the first failure is then raised as a one-line ConfigError naming the file,
    the line and the error (``--help`` loads with ``strict=False`` and lists them).
    Returns the names of what was loaded.
    """
    from toolkit.registry import ConfigError, load_builtins

    load_builtins()
    loaded: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in _attempted or ep.value.split(":")[0] in sys.modules:
            continue
        _attempted.add(ep.value)
        if _guarded(
            f"entry point {ep.name} ({ep.value})", None, lambda ep=ep: _load_entry_point(ep)
        ):
            loaded.append(f"entry point {ep.name}")
    for folder in plugin_folders(extra_folders):
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or str(path) in _attempted:
                continue
            _attempted.add(str(path))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in _loaded_digests:  # the same plugin again (e.g. a second checkout)
                continue
            if _guarded(str(path), path, lambda path=path: _import_file(path)):
                _loaded_digests[digest] = path
                loaded.append(str(path))
    if strict and PLUGIN_FAILURES:
        raise ConfigError(
            f"{PLUGIN_FAILURES[0]}; fix the plugin or move it out of its folder "
            "(python -m toolkit --help lists what failed to load)"
        )
    return loaded


def _load_entry_point(ep: Any) -> None:
    obj = ep.load()
    if callable(obj) and ":" in ep.value:
        obj()


def _guarded(source: str, path: Path | None, load: Callable[[], None]) -> bool:
    """Run ``load``; on any error undo its registrations, record a PluginFailure naming
    ``source`` and the line (in ``path`` if given, else the innermost frame) and return
    False."""
    from toolkit.registry import REGISTRIES

    saved = {kind: dict(registry._entries) for kind, registry in REGISTRIES.items()}
    try:
        load()
    except Exception as err:
        for kind, registry in REGISTRIES.items():
            registry._entries = saved[kind]
        line = _error_line(err, path)
        if path is None and line is not None:
            source = f"{source} in {line[0]}"
        PLUGIN_FAILURES.append(PluginFailure(source, line and line[1], _error_text(err)))
        return False
    return True


def _error_line(err: BaseException, path: Path | None) -> tuple[str, int] | None:
    """(file, line) where ``err`` arose: in ``path`` when given, else the innermost frame."""
    if isinstance(err, SyntaxError) and err.lineno and err.filename:
        return err.filename, err.lineno
    frames = traceback.extract_tb(err.__traceback__)
    if path is not None:
        frames = [f for f in frames if Path(f.filename) == path]
    return (frames[-1].filename, frames[-1].lineno or 0) if frames else None


def _error_text(err: BaseException) -> str:
    """``SyntaxError: invalid syntax``: the error's type and first line."""
    message = err.msg if isinstance(err, SyntaxError) else str(err)
    first = message.strip().splitlines()[0] if message.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _import_file(path: Path) -> None:
    module_name = f"toolkit_plugin_{path.stem}"
    if module_name in sys.modules:  # a different file of the same name in another folder
        module_name += "_" + hashlib.sha256(str(path).encode()).hexdigest()[:8]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        from toolkit.registry import ConfigError

        raise ConfigError(f"cannot import plugin file {path}; is it a Python module?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
