"""Steps for every run: learning curves, the LR schedule, gradient norms and the
augmented training samples."""

from __future__ import annotations

import numpy as np

from toolkit.app.post_fit import FitResult, StepOutput, post_fit_step


@post_fit_step("learning_curves")
def learning_curves(result: FitResult) -> StepOutput:
    from toolkit import viz

    history = result.job.trainer.history
    found = {
        "learning_curves.png": viz.learning_curves(history),
        "lr_schedule.png": viz.lr_schedule(history),
    }
    if any(k.startswith("grad_norm/") for k in history):
        found["grad_norms.png"] = viz.grad_norms(history)
    return StepOutput(figures=found)


@post_fit_step("augmented_samples", applies=lambda job: job.augmenter is not None)
def augmented_samples(result: FitResult) -> StepOutput:
    """Eight training images over two augmented draws of each."""
    from toolkit import viz

    job = result.job
    samples = job.splits.train.x[:8]
    augmented = job.augmenter(np.concatenate([samples] * 2), np.random.default_rng(0))
    titles = ["original"] * 8 + ["augmented"] * 16
    figure = viz.image_grid(
        np.concatenate([samples, augmented]), titles, ncols=8, normalization=job.normalization
    )
    return StepOutput(figures={"augmented_samples.png": figure})
