"""Named registries: one per kind of component (layer, activation, optimizer, ...).

A component registers with a decorator::

    from toolkit.registry import activations

    @activations.register("swish")
    class Swish(Activation): ...

and is found again by name, with a helpful error for typos::

    activations.get("swihs")   # ConfigError: unknown activation 'swihs'; did you mean: swish?

The registry keeps each component's signature so the app can turn every entry into a Hydra
config-group option (see ``toolkit.app.config_store``); this module itself imports nothing
beyond the standard library so that ``toolkit.nn`` and ``toolkit.optim`` stay pure NumPy.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Callable[..., Any])

ENTRY_POINT_GROUP = "toolkit.plugins"
PLUGINS_ENV_VAR = "TOOLKIT_PLUGINS"


class ConfigError(ValueError):
    """Bad user input (a name, a value, a shape). Its message is one line that names the fix."""


def close_matches(name: str, choices: list[str], n: int = 3) -> list[str]:
    """Names in ``choices`` that look like ``name`` (difflib), best first."""
    return difflib.get_close_matches(name, choices, n=n, cutoff=0.5)


def unknown_name_message(kind: str, name: str, choices: list[str], key: str | None = None) -> str:
    """One line: ``unknown optimizer 'adma' (optim=adma); did you mean: adam? ...``."""
    where = f" ({key}={name})" if key else ""
    hint = close_matches(name, choices)
    suggestion = f"; did you mean: {', '.join(hint)}?" if hint else ";"
    return f"unknown {kind} '{name}'{where}{suggestion} choose one of: {', '.join(sorted(choices))}"


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one kind of component.

    Args:
        kind: what the entries are, singular (``"optimizer"``); used in messages.
        group: the Hydra config group the entries become options of (``"optim"``), or
            ``None`` when the entries are chosen inside another config (activations).
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None, *, force: bool = False) -> Callable[[T], T]:
        """Decorator registering a factory under ``name`` (default: its ``__name__`` lowercased).

        Registering a name twice is an error unless ``force=True`` (which replaces it).
        """

        def decorator(factory: T) -> T:
            key = name or factory.__name__.lower()
            if key in self._entries and not force and self._entries[key] is not factory:
                raise ConfigError(
                    f"{self.kind} '{key}' is already registered by "
                    f"{_origin(self._entries[key])}; pick another name or pass force=True"
                )
            self._entries[key] = factory
            return factory

        return decorator

    def get(self, name: str, key: str | None = None) -> T:
        """The factory registered as ``name``; ``key`` names the config key in errors."""
        if not isinstance(name, str) or name not in self._entries:
            raise ConfigError(unknown_name_message(self.kind, str(name), self.names(), key))
        return self._entries[name]

    def build(self, name: str, /, *args: Any, key: str | None = None, **kwargs: Any) -> Any:
        """Call factory ``name`` with ``args``/``kwargs``; bad keyword names are ConfigErrors."""
        factory = self.get(name, key)
        try:
            inspect.signature(factory).bind(*args, **kwargs)
        except TypeError as err:
            accepted = ", ".join(self.hyperparameters(name)) or "none"
            raise ConfigError(
                f"{self.kind} '{name}': {err}; its hyperparameters are: {accepted}"
            ) from None
        return factory(*args, **kwargs)

    def hyperparameters(self, name: str) -> dict[str, inspect.Parameter]:
        """Keyword parameters of entry ``name`` that a config may set (positional-only and
        ``*args``/``**kwargs`` excluded), in signature order."""
        params = inspect.signature(self.get(name)).parameters.values()
        return {
            p.name: p
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not p.name.startswith("_")
        }

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _origin(factory: Any) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"


# One registry per kind. `group` is the config group whose options the entries become.
layers: Registry = Registry("layer")
activations: Registry = Registry("activation")
losses: Registry = Registry("loss", group="loss")
initializers: Registry = Registry("initializer")
optimizers: Registry = Registry("optimizer", group="optim")
schedules: Registry = Registry("schedule", group="schedule")
datasets: Registry = Registry("dataset", group="dataset")
models: Registry = Registry("model", group="model")
augmentations: Registry = Registry("augmentation")

REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in (
        layers,
        activations,
        losses,
        initializers,
        optimizers,
        schedules,
        datasets,
        models,
        augmentations,
    )
}


def load_builtins() -> None:
    """Import the built-in components so they register (cheap: NumPy only)."""
    import toolkit.data  # noqa: F401
    import toolkit.models  # noqa: F401
    import toolkit.nn  # noqa: F401
    import toolkit.optim  # noqa: F401


_loaded_plugin_files: set[Path] = set()


def plugin_folders(extra: list[str | os.PathLike] | None = None) -> list[Path]:
    """Folders searched for plugin modules: the project's ``plugins/`` (beside the
    ``toolkit`` package), ``./plugins``, ``$TOOLKIT_PLUGINS`` (``os.pathsep``-separated)
    and ``extra``; only those that exist."""
    candidates: list[Path] = [Path(__file__).resolve().parents[1] / "plugins"]
    candidates.append(Path.cwd() / "plugins")
    candidates += [Path(p) for p in os.environ.get(PLUGINS_ENV_VAR, "").split(os.pathsep) if p]
    candidates += [Path(p) for p in extra or []]
    seen: list[Path] = []
    for folder in candidates:
        folder = folder.resolve()
        if folder.is_dir() and folder not in seen:
            seen.append(folder)
    return seen


def load_plugins(extra_folders: list[str | os.PathLike] | None = None) -> list[str]:
    """Load the built-ins, then plugins: the ``toolkit.plugins`` entry points and every
    ``*.py`` file (not starting with ``_``) in the plugin folders. Idempotent: each file and
    entry point is imported once per process. Returns the names of what was loaded."""
    load_builtins()
    loaded: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module_name = ep.value.split(":")[0]
        if module_name in sys.modules:
            continue
        obj = ep.load()
        if callable(obj) and ":" in ep.value:
            obj()
        loaded.append(f"entry point {ep.name}")
    for folder in plugin_folders(extra_folders):
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or path in _loaded_plugin_files:
                continue
            _import_file(path)
            _loaded_plugin_files.add(path)
            loaded.append(str(path))
    return loaded


def _import_file(path: Path) -> None:
    module_name = f"toolkit_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import plugin file {path}; is it a Python module?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
