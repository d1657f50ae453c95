"""Central-difference gradient checks for layers and losses (float64).

The relative error of an analytic gradient ``a`` against the numeric one ``n`` is
``||a - n|| / max(||a|| + ||n||, 1e-300)`` over the whole array; a correct smooth layer
reaches ~1e-9 or better with ``eps=1e-6``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from toolkit.nn.layer import GradcheckCase, Layer
from toolkit.registry import layers


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Norm-wise relative error of two gradients of the same shape."""
    diff = np.linalg.norm(analytic - numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(diff / max(scale, 1e-300))


def numeric_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d array by central differences, perturbing ``array`` in place (restored after)."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        f_plus = f()
        flat[i] = saved - eps
        f_minus = f()
        flat[i] = saved
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _rng_states(layer: Layer) -> list[tuple[np.random.Generator, dict]]:
    """Generators the layer tree draws from (dropout masks), with their current states."""
    found = []
    for _, leaf in layer.named_layers():
        rng = getattr(leaf, "rng", None)
        if isinstance(rng, np.random.Generator):
            found.append((rng, rng.bit_generator.state))
    return found


def check_layer(
    layer: Layer,
    x: np.ndarray,
    training: bool = True,
    seed: int = 0,
    eps: float = 1e-6,
) -> dict[str, float]:
    """Relative errors of ``dL/dx`` and every ``dL/dparam`` of a built float64 layer.

    ``L = sum(forward(x) * w)`` for a fixed random ``w``, so ``dL/dy = w``. Random layers
    (dropout) replay the same random draws on every forward pass. Returns
    ``{"input": err, "<param>": err, ...}``.
    """
    rng_states = _rng_states(layer)
    # An independent stream, so the weights never coincide with inputs drawn from `seed`.
    weights = np.random.default_rng([seed, 7919]).standard_normal(layer.forward(x, training).shape)

    def loss() -> float:
        for generator, state in rng_states:
            generator.bit_generator.state = state
        return float(np.sum(layer.forward(x, training) * weights))

    loss()
    analytic_dx = layer.backward(weights.copy())
    analytic = {"input": np.array(analytic_dx, dtype=np.float64)}
    for path, leaf in layer.named_layers():
        for key, grad in leaf.grads.items():
            analytic[f"{path}.{key}"] = np.array(grad, dtype=np.float64)

    errors = {"input": relative_error(analytic["input"], numeric_gradient(loss, x, eps))}
    for path, leaf in layer.named_layers():
        for key, param in leaf.params.items():
            name = f"{path}.{key}"
            errors[name] = relative_error(analytic[name], numeric_gradient(loss, param, eps))
    return errors


def check_loss(loss, prediction: np.ndarray, target: np.ndarray, eps: float = 1e-6) -> float:
    """Relative error of a loss's ``backward()`` against central differences in ``prediction``."""
    loss.forward(prediction, target)
    analytic = np.array(loss.backward(), dtype=np.float64)
    numeric = numeric_gradient(lambda: float(loss.forward(prediction, target)), prediction, eps)
    return relative_error(analytic, numeric)


def layer_cases(name: str) -> list[GradcheckCase] | None:
    """The gradient-check cases ``[(kwargs, per-sample input shape), ...]`` of registered
    layer ``name``: its class's declared ``gradcheck_cases`` (a layer made by a factory
    function declares them when it registers: ``layers.register("activation",
    gradcheck_cases=...)``). None when the layer needs constructor arguments but declares
    only :class:`~toolkit.nn.layer.Layer`'s no-argument default."""
    factory = layers.get(name)
    default = factory.gradcheck_cases if isinstance(factory, type) else Layer.gradcheck_cases
    cases = layers.declared(name).get("gradcheck_cases", default)
    required = [
        p for p in layers.hyperparameters(name).values() if p.default is inspect.Parameter.empty
    ]
    return None if cases is Layer.gradcheck_cases and required else list(cases)
