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
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from toolkit.errors import ConfigError, ParameterError, bad_value, owner_name  # noqa: F401

T = TypeVar("T", bound=Callable[..., Any])


def close_matches(name: str, choices: list[str], n: int = 3) -> list[str]:
    """Names in ``choices`` that look like ``name`` (difflib), best first."""
    return difflib.get_close_matches(name, choices, n=n, cutoff=0.5)


def unknown_name_message(kind: str, name: str, choices: list[str], key: str | None = None) -> str:
    """One line: ``unknown optimizer 'adma' (optim=adma); did you mean: adam? ...``."""
    where = f" ({key}={name})" if key else ""
    hint = close_matches(name, choices)
    suggestion = f"; did you mean: {', '.join(hint)}?" if hint else ";"
    return f"unknown {kind} '{name}'{where}{suggestion} choose one of: {', '.join(sorted(choices))}"


def clipped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, its last three ``...`` where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(
    error: BaseException, *, typed: bool = False, cause: bool = False, limit: int | None = 300
) -> str:
    """``error``'s message as one line: its lines that are not indented detail (with
    ``cause``, also those of ``error.__cause__``), stripped and joined by ``"; "``, cut to
    ``limit`` characters (None: whole); ``typed`` puts the type's name first
    (``OSError: ...``). A message without text is the type's name alone."""
    text = f"{error}\n{error.__cause__ or ''}" if cause else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != " "]
    message = "; ".join(lines)
    if typed and message:
        message = f"{type(error).__name__}: {message}"
    message = message or type(error).__name__
    return message if limit is None else clipped(message, limit)


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
        self._declared: dict[str, dict[str, Any]] = {}

    def register(
        self, name: str | None = None, *, force: bool = False, **declared: Any
    ) -> Callable[[T], T]:
        """Decorator registering a factory under ``name`` (default: its ``__name__`` lowercased).

        Registering a name twice is an error unless ``force=True`` (which replaces it) or
        both are the same component (same qualified name and source code: another copy of
        the same plugin file), in which case the first stays.

        ``declared``: what the entry says about itself beyond its hyperparameters, read
        back with :meth:`declared` (a model builder's ``task="reconstruction"``).
        """

        def decorator(factory: T) -> T:
            key = name or factory.__name__.lower()
            existing = self._entries.get(key)
            if existing is not None and not force and _same_component(existing, factory):
                return factory
            if existing is not None and not force and existing is not factory:
                raise ConfigError(
                    f"{self.kind} '{key}' is already registered by "
                    f"{_origin(self._entries[key])}; pick another name or pass force=True"
                )
            self._entries[key] = factory
            self._declared[key] = dict(declared)
            return factory

        return decorator

    def preset(self, name: str, base: str, doc: str = "", **defaults: Any) -> None:
        """Register ``name`` as entry ``base`` with other defaults: the one preset
        mechanism (``optimizers.preset("sgd_momentum", "sgd", momentum=0.9)``). The preset
        is built like any entry (``optimizers.build("sgd_momentum", model)``), its config
        node shows its defaults, and anything passed explicitly still wins."""
        factory = self.get(base)
        unknown = sorted(set(defaults) - set(self.hyperparameters(base)))
        if unknown:
            raise ConfigError(
                f"preset {self.kind} '{name}': {base} has no hyperparameter {', '.join(unknown)}"
            )
        signature = inspect.signature(factory)
        params = [
            p.replace(default=defaults[p.name]) if p.name in defaults else p
            for p in signature.parameters.values()
        ]
        preset_signature = signature.replace(parameters=params)

        def build(*args: Any, **kwargs: Any) -> Any:
            bound = preset_signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return factory(*bound.args, **bound.kwargs)

        settings = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        build.__signature__ = preset_signature  # type: ignore[attr-defined]
        build.__annotations__ = _type_hints(factory)
        build.__name__ = name
        build.__qualname__ = f"{getattr(factory, '__qualname__', base)}[{name}]"
        build.__module__ = getattr(factory, "__module__", __name__)
        build.__doc__ = doc or f"{base} with {settings}."
        self.register(name, **self.declared(base))(build)  # type: ignore[arg-type]

    def get(self, name: str, key: str | None = None) -> T:
        """The factory registered as ``name``; ``key`` is the parameter (or, for the app,
        the config key) that chose it, named in the error: ``unknown schedule 'cosin'
        (after=cosin)``, a :class:`ParameterError` the app can put under its config key."""
        if not isinstance(name, str) or name not in self._entries:
            where = f"{{{key}}}" if key else None
            message = unknown_name_message(self.kind, str(name), self.names(), where)
            raise ParameterError(None, message)
        return self._entries[name]

    def declared(self, name: str) -> dict[str, Any]:
        """What entry ``name`` declared when it registered (``{}`` if nothing); a preset
        declares what its base does."""
        self.get(name)
        return dict(self._declared.get(name, {}))

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
    """``module.Name (file)``: where a registered component comes from."""
    name = f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"
    try:
        return f"{name} ({inspect.getsourcefile(factory)})"
    except TypeError:
        return name


def _type_hints(factory: Any) -> dict[str, Any]:
    """Resolved annotations of a function or a class's ``__init__`` ({} if unresolvable)."""
    import typing

    try:
        return typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:
        return {}


def _source(factory: Any) -> str | None:
    try:
        return inspect.getsource(factory)
    except (OSError, TypeError):
        return None


def _same_component(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are copies of one component (same qualified name and code)."""
    if a is b or getattr(a, "__qualname__", None) != getattr(b, "__qualname__", None):
        return a is b
    source = _source(a)
    same_code = source is not None and source == _source(b)
    return same_code and inspect.signature(a) == inspect.signature(b)


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


# Plugin discovery lives in its own module; importing it here keeps the one public path
# ``from toolkit.registry import load_plugins``.
from toolkit.plugin_loading import PLUGIN_FAILURES, PluginFailure, load_plugins, plugin_folders  # noqa: E402, F401
