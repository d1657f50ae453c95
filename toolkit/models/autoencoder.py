"""Autoencoders: models that reconstruct their input through a small latent code.

Both builders register with ``task=RECONSTRUCTION``: the app trains them on targets equal
to their flattened inputs (with ``mse``), so their output has ``prod(input_shape)`` units.
The model they return is an :class:`EncoderDecoder`: a Sequential that knows where its
encoder ends, and whose ``encoder()`` maps an input to its code (the
:class:`~toolkit.models.build.HasEncoder` protocol that
:mod:`toolkit.analysis.latent_probe` reads).
"""

from __future__ import annotations

import math

from toolkit.models.build import RECONSTRUCTION
from toolkit.models.cnn import check_image_shape, odd_kernel_size
from toolkit.nn.activations import activation_layer
from toolkit.nn.checks import positive_int, positive_ints
from toolkit.nn.dense import Dense
from toolkit.nn.layer import Layer, Sequential
from toolkit.nn.reshape import Flatten
from toolkit.nn.upsample import Unflatten, Upsample2d
from toolkit.registry import ConfigError, layers, models


def check_outputs(name: str, input_shape: tuple[int, ...], num_outputs: int) -> None:
    """ConfigError unless the output reconstructs the whole input (prod(input_shape))."""
    if num_outputs != math.prod(input_shape):
        raise ConfigError(
            f"model {name} reconstructs its input: it needs num_outputs = "
            f"{math.prod(input_shape)} (the input {tuple(input_shape)} flattened), "
            f"not {num_outputs}"
        )


class EncoderDecoder(Sequential):
    """``Sequential(encoder + decoder)`` that knows where its encoder ends.

    Attributes:
        encoder_layers: how many leading layers map an input to its code.
    """

    def __init__(self, encoder: list[Layer], decoder: list[Layer]) -> None:
        super().__init__(encoder + decoder)
        self.encoder_layers = len(encoder)

    def encoder(self) -> Sequential:
        """The leading layers: input (N, ...) -> code (N, D) (the same layer objects)."""
        return Sequential(self.layers[: self.encoder_layers])


@models.register("autoencoder", task=RECONSTRUCTION)
def autoencoder(
    input_shape: tuple[int, ...],
    num_outputs: int,
    /,
    hidden_sizes: list[int] = (128,),
    latent: int = 32,
    activation: str = "relu",
    latent_activation: str | None = None,
    init: str = "he",
) -> Sequential:
    """The reference dense autoencoder: 784-128-32 encoder, symmetric 32-128-784 decoder.

    Shapes for MNIST: (1, 28, 28) -> flatten 784 -> 128 -> code 32 -> 128 -> 784. The
    output is linear (it reconstructs the normalised pixels, trained with ``mse``).

    Args:
        input_shape: per-sample input shape; images are flattened first.
        num_outputs: must be ``prod(input_shape)``.
        hidden_sizes: encoder hidden layers (the decoder mirrors them).
        latent: size of the code.
        activation: activation of every hidden layer (encoder and decoder).
        latent_activation: optional activation on the code (``None``: linear code).
        init: weight initializer of every dense layer.
    """
    check_outputs("autoencoder", input_shape, num_outputs)
    sizes = positive_ints(list(hidden_sizes), "hidden_sizes", "model") if hidden_sizes else []
    positive_int(latent, "latent", "model")
    encoder: list[Layer] = [Flatten()] if len(input_shape) > 1 else []
    for size in sizes:
        encoder += [Dense(size, init=init), activation_layer(activation)]
    encoder.append(Dense(latent, init=init))
    if latent_activation:
        encoder.append(activation_layer(latent_activation))
    decoder: list[Layer] = []
    for size in reversed(sizes):
        decoder += [Dense(size, init=init), activation_layer(activation)]
    decoder.append(Dense(num_outputs, init=init))
    return EncoderDecoder(encoder, decoder)


@models.register("conv_autoencoder", task=RECONSTRUCTION)
def conv_autoencoder(
    input_shape: tuple[int, ...],
    num_outputs: int,
    /,
    channels: list[int] = (16, 32),
    kernel_size: int = 3,
    latent: int = 32,
    activation: str = "relu",
    init: str = "he",
) -> Sequential:
    """A convolutional autoencoder: conv stages down to a dense code, mirrored back up.

    Encoder: per stage conv (same padding) -> act -> 2x2 max pool; flatten -> dense(latent).
    Decoder: dense -> act -> unflatten; per stage in reverse, 2x nearest upsampling -> conv
    (same) -> act (the last conv has the input's channels and no activation); flatten.

    Shapes for MNIST with the defaults: (1, 28, 28) -> (16, 14, 14) -> (32, 7, 7) -> code 32
    -> (32, 7, 7) -> (16, 14, 14) -> (1, 28, 28) -> 784.

    Args:
        input_shape: per-sample (C, H, W); H and W divisible by 2 ** len(channels).
        num_outputs: must be ``prod(input_shape)``.
        channels: filters of each encoder stage (the decoder mirrors them).
        kernel_size: odd side of every kernel.
        latent: size of the code.
        activation: activation after every hidden conv and dense layer.
        init: weight initializer of every conv and dense layer.
    """
    check_image_shape("conv_autoencoder", input_shape)
    check_outputs("conv_autoencoder", input_shape, num_outputs)
    stages = positive_ints(channels, "channels", "model")
    odd_kernel_size(kernel_size)
    positive_int(latent, "latent", "model")
    in_channels, height, width = input_shape
    factor = 2 ** len(stages)
    if height % factor or width % factor:
        raise ConfigError(
            f"model conv_autoencoder halves the image {len(stages)} times, so height and width "
            f"must be divisible by {factor}; the data has {height}x{width}; use fewer channels"
        )
    conv = layers.get("conv2d")
    encoder: list[Layer] = []
    for width_ in stages:
        encoder += [
            conv(width_, kernel_size, padding="same", init=init),
            activation_layer(activation),
            layers.get("maxpool2d")(2),
        ]
    code_shape = [stages[-1], height // factor, width // factor]
    encoder += [Flatten(), Dense(latent, init=init)]
    decoder: list[Layer] = [
        Dense(math.prod(code_shape), init=init),
        activation_layer(activation),
        Unflatten(code_shape),
    ]
    targets = [*reversed(stages[:-1]), in_channels]
    for index, width_ in enumerate(targets):
        decoder += [Upsample2d(2), conv(width_, kernel_size, padding="same", init=init)]
        if index < len(targets) - 1:
            decoder.append(activation_layer(activation))
    decoder.append(Flatten())
    return EncoderDecoder(encoder, decoder)
