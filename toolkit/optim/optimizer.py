"""The optimizer base class: walks a model's parameters and updates them in place."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Protocol

import numpy as np

from toolkit.optim.flat import FlatParameters
from toolkit.registry import ConfigError, bad_value

ElementTask = Callable[[int, int], None]
"""``task(start, stop)``: update elements ``start:stop`` of the parameters laid end to end."""
ElementRunner = Callable[[ElementTask, int], None]
"""``run(task, size)``: call ``task`` on pieces covering ``range(size)``, perhaps on several
threads at once (the Trainer passes :func:`toolkit.nn.parallel.run_elementwise`)."""

FLUSH_EVERY = 16
"""Steps between two flushes of the decaying slots' subnormal elements to zero."""


def check_positive(owner: object, name: str, value: float) -> None:
    """Raise a one-line :class:`~toolkit.registry.ParameterError` (``Adam: lr must be a
    positive number; got -1``) unless parameter ``name`` of ``owner`` (a name, or the
    object itself) is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise bad_value(owner, name, "a positive number", value)
    if not np.isfinite(value):
        raise bad_value(owner, name, "finite", value)


def check_fraction(owner: object, name: str, value: float) -> None:
    """Raise a one-line ParameterError unless parameter ``name`` is in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise bad_value(owner, name, "in [0, 1)", value)


class HasParams(Protocol):
    """A leaf layer as an optimizer sees it: its parameters and their gradients by name."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]


class Trainable(Protocol):
    """What an optimizer needs of a model (a :class:`toolkit.nn.layer.Layer` is one): its
    leaf layers by dotted path. Said here, not imported, so that ``toolkit.optim`` depends
    on NumPy and the registry only."""

    def named_layers(self) -> Iterable[tuple[str, HasParams]]: ...


class Optimizer:
    """Base class. Subclasses implement :meth:`update` for one parameter array (element by
    element: it may be given any contiguous flat piece of a parameter, its gradient and its
    state) and :meth:`init_state` for its per-parameter slots.

    :meth:`step` can hand contiguous pieces of the parameters' elements to several threads
    (its ``run``); since every update is element-wise, the result is bit-identical however
    the elements are split. Only optimizers that make their slots in :meth:`init_state`
    are split; one that creates them inside :meth:`update` gets whole parameters.

    Args:
        model: the (built) model whose leaf layers' ``params`` are updated from their
            ``grads``.
        lr: learning rate; a schedule overwrites ``self.lr`` each epoch.
        weight_decay: L2 penalty coefficient added to the gradient (``AdamW``: decoupled).
    """

    decaying_slots: tuple[str, ...] = ()
    """Slots multiplied by a factor below 1 every step (Adam's moments, SGD's velocity).
    Where a gradient goes quiet (the weights of a pixel that is rarely lit) such a slot
    decays into subnormal floats and stays there (0.9 x 4 x 2**-149 rounds back to
    4 x 2**-149), and on x86 a NumPy pass over an array holding some runs several times
    slower: the default MLP's Adam took 0.37-0.41 s an epoch from its 9th epoch on,
    against 0.18 s with the flush. Every :data:`FLUSH_EVERY` steps their elements below
    the dtype's smallest normal number in magnitude are set to zero. No parameter moves by
    them (an Adam update from such an m is below lr * 1.2e-38 / eps in float32), and the
    flush is element-wise, so reruns and thread counts keep their bits."""

    def __init__(self, model: Trainable, /, lr: float, weight_decay: float = 0.0) -> None:
        check_positive(self, "lr", lr)
        if not weight_decay >= 0:
            raise bad_value(self, "weight_decay", ">= 0", weight_decay)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.slots = [
            (f"{path}.{key}", layer, key)
            for path, layer in model.named_layers()
            for key in layer.params
        ]
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name, _, _ in self.slots}
        self.steps = 0
        self._flat = FlatParameters()

    def freeze(self, patterns: Sequence[str]) -> list[str]:
        """Stop updating the parameters of the layers that ``patterns`` name; returns the
        frozen parameter names (``"0.conv2d.W"``...).

        A pattern names a layer path as the model summary prints it (``"7.dense"``), a
        dotted prefix of paths (``"3"`` or ``"3.residual_block"``), or a glob
        (``"*conv*"``). Frozen parameters get no update at all (no step, no weight decay,
        no optimizer state); their gradients are still computed (and logged). A pattern
        that names no layer among those still updated is a ConfigError listing them.
        """
        paths = {name: layer_path(name, key) for name, _, key in self.slots}
        for pattern in map(str, patterns):
            if not any(names_layer(pattern, path) for path in paths.values()):
                raise ConfigError(
                    f"freeze pattern {pattern!r} names no layer with trainable parameters; "
                    f"layers: {', '.join(dict.fromkeys(paths.values()))}"
                )
        frozen = [
            name for name, path in paths.items() if any(names_layer(str(p), path) for p in patterns)
        ]
        self.slots = [slot for slot in self.slots if slot[0] not in frozen]
        for name in frozen:
            del self.state[name]
        return frozen

    def step(self, run: ElementRunner | None = None) -> None:
        """Apply one update to every parameter from its current gradient; ``run`` (if
        given) splits the elements into pieces, e.g. one per thread. With ``run``, an
        optimizer with :meth:`init_state` slots updates all parameters as one flat array
        (:mod:`toolkit.optim.flat`: the layers' arrays become views of it)."""
        self.steps += 1
        for name, layer, key in self.slots:
            if not self.state[name]:
                self.state[name].update(self.init_state(layer.params[key]))
        # an optimizer making its slots inside update() is given whole parameters
        split = run is not None and type(self).init_state is not Optimizer.init_state
        flat = self._flat.arrays(self.slots, self.state) if split else None
        if flat is not None:  # every parameter in one array: each pass one NumPy call
            work = [flat]
        else:
            work = [(layer.params[k], layer.grads[k], self.state[n]) for n, layer, k in self.slots]
        if not split:
            for param, grad, state in work:
                self.update(param, grad, state)
        else:
            total = sum(param.size for param, _, _ in work)
            run(lambda start, stop: self._update_elements(work, start, stop), total)
        if self.decaying_slots and self.steps % FLUSH_EVERY == 0:
            for _, _, state in work:
                for slot in self.decaying_slots:
                    if slot in state:
                        zero_subnormals(state[slot])

    def _update_elements(self, work: list, start: int, stop: int) -> None:
        """Update elements ``start:stop`` of the parameters laid end to end (a parameter
        that is not contiguous is updated whole by the shard holding its first element)."""
        offset = 0
        for param, grad, state in work:
            low, high = max(start - offset, 0), min(stop - offset, param.size)
            offset += param.size
            if low >= high:
                continue
            if low == 0 and high == param.size:
                self.update(param, grad, state)
            elif all(a.flags.c_contiguous for a in (param, grad, *state.values())):
                piece = {k: v.reshape(-1)[low:high] for k, v in state.items()}
                self.update(param.reshape(-1)[low:high], grad.reshape(-1)[low:high], piece)
            elif low == 0:
                self.update(param, grad, state)

    def init_state(self, param: np.ndarray) -> dict[str, np.ndarray]:
        """This optimizer's slots for ``param`` before its first step (none by default;
        overriding it lets :meth:`step` split the parameters over threads)."""
        return {}

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """Update ``param`` in place from ``grad``, element by element; ``state`` holds the
        same elements of this parameter's slots."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{"<param>/<slot>": array, "steps": array}`` for checkpoints."""
        flat = {
            f"{name}/{slot}": value
            for name, slots in self.state.items()
            for slot, value in slots.items()
        }
        flat["steps"] = np.array(self.steps)
        return flat

    def load_state_dict(self, flat: dict[str, np.ndarray]) -> None:
        self.steps = int(flat.get("steps", 0))
        for key, value in flat.items():
            if key != "steps":
                name, slot = key.rsplit("/", 1)
                self.state[name][slot] = np.array(value)


def zero_subnormals(values: np.ndarray) -> None:
    """Set the elements of the float array ``values`` that are nonzero but smaller in
    magnitude than its dtype's smallest normal number to zero, in place."""
    values[np.abs(values) < np.finfo(values.dtype).tiny] = 0


def layer_path(param_name: str, key: str) -> str:
    """``"7.dense.W"``, ``"W"`` -> ``"7.dense"``."""
    return param_name.removesuffix(f".{key}")


def names_layer(pattern: str, path: str) -> bool:
    """Whether ``pattern`` is the layer ``path``, a dotted prefix of it, or a glob matching it."""
    return path == pattern or path.startswith(f"{pattern}.") or fnmatchcase(path, pattern)
