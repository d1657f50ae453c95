"""Matplotlib figures for runs and studies: pure functions from arrays/histories to Figures.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, no GUI backend); the caller saves it (:func:`save_figure`) or logs it to MLflow
(``mlflow.log_figure(fig, "curves.png")``). Other toolkit modules import this package only
where they draw, never at module import time, so matplotlib loads only when it is needed.

- curves: :func:`learning_curves`, :func:`lr_schedule`, :func:`grad_norms`,
  :func:`overlay_curves`
- classification: :func:`confusion_matrix_figure`, :func:`misclassified_grid`,
  :func:`image_grid`
- conv: :func:`filters_figure`, :func:`feature_maps_figure`
- sweeps: :func:`heatmap`, :func:`bar_chart`
- regression: :func:`fitted_curves`, :func:`decision_boundary`, :func:`latent_projection`,
  :func:`reconstructions`
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from matplotlib.figure import Figure

from toolkit.viz.classification import confusion_matrix_figure, image_grid, misclassified_grid
from toolkit.viz.conv import feature_maps_figure, filters_figure
from toolkit.viz.curves import grad_norms, learning_curves, lr_schedule, overlay_curves
from toolkit.viz.regression import (
    decision_boundary,
    fitted_curves,
    latent_projection,
    reconstructions,
)
from toolkit.viz.sweeps import bar_chart, heatmap

DPI = 120


def save_figure(fig: Figure, path: str | PathLike[str]) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` dots per inch; return the path written.

    Parent folders are created; ``.png`` is appended when ``path`` does not end with it.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


__all__ = [
    "DPI",
    "bar_chart",
    "confusion_matrix_figure",
    "decision_boundary",
    "feature_maps_figure",
    "filters_figure",
    "fitted_curves",
    "grad_norms",
    "heatmap",
    "image_grid",
    "latent_projection",
    "learning_curves",
    "lr_schedule",
    "misclassified_grid",
    "overlay_curves",
    "reconstructions",
    "save_figure",
]
