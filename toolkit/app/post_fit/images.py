"""Steps for convolutional classifiers: first-layer filters, feature maps of every
conv/pool stage for three test images, and a grid of misclassified test images."""

from __future__ import annotations

from toolkit.analysis.feature_maps import first_conv, has_conv, stage_outputs
from toolkit.app.post_fit import FitResult, StepOutput, post_fit_step


def _conv_classifier(job) -> bool:
    return job.classification and has_conv(job.model)


@post_fit_step("filters", applies=_conv_classifier)
def filters(result: FitResult) -> StepOutput:
    from toolkit import viz

    conv = first_conv(result.job.model)
    weights = conv.params[conv.weight_names[0]]
    return StepOutput(figures={"filters.png": viz.filters_figure(weights)})


@post_fit_step("feature_maps", applies=_conv_classifier)
def feature_maps(result: FitResult) -> StepOutput:
    from toolkit import viz

    test = result.job.splits.test
    maps = stage_outputs(result.job.model, test.x[:3])
    found = {}
    for i in range(min(3, len(test.x))):
        stages = {name: m[i] for name, m in maps.items()}
        found[f"feature_maps_{i}.png"] = viz.feature_maps_figure(
            stages, image=test.x[i], normalization=result.job.normalization
        )
    return StepOutput(figures=found)


@post_fit_step("misclassified", applies=_conv_classifier)
def misclassified(result: FitResult) -> StepOutput:
    from toolkit import viz

    job, test = result.job, result.job.splits.test
    probabilities = job.loss.link(result.test_outputs)
    figure = viz.misclassified_grid(
        test.x,
        test.y,
        probabilities.argmax(axis=1),
        probabilities.max(axis=1),
        class_names=job.dataset.class_names,
        normalization=job.normalization,
    )
    return StepOutput(figures={"misclassified.png": figure})
