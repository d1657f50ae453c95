"""Where the app turns a config group into arguments, and so where config keys enter the
engine's error messages.

The engine raises :class:`~toolkit.registry.ParameterError` in its own terms (``Adam: lr
must be a positive number; got -1``); it knows nothing of Hydra. Each place the app
calls the engine with a group's values wraps the call in :func:`config_key`, which
re-raises such an error once, as one line with the config path (``optim.lr must be a
positive number; got -1``)::

    with config_key("trainer"):
        Trainer(model, loss, optimizer, epochs=cfg.trainer.epochs, ...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from toolkit.data import Augmenter, build_augmenter
from toolkit.registry import ParameterError, Registry


@contextlib.contextmanager
def config_key(key: str, **keys: str) -> Iterator[None]:
    """Re-raise a ParameterError from the block under config group ``key``: parameter
    ``p`` becomes ``key.p``, or ``keys[p]`` for a parameter whose value comes from
    elsewhere (``config_key("schedule", base_lr="optim.lr")``)."""
    try:
        yield
    except ParameterError as err:
        raise err.under(key, **keys) from None


def build_from(
    registry: Registry,
    name: str,
    key: str,
    /,
    *args: Any,
    keys: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """``registry.build(name, *args, **kwargs)`` for config group ``key``: an unknown
    ``name`` is named as ``key=name``, the entry's bad values as ``key.<param>``."""
    registry.get(name, key=key)  # outside the block: "(optim=adma)", not "optim.optim"
    with config_key(key, **(keys or {})):
        return registry.build(name, *args, **kwargs)


def augmenter_from(augment: Mapping[str, Any]) -> Augmenter | None:
    """The ``augment`` group's augmenter (None for no steps): ``build_augmenter``'s
    ``spec`` is ``augment.steps``, the Augmenter's ``steps.<name>.<param>`` are
    ``augment.steps.<name>.<param>``."""
    with config_key("augment", spec="augment.steps"):
        return build_augmenter(augment.get("steps"), p=augment.get("p", 1.0))
