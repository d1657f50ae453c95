"""Typed config nodes (dataclasses for Hydra's ConfigStore) generated from signatures.

A component's defaults live once, in its signature (``Adam(model, /, lr=0.001, ...)``,
``EarlyStopping(monitor="val/loss", patience=5, ...)``) or in a settings dataclass
(``ProbeSettings``); the config node is derived from it, so ``optim.lr=abc`` or
``trainer.early_stopping.patience=p`` fail when Hydra composes. Positional-only
parameters are injected by the app (the model, data shapes) and are not part of a node.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

_SIMPLE_TYPES = (int, float, bool, str)
MISSING = "???"  # OmegaConf's mandatory value: a parameter without a default


def config_type(annotation: Any) -> Any:
    """The OmegaConf-compatible type for a parameter annotation (``Any`` if none fits)."""
    if annotation in _SIMPLE_TYPES:
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple) and len(args) >= 1 and args[0] in _SIMPLE_TYPES:
        return list[args[0]]
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1 and type(None) in args:
            inner = config_type(members[0])
            return inner if inner is Any else typing.Optional[inner]  # noqa: UP045 (OmegaConf)
    return Any


def field_default(value: Any) -> Any:
    """A dataclass field default: tuples, lists and dicts become copies (through a factory)."""
    if isinstance(value, tuple | list | dict):
        copy = list(value) if isinstance(value, tuple) else value.copy()
        return dataclasses.field(default_factory=lambda: copy)
    return value


def type_hints(target: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of a function or a class's ``__init__`` ({} if unresolvable)."""
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable annotations: untyped fields
        return {}


def keyword_parameters(target: Callable[..., Any]) -> list[inspect.Parameter]:
    """Parameters a config may set: not positional-only, not ``*args``/``**kwargs``, not
    starting with ``_``; in signature order."""
    return [
        p
        for p in inspect.signature(target).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not p.name.startswith("_")
    ]


def node_from_signature(
    target: Callable[..., Any],
    class_name: str,
    first: list[tuple[str, type, Any]] | None = None,
    defaults: dict[str, Any] | None = None,
    only: tuple[str, ...] | None = None,
    last: list[tuple[str, type, Any]] | None = None,
) -> type:
    """A dataclass with ``first`` fields (name, type, default), then one field per keyword
    parameter of ``target`` (those named in ``only``, if given) with its annotation's type
    and its default (``defaults`` replaces some, e.g. ``seed="${seed}"``), then ``last``."""
    hints = type_hints(target)
    fields = [(name, kind, field_default(value)) for name, kind, value in first or []]
    for param in keyword_parameters(target):
        if only is not None and param.name not in only:
            continue
        value = MISSING if param.default is inspect.Parameter.empty else param.default
        value = (defaults or {}).get(param.name, value)
        fields.append((param.name, config_type(hints.get(param.name, Any)), field_default(value)))
    fields += [(name, kind, field_default(value)) for name, kind, value in last or []]
    return dataclasses.make_dataclass(class_name, fields)
