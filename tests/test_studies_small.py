"""The representation-learning study presets reach their targets on small budgets: XOR,
sin regression (universal approximation), gradient flow (plain vs residual, overlaid as a
sweep would be), and, as a slow check, transfer learning beating training from scratch."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tests.conftest import requires_mnist
from toolkit.analysis import gradient_flow
from toolkit.app.config_store import register_configs
from toolkit.app.job import Job, build_job
from toolkit.app.lifecycle import fit_and_evaluate
from toolkit.app.post_fit import FitResult, StepOutput, run_steps
from toolkit.train import save_checkpoint

CONF = Path(__file__).resolve().parents[1] / "toolkit" / "conf"


def build_preset(*overrides: str) -> Job:
    """One job of a preset, built in-process without tracking."""
    register_configs()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "logger=none", "trainer.progress=false"])
    return build_job(cfg)


def fit_and_analyse(job: Job, figures: bool = True) -> tuple[dict[str, float], StepOutput]:
    """Train and test ``job``, then run its post-fit steps: (all metrics, step outputs)."""
    metrics = fit_and_evaluate(job)
    steps = run_steps(FitResult(job, metrics), figures=figures)
    return {**metrics, **steps.metrics}, steps


def run_preset(*overrides: str) -> tuple[dict[str, float], set[str]]:
    """Train one job of a preset: (final metrics, figure names)."""
    metrics, steps = fit_and_analyse(build_preset(*overrides))
    return metrics, set(steps.figures)


def test_xor_2_4_1_reaches_mse_below_1e_4_and_draws_its_decision_boundary():
    metrics, drawn = run_preset("+experiment=xor")
    assert metrics["test/loss"] < 1e-4  # the reference reached 6.56e-4
    assert "decision_boundary.png" in drawn


def test_a_bigger_mlp_approximates_sin_better_and_the_big_one_beats_0_005():
    big, drawn = run_preset("+experiment=universal_approximation", "model.hidden_sizes=[64,64]")
    small, _ = run_preset("+experiment=universal_approximation", "model.hidden_sizes=[8]")
    assert big["test/loss"] < 0.005  # the reference's big MLP: 0.0101
    assert small["test/loss"] > 2 * big["test/loss"]
    assert "fitted_curve.png" in drawn


@requires_mnist
def test_gradient_flow_preset_shows_vanishing_gradients_without_shortcuts(tmp_path, cache_dir):
    ratios = {}
    for residual in ("true", "false"):
        job = build_preset(
            "+experiment=gradient_flow",
            "model.blocks=[12]",
            f"model.residual={residual}",
            "dataset.subset=120",
            "trainer.batch_size=54",
        )
        metrics, steps = fit_and_analyse(job, figures=False)
        ratios[residual] = metrics["grad_flow/first_over_last"]
        folder = tmp_path / f"residual={residual}"
        folder.mkdir()
        for name, text in steps.files.items():  # the run folder's gradient_flow.json
            (folder / name).write_text(text)
    assert ratios["false"] < 0.1 and ratios["true"] > 3 * ratios["false"]
    gradient_flow.main([str(tmp_path)])  # the sweep overlay, from the jobs' folders
    assert (tmp_path / "gradient_flow.png").is_file()


@pytest.mark.slow
@requires_mnist
def test_a_frozen_pretrained_backbone_beats_training_from_scratch(tmp_path, cache_dir):
    """The transfer study at its real budget (minutes): a CNN trained on digits 0-4, then
    300 labelled digits 5-9 for 3 epochs."""
    source = build_preset(
        "+model=cnn", "dataset=mnist_classes", "dataset.classes=[0,1,2,3,4]", "trainer.epochs=1"
    )
    assert fit_and_evaluate(source)["test/acc"] > 0.95
    checkpoint = save_checkpoint(tmp_path / "source.npz", source.model, source.checkpoint_meta())
    accuracy = {
        arm: run_preset(
            "+experiment=transfer", f"transfer={arm}", f"transfer.init_from={checkpoint}"
        )[0]["test/acc"]
        for arm in ("scratch", "finetune", "frozen")
    }
    assert accuracy["frozen"] > accuracy["scratch"], accuracy


@requires_mnist
def test_the_mlp_recipes_shifts_apply_to_images_and_step_aside_for_spirals(capsys):
    """augment=shift1 (images_only): MNIST batches are shifted; spirals train unaugmented
    with a line saying so (augment=light on spirals is refused: tests/test_bad_input.py)."""
    images = build_preset("+model=mlp", "dataset.subset=200", "trainer.epochs=1")
    assert images.trainer.augment is not None
    points = build_preset("+model=mlp", "dataset=spirals", "trainer.epochs=1")
    assert points.trainer.augment is None
    assert "augment: not applied, dataset=spirals has no images" in capsys.readouterr().err
