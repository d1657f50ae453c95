"""Post-fit steps: what runs after training and testing, chosen by what the model and
task offer, each switchable from the config.

A step declares where it applies (``applies(job)``) and whether it only draws figures; it
returns metrics, figures and text files. ``post_fit.figures=false`` skips every figure
(a large sweep saves ~1 s per job); ``post_fit.skip=[latent_probe]`` skips steps by name.

Adding an analysis is one function in one of the modules here, decorated with
:func:`post_fit_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.registry import ConfigError


@dataclass
class FitResult:
    """What the steps read: the job and its final metrics, plus the test predictions
    computed once for all steps that need them."""

    job: Any  # toolkit.app.job.Job
    metrics: dict[str, float]

    @property
    def test_outputs(self) -> np.ndarray:
        """The model's raw outputs on the test split (N, K)."""
        return self.job.test_outputs()


@dataclass
class StepOutput:
    """A step's results: metrics (logged and reported), figures by file name, and text
    files by file name (written to the run folder and logged)."""

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PostFitStep:
    name: str
    run: Callable[[FitResult], StepOutput]
    applies: Callable[[Any], bool]
    figures_only: bool


STEPS: dict[str, PostFitStep] = {}


def post_fit_step(name: str, applies: Callable[[Any], bool] = lambda job: True, figures_only=True):
    """Register ``function(result) -> StepOutput`` as the step ``name``."""

    def register(function: Callable[[FitResult], StepOutput]):
        if name in STEPS:
            raise ValueError(f"post-fit step {name!r} is already registered")
        STEPS[name] = PostFitStep(name, function, applies, figures_only)
        return function

    return register


def _load_steps() -> None:
    from toolkit.app.post_fit import curves, images, structure, tasks  # noqa: F401


def check_skips(skip: list[str]) -> None:
    """ConfigError for a name in ``post_fit.skip`` that is no step (with close matches)."""
    from toolkit.registry import unknown_name_message

    _load_steps()
    for name in skip:
        if name not in STEPS:
            raise ConfigError(
                unknown_name_message("post-fit step", name, sorted(STEPS), key="post_fit.skip")
            )


def run_steps(result: FitResult, figures: bool = True, skip: tuple[str, ...] = ()) -> StepOutput:
    """Run every step that applies to the job (in registration order) and merge what
    they return."""
    _load_steps()
    merged = StepOutput()
    for step in STEPS.values():
        if step.name in skip or (step.figures_only and not figures) or not step.applies(result.job):
            continue
        out = step.run(result)
        merged.metrics.update(out.metrics)
        if figures:
            merged.figures.update(out.figures)
        merged.files.update(out.files)
    return merged
