"""Weight initializers: ``init(shape, fan_in, fan_out, rng) -> float64 array``.

``fan_in``/``fan_out`` count the inputs/outputs one unit sees (for a conv kernel
``in_channels * kh * kw`` and ``out_channels * kh * kw``). Layers cast the result to their
dtype. Choose one by name: ``initializers.get("he")``.
"""

from __future__ import annotations

import numpy as np

from toolkit.registry import initializers

Shape = tuple[int, ...]


@initializers.register("he")
def he(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """He/Kaiming normal: N(0, 2 / fan_in); suits ReLU-family activations."""
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


@initializers.register("xavier")
def xavier(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); suits tanh."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


@initializers.register("normal")
def normal(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """N(0, 0.01^2): small random weights, as in the classic textbook nets."""
    return rng.standard_normal(shape) * 0.01


@initializers.register("zeros")
def zeros(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """All zeros (biases; for weights it leaves every unit identical)."""
    return np.zeros(shape)


@initializers.register("ones")
def ones(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """All ones (batch-norm scales)."""
    return np.ones(shape)


def initialize(
    name: str, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype
) -> np.ndarray:
    """Draw an array with initializer ``name`` and cast it to ``dtype`` (C-contiguous)."""
    values = initializers.get(name, key="init")(tuple(shape), fan_in, fan_out, rng)
    return np.ascontiguousarray(values, dtype=dtype)
