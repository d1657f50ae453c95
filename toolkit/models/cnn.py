"""Convolutional model builders: ``cnn`` (LeNet-style), ``cnn_single`` and ``resnet``.

Each returns an unbuilt :class:`~toolkit.nn.Sequential` for NCHW images; call
``.build(input_shape, rng, dtype)`` (or use :func:`toolkit.models.build_model`).
"""

from __future__ import annotations

from collections.abc import Sequence

from toolkit.nn.activations import activation_layer
from toolkit.nn.checks import positive_int, positive_ints
from toolkit.nn.layer import Layer, Sequential
from toolkit.registry import ConfigError, layers, models

POOLS = {"max": "maxpool2d", "avg": "avgpool2d"}


def odd_kernel_size(kernel_size: int) -> int:
    """``kernel_size`` if it is a positive odd int (same padding keeps H and W), else a
    ConfigError naming ``model.kernel_size``."""
    positive_int(kernel_size, "kernel_size", "model")
    if kernel_size % 2 == 0:
        raise ConfigError(f"model.kernel_size={kernel_size} must be odd for same padding")
    return kernel_size


def check_image_shape(name: str, input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        raise ConfigError(
            f"model {name} needs (channels, height, width) images; the data has samples of "
            f"shape {tuple(input_shape)}; use an image dataset or model=mlp"
        )


def check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"model.{key}={value!r} is not one of: {', '.join(sorted(choices))}")


def check_dropout(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"model.dropout={value!r} must be in [0, 1)")
    return float(value)


@models.register("cnn")
def cnn(
    input_shape: tuple[int, ...],
    num_outputs: int,
    /,
    channels: list[int] = (16, 32),
    kernel_size: int = 3,
    pool: str = "max",
    hidden: int = 128,
    dropout: float = 0.0,
    batchnorm: bool = False,
    activation: str = "relu",
    init: str = "he",
) -> Sequential:
    """LeNet-style CNN: per stage conv (same padding) -> [bn] -> act -> 2x2 pool, then
    flatten -> dense(hidden) -> act -> [dropout] -> dense(num_outputs) logits.

    Shapes for MNIST with the defaults: (1, 28, 28) -> (16, 14, 14) -> (32, 7, 7)
    -> 1568 -> 128 -> num_outputs.

    Args:
        input_shape: per-sample (C, H, W); num_outputs: classes.
        channels: filters of each stage's convolution (one stage per entry).
        kernel_size: odd side of every kernel (same padding keeps H and W).
        pool: ``max`` or ``avg`` 2x2/stride-2 pooling after each stage.
        hidden: units of the hidden dense layer.
        dropout: dropout rate before the output layer (0 disables it).
        batchnorm: batch-normalise after each convolution.
        activation: activation name (``relu``, ``tanh``, ...) after convs and hidden layer.
        init: weight initializer of every conv and dense layer.
    """
    check_image_shape("cnn", input_shape)
    stages = positive_ints(channels, "channels", "model")
    odd_kernel_size(kernel_size)
    check_choice("pool", pool, POOLS)
    positive_int(hidden, "hidden", "model")
    rate = check_dropout(dropout)
    stack: list[Layer] = []
    for width in stages:
        stack.append(layers.get("conv2d")(width, kernel_size, padding="same", init=init))
        if batchnorm:
            stack.append(layers.get("batchnorm")())
        stack += [activation_layer(activation), layers.get(POOLS[pool])(2)]
    stack += [layers.get("flatten")(), layers.get("dense")(hidden, init=init)]
    stack.append(activation_layer(activation))
    if rate:
        stack.append(layers.get("dropout")(rate))
    stack.append(layers.get("dense")(num_outputs, init=init))
    return Sequential(stack)


@models.register("cnn_single")
def cnn_single(
    input_shape: tuple[int, ...],
    num_outputs: int,
    /,
    filters: int = 8,
    kernel_size: int = 3,
    activation: str = "relu",
    init: str = "he",
) -> Sequential:
    """The reference's single-convolution net: conv (8 filters 3x3, no padding) -> act
    -> flatten -> dense(num_outputs). MNIST: (1, 28, 28) -> (8, 26, 26) -> 5408 -> 10."""
    check_image_shape("cnn_single", input_shape)
    positive_int(filters, "filters", "model")
    positive_int(kernel_size, "kernel_size", "model")
    return Sequential(
        [
            layers.get("conv2d")(filters, kernel_size, init=init),
            activation_layer(activation),
            layers.get("flatten")(),
            layers.get("dense")(num_outputs, init=init),
        ]
    )


@models.register("resnet")
def resnet(
    input_shape: tuple[int, ...],
    num_outputs: int,
    /,
    channels: list[int] = (16, 32, 64),
    blocks: list[int] = (1, 1, 1),
    residual: bool = True,
    batchnorm: bool = True,
    kernel_size: int = 3,
    init: str = "he",
) -> Sequential:
    """A small ResNet: stem conv (same) -> [bn] -> relu -> stages of residual blocks ->
    global average pool -> dense(num_outputs).

    Stage ``i`` has ``blocks[i]`` blocks of ``channels[i]`` filters; every stage after the
    first starts with a stride-2 block (MNIST: 28x28 -> 14x14 -> 7x7 with the defaults).
    ``residual=False`` builds the plain twin: the same layers without skip connections.

    Args:
        input_shape: per-sample (C, H, W); num_outputs: classes.
        channels: filters per stage (the stem uses ``channels[0]``).
        blocks: residual blocks per stage (same length as ``channels``).
        residual: add the skip connections.
        batchnorm: batch-normalise after every convolution.
        kernel_size: odd kernel side of the stem and block convolutions.
        init: weight initializer of the stem conv and the output layer.
    """
    check_image_shape("resnet", input_shape)
    widths = positive_ints(channels, "channels", "model")
    depths = positive_ints(blocks, "blocks", "model")
    if len(widths) != len(depths):
        raise ConfigError(
            f"model.blocks has {len(depths)} entries but model.channels has {len(widths)}; "
            "give one block count per stage"
        )
    odd_kernel_size(kernel_size)
    stack: list[Layer] = [
        layers.get("conv2d")(widths[0], kernel_size, padding="same", bias=not batchnorm, init=init)
    ]
    if batchnorm:
        stack.append(layers.get("batchnorm")())
    stack.append(activation_layer("relu"))
    block = layers.get("residual_block")
    for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
        for index in range(depth):
            stride = 2 if stage > 0 and index == 0 else 1
            stack.append(block(width, stride, residual, batchnorm, kernel_size))
    stack += [layers.get("global_avgpool")(), layers.get("dense")(num_outputs, init=init)]
    return Sequential(stack)
