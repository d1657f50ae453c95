"""toolkit.viz: every figure function returns a pyplot-free Figure that shows its data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from toolkit import viz

ROOT = Path(__file__).resolve().parents[1]


def history(epochs: int = 3, acc: bool = True, val: bool = True) -> dict[str, list[float]]:
    """A Trainer-style history with `epochs` entries per key."""
    steps = np.arange(epochs, dtype=float)
    h = {"epoch": list(range(1, epochs + 1)), "train/loss": list(1.0 / (1 + steps))}
    if acc:
        h["train/acc"] = list(0.5 + 0.1 * steps)
    if val:
        h["val/loss"] = list(1.2 / (1 + steps))
        if acc:
            h["val/acc"] = list(0.45 + 0.1 * steps)
    h["lr"] = [0.1] * epochs
    h["grad_norm/0.dense"] = list(1.0 + steps)
    h["grad_norm/2.dense"] = list(0.1 + steps)
    return h


def legend_labels(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def texts(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


# --- the package ------------------------------------------------------------------------


def test_import_and_drawing_never_load_pyplot():
    code = (
        "import sys, tempfile, toolkit.viz as v\n"
        "fig = v.learning_curves({'epoch': [1], 'train/loss': [0.5]})\n"
        "v.save_figure(fig, tempfile.mkdtemp() + '/c.png')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_save_figure_writes_a_png(tmp_path):
    path = viz.save_figure(viz.learning_curves(history()), tmp_path / "plots" / "curves.png")
    assert path == tmp_path / "plots" / "curves.png"
    assert path.read_bytes().startswith(b"\x89PNG")


def test_save_figure_appends_png_suffix(tmp_path):
    path = viz.save_figure(viz.lr_schedule(history()), tmp_path / "lr")
    assert path.name == "lr.png" and path.stat().st_size > 0


# --- curves -----------------------------------------------------------------------------


def test_learning_curves_has_loss_and_accuracy_panels_with_train_and_val():
    fig = viz.learning_curves(history())
    assert isinstance(fig, Figure)
    loss, acc = fig.axes
    assert (loss.get_title(), acc.get_title()) == ("Loss", "Accuracy")
    assert legend_labels(loss) == legend_labels(acc) == ["train", "val"]
    assert loss.get_xlabel() == "epoch"
    np.testing.assert_allclose(acc.get_lines()[1].get_ydata(), [0.45, 0.55, 0.65])


def test_learning_curves_without_validation_split_has_train_only():
    fig = viz.learning_curves(history(val=False))
    assert [legend_labels(ax) for ax in fig.axes] == [["train"], ["train"]]


def test_learning_curves_for_regression_is_a_single_loss_panel():
    (ax,) = viz.learning_curves(history(acc=False)).axes
    assert ax.get_title() == "Loss" and legend_labels(ax) == ["train", "val"]


def test_learning_curves_single_epoch_draws_visible_points():
    fig = viz.learning_curves(history(epochs=1))
    for line in fig.axes[0].get_lines():
        assert len(line.get_xdata()) == 1 and line.get_marker() == "o"


def test_missing_key_names_what_the_history_has():
    with pytest.raises(KeyError, match="train/loss"):
        viz.lr_schedule({"epoch": [1], "train/loss": [1.0]})


def test_lr_schedule_uses_log_scale_only_beyond_one_decade():
    constant = viz.lr_schedule(history()).axes[0]
    assert constant.get_yscale() == "linear" and constant.get_ylabel() == "learning rate"
    decaying = dict(history(), lr=[0.1, 0.01, 0.001])
    assert viz.lr_schedule(decaying).axes[0].get_yscale() == "log"


def test_grad_norms_has_one_log_scale_line_per_layer():
    (ax,) = viz.grad_norms(history()).axes
    assert legend_labels(ax) == ["0.dense", "2.dense"]
    assert len(ax.get_lines()) == 2 and ax.get_yscale() == "log"


def test_grad_norms_without_grad_norm_keys_raises():
    with pytest.raises(KeyError, match="grad_norm"):
        viz.grad_norms({"epoch": [1], "train/loss": [1.0]})


def test_overlay_curves_has_one_line_per_run():
    runs = {"sgd": history(), "adam": history(epochs=5)}
    (ax,) = viz.overlay_curves(runs, "val/acc").axes
    assert legend_labels(ax) == ["sgd", "adam"]
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [3, 5]
    assert ax.get_ylabel() == "val/accuracy (%)"


# --- classification ---------------------------------------------------------------------


def test_confusion_matrix_annotates_every_count_and_gives_accuracy():
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    fig = viz.confusion_matrix_figure(matrix, ["cat", "dog", "bird"])
    ax = fig.axes[0]
    assert texts(ax) == [str(count) for count in matrix.ravel()]
    assert "80.00%" in ax.get_title()  # 16 correct of 20
    assert [label.get_text() for label in ax.get_xticklabels()] == ["cat", "dog", "bird"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")


def test_confusion_matrix_colours_by_row_rate_and_tolerates_a_missing_class():
    matrix = np.array([[3, 1], [0, 0]])  # class 1 never occurs
    rates = viz.confusion_matrix_figure(matrix).axes[0].images[0].get_array()
    np.testing.assert_allclose(rates, [[0.75, 0.25], [0.0, 0.0]])


def test_confusion_matrix_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        viz.confusion_matrix_figure(np.zeros((2, 3), dtype=int))


def test_image_grid_has_one_axes_per_image_with_its_title():
    fig = viz.image_grid(np.random.rand(5, 3, 8, 8), ["a", "b", "c", "d", "e"], ncols=3)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d", "e"]
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_image_grid_rejects_unshowable_channel_counts():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        viz.image_grid(np.zeros((2, 2, 8, 8)))


def test_misclassified_grid_shows_only_errors_with_prediction_and_truth():
    true = np.array([0, 1, 2, 3])
    pred = np.array([0, 7, 2, 5])
    probs = np.array([0.9, 0.87, 0.8, 0.51])
    fig = viz.misclassified_grid(np.random.rand(4, 1, 8, 8), true, pred, probs)
    assert [ax.get_title() for ax in fig.axes] == [
        "pred 7 (0.87) / true 1",
        "pred 5 (0.51) / true 3",
    ]


def test_misclassified_grid_caps_the_count_and_works_without_probs():
    true, pred = np.zeros(30, dtype=int), np.ones(30, dtype=int)
    fig = viz.misclassified_grid(np.random.rand(30, 8, 8), true, pred, max_images=4)
    assert [ax.get_title() for ax in fig.axes] == ["pred 1 / true 0"] * 4


def test_misclassified_grid_with_no_errors_says_so():
    labels = np.arange(3)
    fig = viz.misclassified_grid(np.random.rand(3, 8, 8), labels, labels)
    assert "No misclassified" in texts(fig.axes[0])[0]


# --- conv -------------------------------------------------------------------------------


def test_filters_figure_has_one_image_per_filter_on_a_symmetric_scale():
    weights = np.random.default_rng(0).normal(size=(6, 3, 5, 5))
    fig = viz.filters_figure(weights, rgb=False)  # 3 input channels draw as RGB by default
    *filters, colorbar = fig.axes
    assert len(filters) == 6 and colorbar.get_ylabel() == "weight"
    low, high = filters[0].images[0].get_clim()
    assert low == -high == -np.abs(weights.mean(axis=1)).max()


def test_filters_figure_can_show_one_input_channel():
    weights = np.random.default_rng(0).normal(size=(2, 3, 3, 3))
    fig = viz.filters_figure(weights, channel=1)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), weights[1, 1])


def test_feature_maps_figure_has_input_row_then_one_row_per_stage():
    maps = {"conv1": np.random.rand(16, 12, 12), "conv2": np.random.rand(3, 4, 4)}
    fig = viz.feature_maps_figure(maps, image=np.random.rand(1, 28, 28), max_channels=4)
    rows = np.reshape(fig.axes, (3, 4))
    assert [row[0].get_ylabel() for row in rows] == ["input", "conv1\n16x12x12", "conv2\n3x4x4"]
    assert [sum(len(ax.images) for ax in row) for row in rows] == [1, 4, 3]


def test_feature_maps_figure_without_input_image():
    fig = viz.feature_maps_figure({"conv1": np.random.rand(2, 6, 6)})
    assert len(fig.axes) == 2 and all(len(ax.images) == 1 for ax in fig.axes)


# --- sweeps -----------------------------------------------------------------------------


def test_heatmap_annotates_values_and_marks_missing_runs():
    values = np.array([[0.9712, 0.95], [0.5, np.nan]])
    fig = viz.heatmap(values, ["relu", "tanh"], ["relu", "tanh"], "acc", "second", "first")
    ax = fig.axes[0]
    assert texts(ax) == ["97.12%", "95.00%", "50.00%", "n/a"]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("acc", "second", "first")


def test_heatmap_custom_format_and_shape_check():
    fig = viz.heatmap(np.ones((1, 2)), ["a"], ["b", "c"], "t", "x", "y", fmt="{:.1f}")
    assert texts(fig.axes[0]) == ["1.0", "1.0"]
    with pytest.raises(ValueError):
        viz.heatmap(np.ones((2, 2)), ["a"], ["b", "c"], "t", "x", "y")


def test_bar_chart_writes_each_value_and_draws_error_bars():
    fig = viz.bar_chart(["max", "avg"], [0.98, 0.97], [0.01, 0.02], "pooling", "accuracy", "{:.0%}")
    ax = fig.axes[0]
    assert len(ax.patches) == 2
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)
    assert texts(ax) == ["98%\n± 1%", "97%\n± 2%"]


def test_bar_chart_without_stds():
    ax = viz.bar_chart(["a", "b", "c"], [1.0, 2.0, 3.0], title="t", ylabel="s").axes[0]
    assert texts(ax) == ["1", "2", "3"]
    assert not any(isinstance(c, ErrorbarContainer) for c in ax.containers)


# --- regression and representations -----------------------------------------------------


def test_fitted_curves_has_truth_and_one_line_per_model():
    x = np.linspace(-3, 3, 50)
    fig = viz.fitted_curves(x[::-1], np.sin(x[::-1]), {"mlp": np.sin(x[::-1]), "zero": 0 * x})
    ax = fig.axes[0]
    assert legend_labels(ax) == ["truth", "mlp", "zero"]
    assert np.all(np.diff(ax.get_lines()[0].get_xdata()) > 0)  # drawn left to right


def test_decision_boundary_shows_classes_and_accuracy():
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([-1, 1, 1, -1])  # XOR with labels that are not 0..K-1
    predict = lambda p: np.where(p[:, 0] > 0.5, 1, -1)  # noqa: E731  (right on 2 of 4)
    ax = viz.decision_boundary(predict, x, y, resolution=20).axes[0]
    assert legend_labels(ax) == ["class -1", "class 1"]
    assert "50.0%" in ax.get_title()


def test_decision_boundary_rejects_a_wrong_prediction_shape():
    with pytest.raises(ValueError, match="predict must return"):
        viz.decision_boundary(lambda p: p, np.random.rand(5, 2), np.zeros(5, dtype=int), 10)


def test_latent_projection_labels_variance_and_legends_classes():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(200, 4)) * [10.0, 1.0, 0.1, 0.1]
    ax = viz.latent_projection(latents, np.arange(200) % 3).axes[0]
    assert legend_labels(ax) == ["0", "1", "2"]
    share = float(ax.get_xlabel().split("(")[1].split("%")[0])
    assert 95 < share < 100


def test_latent_projection_with_continuous_labels_uses_a_colour_bar():
    fig = viz.latent_projection(np.random.rand(50, 3), np.random.rand(50))
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "label"


def test_reconstructions_has_two_rows_and_accepts_flat_outputs():
    originals = np.random.rand(12, 1, 6, 6)
    fig = viz.reconstructions(originals, originals.reshape(12, 36), n=4)
    assert len(fig.axes) == 8
    assert (fig.axes[0].get_ylabel(), fig.axes[4].get_ylabel()) == ("original", "reconstructed")
    assert "MSE 0 " in fig.get_suptitle()


def test_reconstructions_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="does not match"):
        viz.reconstructions(np.zeros((3, 6, 6)), np.zeros((3, 35)))
