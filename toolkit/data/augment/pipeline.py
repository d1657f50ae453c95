"""Chaining augmentations: :class:`Augmenter` applies steps in order to a random subset of
each batch; :func:`build_augmenter` makes one from what a Hydra config holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from toolkit.data.augment.transforms import Augmentation, as_image_batch, check_number
from toolkit.registry import ParameterError, augmentations


class Augmenter:
    """Applies augmentation steps in order, each sample with probability ``p``.

    Args:
        steps: built augmentations, or ``(name, hyperparameters)`` pairs built through the
            registry (``("rotate", {"max_degrees": 15})``); unknown names and keywords
            raise ConfigError, and a step's bad value names it as ``steps.<name>.<param>``
            (``Augmenter: steps.rotate.max_degrees must be >= 0; got -5``).
        p: probability, per sample, that it goes through the steps at all; the others are
            returned unchanged. In [0, 1]. The steps see only the chosen samples (so a
            ``fill=None`` background is their minimum).

    Calling ``augmenter(x, rng)`` with a batch ``x`` (N, C, H, W) returns a new float32
    array; ``x`` is not modified.
    """

    def __init__(
        self, steps: Sequence[tuple[str, Mapping[str, Any]] | Augmentation], p: float = 1.0
    ) -> None:
        self.steps: list[Augmentation] = [
            step if isinstance(step, Augmentation) else _build_step(*step) for step in steps
        ]
        self.p = check_number(self, "p", p, at_least=0, at_most=1)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = as_image_batch(x)
        if self.p == 1:
            return self._apply_steps(x, rng)
        chosen = np.flatnonzero(rng.random(len(x)) < self.p)
        out = x.copy()
        if len(chosen):
            out[chosen] = self._apply_steps(x[chosen], rng)
        return out

    def _apply_steps(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = x
        for step in self.steps:
            out = step(out, rng)
        return x.copy() if out is x else out

    def __repr__(self) -> str:
        return f"Augmenter({self.steps!r}, p={self.p:g})"


def build_augmenter(spec: object, p: float = 1.0) -> Augmenter | None:
    """The :class:`Augmenter` a config describes, or None for no augmentation.

    ``spec`` is one of:
        None or empty: no augmentation;
        a name or a list of names, applied in order with default hyperparameters:
        ``["shift", "rotate"]``;
        a mapping name -> hyperparameters (a mapping, or None for the defaults), applied in
        order: ``{"shift": {"max_pixels": 2}, "rotate": {"max_degrees": 10}}``.

    ``p`` is the probability that a sample is augmented. Bad specs raise ConfigError.
    """
    if not spec:
        return None
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, Mapping):
        steps = [(name, _hyperparameters(name, kwargs)) for name, kwargs in spec.items()]
    elif isinstance(spec, Sequence) and all(isinstance(name, str) for name in spec):
        steps = [(name, {}) for name in spec]
    else:
        raise ParameterError(
            "build_augmenter",
            "{spec} must be a list of augmentation names or a mapping name -> "
            f"hyperparameters (e.g. {{'shift': {{'max_pixels': 2}}}}); got {spec!r}",
        )
    return Augmenter(steps, p=p)


def _build_step(name: str, hyperparameters: Mapping[str, Any]) -> Augmentation:
    """The augmentation ``name`` from the registry; its bad values are named
    ``steps.<name>.<param>`` (an unknown name: ``steps=<name>``)."""
    augmentations.get(name, key="steps")  # an unknown name is not nested
    try:
        return augmentations.build(name, **hyperparameters)
    except ParameterError as err:
        raise err.nested(f"steps.{name}", "Augmenter") from None


def _hyperparameters(name: object, kwargs: object) -> dict[str, Any]:
    """The keyword arguments of step ``name``: a plain dict from a mapping or None."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ParameterError(
            "build_augmenter",
            f"{{spec.{name}}} must be a mapping of hyperparameters (or None); got {kwargs!r}",
        )
    return {str(key): value for key, value in kwargs.items()}
