"""Receptive fields and effective strides of sequential CNNs."""

import numpy as np

from toolkit.analysis.receptive_field import field_table, receptive_fields
from toolkit.models import ModelSpec, build_model
from toolkit.nn.layer import Sequential
from toolkit.registry import layers


def built(*stack) -> Sequential:
    model = Sequential(list(stack))
    model.build((1, 28, 28), np.random.default_rng(0), np.dtype("float32"))
    return model


def test_reference_conv_pool_conv_pool_ends_at_10x10_stride_4():
    model = built(
        layers.build("conv2d", out_channels=4, kernel_size=3, padding=1),
        layers.build("maxpool2d", kernel_size=2),
        layers.build("conv2d", out_channels=4, kernel_size=3, padding=1),
        layers.build("maxpool2d", kernel_size=2),
    )
    rows = receptive_fields(model)
    assert [r.receptive_field for r in rows] == [3, 4, 8, 10]
    assert [r.stride for r in rows] == [1, 2, 2, 4]
    assert "| 3.maxpool2d | (4, 7, 7) | 10x10 | 4 |" in field_table(rows)


def test_activations_keep_the_field_and_strided_convs_multiply_the_jump():
    model = built(
        layers.build("conv2d", out_channels=2, kernel_size=4, stride=1),
        layers.build("activation", name="relu"),
        layers.build("conv2d", out_channels=2, kernel_size=3, stride=2),
        layers.build("conv2d", out_channels=2, kernel_size=3),
    )
    rows = receptive_fields(model)
    assert [r.receptive_field for r in rows] == [4, 4, 6, 10]
    assert [r.stride for r in rows] == [1, 1, 2, 2]


def test_lenet_model_table_covers_every_layer_and_flatten_sees_everything():
    model = build_model(ModelSpec("cnn", (1, 28, 28), 10, {}))
    rows = receptive_fields(model)
    assert len(rows) == len(model.layers)
    flatten = next(r for r in rows if r.layer.endswith("flatten"))
    assert flatten.receptive_field >= 28


def test_a_decoder_after_the_code_sees_the_whole_input_and_no_more():
    model = build_model(ModelSpec("conv_autoencoder", (1, 28, 28), 784, {}))
    rows = receptive_fields(model)
    first_mixed = next(i for i, r in enumerate(rows) if len(r.output_shape) != 3)
    assert first_mixed < len(rows) - 1  # the decoder follows the code
    whole = rows[first_mixed]
    assert whole.receptive_field >= 28
    assert {(r.receptive_field, r.stride) for r in rows[first_mixed:]} == {
        (whole.receptive_field, whole.stride)
    }
