"""Steps by task: a classifier's confusion matrix and 2-D decision regions, a regression's
fitted curve or decision boundary, an autoencoder's reconstructions, latent projection and
latent probe."""

from __future__ import annotations

import numpy as np

from toolkit.analysis.latent_probe import encode, encoder_of, fit_probe
from toolkit.app.post_fit import FitResult, StepOutput, post_fit_step
from toolkit.models import RECONSTRUCTION
from toolkit.train.metrics import confusion_matrix

LATENT_POINTS = 2000  # test codes drawn in the latent projection


@post_fit_step("confusion_matrix", applies=lambda job: job.classification)
def confusion(result: FitResult) -> StepOutput:
    from toolkit import viz

    job = result.job
    predictions = result.test_outputs.argmax(axis=1)
    matrix = confusion_matrix(job.splits.test.y, predictions, job.dataset.num_classes)
    figure = viz.confusion_matrix_figure(matrix, job.dataset.class_names)
    return StepOutput(figures={"confusion_matrix.png": figure})


def _two_d(job) -> bool:
    return job.dataset.sample_shape == (2,)


@post_fit_step("decision_boundary", applies=lambda job: _two_d(job) and job.task != RECONSTRUCTION)
def decision_boundary(result: FitResult) -> StepOutput:
    """Decision regions of 2-D inputs: the argmax class, or a one-output regression's
    0.5 threshold when its targets are 0/1 (XOR)."""
    from toolkit import viz

    job, test = result.job, result.job.splits.test

    def predict(points: np.ndarray) -> np.ndarray:
        return job.predict(points.astype(test.x.dtype))

    if job.classification:
        figure = viz.decision_boundary(
            lambda p: predict(p).argmax(axis=1), test.x, test.y, class_names=job.dataset.class_names
        )
        return StepOutput(figures={"decision_boundary.png": figure})
    if test.y.ndim != 2 or test.y.shape[1] != 1 or not np.isin(test.y, (0.0, 1.0)).all():
        return StepOutput()

    def above_half(points: np.ndarray) -> np.ndarray:
        return (job.loss.link(predict(points))[:, 0] > 0.5).astype(np.int64)

    labels = test.y[:, 0].astype(np.int64)
    return StepOutput(
        figures={"decision_boundary.png": viz.decision_boundary(above_half, test.x, labels)}
    )


def _curve_fit(job) -> bool:
    y = job.splits.test.y
    return (
        job.task == "regression"
        and job.dataset.sample_shape == (1,)
        and y.ndim == 2
        and y.shape[1] == 1
    )


@post_fit_step("fitted_curve", applies=_curve_fit)
def fitted_curve(result: FitResult) -> StepOutput:
    """The fit of a 1-D function on the test inputs, with its MSE."""
    from toolkit import viz

    job, test = result.job, result.job.splits.test
    predicted = job.loss.link(result.test_outputs)
    mse = float(np.mean((predicted - test.y) ** 2))
    label = f"{job.spec.name} {job.spec.hparams.get('hidden_sizes', '')}".strip()
    title = f"Fit on the test inputs (MSE {mse:.4g})"
    figure = viz.fitted_curves(test.x[:, 0], test.y[:, 0], {label: predicted[:, 0]}, title)
    return StepOutput(figures={"fitted_curve.png": figure})


@post_fit_step("reconstructions", applies=lambda job: job.task == RECONSTRUCTION)
def reconstructions(result: FitResult) -> StepOutput:
    """Ten test images over their reconstructions, and the first two principal components
    of the codes of up to LATENT_POINTS test images coloured by their labels."""
    from toolkit import viz

    job, test = result.job, result.job.labelled.test
    found = {"reconstructions.png": viz.reconstructions(test.x[:10], job.predict(test.x[:10]))}
    codes = encode(encoder_of(job.model), test.x[:LATENT_POINTS])
    if codes.shape[1] >= 2:
        found["latent_pca.png"] = viz.latent_projection(
            codes, test.y[:LATENT_POINTS], class_names=job.dataset.class_names
        )
    return StepOutput(figures=found)


@post_fit_step("latent_probe", applies=lambda job: job.probe is not None, figures_only=False)
def latent_probe(result: FitResult) -> StepOutput:
    """``probe/train_acc`` and ``probe/test_acc``: a classifier fitted on the frozen
    encoder's codes of the labelled splits."""
    job = result.job
    encoder = encoder_of(job.model)
    train, test = job.labelled.train, job.labelled.test
    metrics = fit_probe(
        job.probe,
        encode(encoder, train.x),
        train.y,
        encode(encoder, test.x),
        test.y,
        job.dataset.num_classes,
        threads=job.trainer.threads,
    )
    return StepOutput(metrics=metrics)
