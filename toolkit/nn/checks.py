"""Argument checks shared by layers and model builders: one-line ConfigErrors that name
``<owner>.<name>`` (``conv2d.stride=0 must be a positive integer``, or
``model.channels=[] ...`` for a model builder's hyperparameter)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from toolkit.registry import ConfigError


def positive_int(value: object, name: str, owner: str) -> int:
    """``value`` as an int if it is an integer >= 1 (not a bool), else a ConfigError
    naming ``owner.name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{owner}.{name}={value!r} must be a positive integer")
    return int(value)


def positive_ints(values: object, name: str, owner: str) -> list[int]:
    """``values`` as a non-empty list of positive ints, else a ConfigError naming
    ``owner.name``."""
    is_list = isinstance(values, Sequence) and not isinstance(values, str)
    if not is_list or not values:
        raise ConfigError(
            f"{owner}.{name}={values!r} must be a non-empty list of positive integers"
        )
    return [positive_int(item, name, owner) for item in values]
