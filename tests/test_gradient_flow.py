"""Gradient flow: depth profiles from the Trainer's per-layer gradient norms show gradients
shrinking towards the input of a deep plain stack and not of its residual twin; a sweep's
profiles overlay into one figure."""

import json

import numpy as np
import pytest

from toolkit.analysis import gradient_flow
from toolkit.analysis.gradient_flow import DepthProfile, depth_profile, flow_metrics
from toolkit.data import ArrayData
from toolkit.models import ModelSpec, build_model
from toolkit.registry import losses, optimizers
from toolkit.train import Trainer


def first_epoch_profile(residual: bool, blocks: int = 16, seed: int = 0) -> DepthProfile:
    spec = ModelSpec(
        "resnet",
        (1, 12, 12),
        3,
        {"channels": [4], "blocks": [blocks], "residual": residual, "batchnorm": False},
    )
    model = build_model(spec, seed=seed)
    rng = np.random.default_rng(seed)
    data = ArrayData(rng.normal(size=(64, 1, 12, 12)).astype(np.float32), rng.integers(0, 3, 64))
    trainer = Trainer(
        model,
        losses.build("cross_entropy"),
        optimizers.build("sgd", model, lr=0.01),
        epochs=1,
        batch_size=32,
        progress=False,
    )
    trainer.fit(data)
    return depth_profile(model, trainer.history)


def test_the_profile_lists_weight_layers_input_side_first():
    profile = first_epoch_profile(residual=True, blocks=2)
    assert profile.layers == [
        "0.conv2d",
        "2.residual_block.conv1",
        "2.residual_block.conv2",
        "3.residual_block.conv1",
        "3.residual_block.conv2",
        "5.dense",
    ]
    assert len(profile.at(1)) == 6 and np.all(profile.at(1) > 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_vanish_towards_the_input_without_shortcuts(seed):
    plain = flow_metrics(first_epoch_profile(residual=False, seed=seed))
    residual = flow_metrics(first_epoch_profile(residual=True, seed=seed))
    assert plain["grad_flow/first_over_last"] < 0.1
    assert residual["grad_flow/first_over_last"] > 3 * plain["grad_flow/first_over_last"]


def test_a_sweep_folder_overlays_into_one_figure(tmp_path):
    for job, (name, norms) in enumerate(
        {"residual=true": [1.0, 0.9], "residual=false": [0.01, 1.0]}.items()
    ):
        folder = tmp_path / str(job)
        folder.mkdir()
        DepthProfile(["0.conv2d", "2.dense"], {"1": norms}).save(folder)
        (folder / "job_result.json").write_text(json.dumps({"name": name}))
    figure = gradient_flow.sweep_figure(tmp_path)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["residual=true", "residual=false"]
    gradient_flow.main([str(tmp_path)])
    assert (tmp_path / "gradient_flow.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="no \\*/gradient_flow.json"):
        gradient_flow.sweep_figure(tmp_path / "0")
