"""Steps about the network itself: gradient flow by depth and receptive fields."""

from __future__ import annotations

import json
from dataclasses import asdict

from toolkit.analysis.feature_maps import has_conv
from toolkit.analysis.gradient_flow import PROFILE_FILE, depth_profile, flow_metrics, run_figure
from toolkit.analysis.receptive_field import field_table, receptive_fields
from toolkit.app.post_fit import FitResult, StepOutput, post_fit_step


def _profile(job):
    return depth_profile(job.model, job.trainer.history)


@post_fit_step("gradient_flow", applies=lambda job: _profile(job) is not None, figures_only=False)
def gradient_flow(result: FitResult) -> StepOutput:
    """``grad_flow/first_over_last`` and the depth profile (file and figure) of models
    with two or more weight layers (the profile file for one)."""
    profile = _profile(result.job)
    out = StepOutput(files={PROFILE_FILE: json.dumps(asdict(profile), indent=2)})
    if len(profile.layers) > 1:
        out.metrics.update(flow_metrics(profile))
        out.figures["gradient_flow.png"] = run_figure(profile)
    return out


def receptive_field_report(model) -> str | None:
    """The receptive-field table of a CNN (Markdown), or None for models without convs."""
    return field_table(receptive_fields(model)) if has_conv(model) else None


@post_fit_step("receptive_field", applies=lambda job: has_conv(job.model), figures_only=False)
def receptive_field(result: FitResult) -> StepOutput:
    return StepOutput(files={"receptive_field.md": receptive_field_report(result.job.model) + "\n"})
