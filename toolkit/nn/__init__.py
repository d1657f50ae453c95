"""The NumPy engine: layers, activations, losses and initializers (pure NumPy)."""

from toolkit.nn import (  # noqa: F401  (importing registers the components)
    activations,
    avg_pool,
    conv,
    dense,
    dropout,
    initializers,
    losses,
    norm,
    pool,
    reshape,
    residual,
    upsample,
)
from toolkit.nn.layer import Layer, Sequential

__all__ = ["Layer", "Sequential"]
