"""Multi-layer perceptron: [dense -> activation -> (dropout)] per hidden layer -> dense."""

from __future__ import annotations

from toolkit.nn.activations import activation_layer
from toolkit.nn.dense import Dense
from toolkit.nn.dropout import Dropout
from toolkit.nn.layer import Layer, Sequential
from toolkit.nn.reshape import Flatten
from toolkit.registry import ConfigError, models


def per_layer(key: str, value, count: int) -> list:
    """``value`` repeated ``count`` times, or the list itself if it has ``count`` entries."""
    if isinstance(value, list | tuple):
        if len(value) != count:
            raise ConfigError(
                f"model.{key} has {len(value)} entries but model.hidden_sizes has {count}; "
                f"give one value for all (model.{key}={value[0]}) or one per hidden layer"
            )
        return list(value)
    return [value] * count


@models.register("mlp")
def mlp(
    input_shape: tuple[int, ...],
    num_outputs: int,
    /,
    hidden_sizes: list[int] = (128, 64),
    activation: str | list[str] = ("relu", "tanh"),
    dropout: float | list[float] = 0.0,
    init: str = "he",
    output_activation: str | None = None,
) -> Sequential:
    """The reference MLP by default: 784-128(relu)-64(tanh)-10 on MNIST.

    Args:
        input_shape: per-sample input shape; images are flattened first.
        num_outputs: output units (classes or regression targets).
        hidden_sizes: units of each hidden layer.
        activation: one activation name for all hidden layers, or one per layer.
        dropout: dropout rate after each hidden activation (one value or one per layer).
        init: weight initializer of every dense layer.
        output_activation: optional activation after the output layer (e.g. ``sigmoid``
            for an MSE-trained XOR net); leave ``None`` for logits with cross-entropy.
    """
    sizes = list(hidden_sizes)
    if any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in sizes):
        raise ConfigError(f"model.hidden_sizes must be positive integers; got {sizes}")
    acts = per_layer("activation", activation, len(sizes))
    rates = per_layer("dropout", dropout, len(sizes))
    stack: list[Layer] = [Flatten()] if len(input_shape) > 1 else []
    for size, act, rate in zip(sizes, acts, rates, strict=True):
        stack += [Dense(size, init=init), activation_layer(act)]
        if rate:
            stack.append(Dropout(rate))
    stack.append(Dense(num_outputs, init=init))
    if output_activation:
        stack.append(activation_layer(output_activation))
    return Sequential(stack)
