"""Figures that know the dataset: class names wherever a label is drawn, RGB images in
true colours (de-normalised with the dataset's mean and std) and colour filters for a
first layer on RGB input."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit import viz
from toolkit.viz import _images

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def normalised_rgb(pixels: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) pixels in [0, 1] standardised per channel as the CIFAR-10 loader does."""
    mean = np.asarray(CIFAR_MEAN).reshape(1, 3, 1, 1)
    std = np.asarray(CIFAR_STD).reshape(1, 3, 1, 1)
    return (pixels - mean) / std


def test_misclassified_captions_name_the_classes():
    true, pred = np.array([4, 1, 2]), np.array([3, 1, 0])
    fig = viz.misclassified_grid(
        np.random.rand(3, 8, 8), true, pred, np.array([0.9, 0.8, 0.7]), class_names=FASHION
    )
    captions = [ax.get_title() for ax in fig.axes]
    assert captions == ["pred Dress (0.90)\ntrue Coat", "pred T-shirt/top (0.70)\ntrue Pullover"]


def test_misclassified_captions_without_names_keep_the_ids():
    fig = viz.misclassified_grid(np.random.rand(2, 8, 8), np.array([5, 1]), np.array([7, 1]))
    assert [ax.get_title() for ax in fig.axes] == ["pred 7 / true 5"]


def test_rgb_images_are_shown_in_their_true_colours():
    pixels = np.random.default_rng(0).random((4, 3, 6, 6))
    shown = _images.to_display(normalised_rgb(pixels), (CIFAR_MEAN, CIFAR_STD))
    assert shown.shape == (4, 6, 6, 3)
    np.testing.assert_allclose(shown, pixels.transpose(0, 2, 3, 1), atol=1e-12)
    fig = viz.image_grid(normalised_rgb(pixels), normalization=(CIFAR_MEAN, CIFAR_STD))
    drawn = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(drawn, pixels[0].transpose(1, 2, 0), atol=1e-12)


def test_denormalised_values_are_clipped_and_one_scalar_pair_serves_grey_images():
    grey = np.array([[[-10.0, 0.0], [1.0, 10.0]]])  # (1, 2, 2), mean 0.5, std 0.25
    shown = _images.to_display(grey, (0.5, 0.25))
    np.testing.assert_allclose(shown[0], [[0.0, 0.5], [0.75, 1.0]])
    assert _images.to_display(grey[:, None], ((0.5,), (0.25,))).shape == (1, 2, 2)


def test_a_normalisation_for_the_wrong_number_of_channels_is_refused():
    with pytest.raises(ValueError, match="2 means for 3 channels"):
        _images.to_display(np.zeros((1, 3, 2, 2)), ((0.5, 0.5), (0.2, 0.2, 0.2)))


def test_misclassified_rgb_images_are_drawn_in_colour_in_true_colours():
    pixels = np.random.default_rng(1).random((2, 3, 8, 8))
    fig = viz.misclassified_grid(
        normalised_rgb(pixels),
        np.array([0, 1]),
        np.array([1, 0]),
        class_names=["airplane", "automobile"],
        normalization=(CIFAR_MEAN, CIFAR_STD),
    )
    drawn = fig.axes[1].images[0].get_array()
    np.testing.assert_allclose(drawn, pixels[1].transpose(1, 2, 0), atol=1e-12)
    assert fig.axes[1].get_title() == "pred airplane\ntrue automobile"


def test_first_layer_filters_on_rgb_input_are_colour_images():
    weights = np.zeros((4, 3, 3, 3))
    weights[0, 0] = 1.0  # filter 0: red channel at the largest weight
    weights[1, 2] = -1.0  # filter 1: blue channel most negative
    fig = viz.filters_figure(weights)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (3, 3, 3)
    np.testing.assert_allclose(image[0, 0], [1.0, 0.5, 0.5])  # red up, zero is grey
    np.testing.assert_allclose(fig.axes[1].images[0].get_array()[0, 0], [0.5, 0.5, 0.0])
    assert "RGB" in fig._suptitle.get_text()
    one = viz.filters_figure(weights, channel=0)  # one input channel: the diverging map
    assert one.axes[0].images[0].get_array().shape == (3, 3)


def test_feature_maps_show_the_input_in_true_colours():
    pixels = np.random.default_rng(2).random((1, 3, 6, 6))
    fig = viz.feature_maps_figure(
        {"conv1": np.random.rand(2, 4, 4)},
        image=normalised_rgb(pixels)[0],
        normalization=(CIFAR_MEAN, CIFAR_STD),
    )
    drawn = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(drawn, pixels[0].transpose(1, 2, 0), atol=1e-12)


def test_legends_name_the_classes():
    latents = np.random.default_rng(3).normal(size=(60, 4))
    ax = viz.latent_projection(latents, np.arange(60) % 3, class_names=FASHION[:3]).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == FASHION[:3]
    x = np.random.default_rng(4).normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    ax = viz.decision_boundary(
        lambda p: (p[:, 0] > 0).astype(int), x, y, resolution=10, class_names=["left", "right"]
    ).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["left", "right"]


def test_reconstructions_of_rgb_images_are_de_normalised():
    pixels = np.random.default_rng(5).random((2, 3, 4, 4))
    images = normalised_rgb(pixels)
    fig = viz.reconstructions(images, images, n=2, normalization=(CIFAR_MEAN, CIFAR_STD))
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), pixels[0].transpose(1, 2, 0), atol=1e-12
    )
