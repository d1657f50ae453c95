"""What a finished job leaves in its run folder: metrics.json, the resolved config, the
final checkpoint, the post-fit steps' text files and figures (PNG)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from toolkit.app.post_fit import StepOutput
from toolkit.train import save_checkpoint

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config_resolved.yaml"
CHECKPOINT_FILE = "checkpoint.npz"
FIGURES_DIR = "figures"


@dataclass
class RunFiles:
    """Paths of what :func:`write_outputs` wrote."""

    checkpoint: Path
    files: list[Path] = field(default_factory=list)  # metrics, config, step files
    figures: list[Path] = field(default_factory=list)


def write_outputs(
    job, output_dir: Path, metrics: dict[str, float], steps: StepOutput, meta: dict
) -> RunFiles:
    """Write the job's outputs into ``output_dir``; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = RunFiles(save_checkpoint(output_dir / CHECKPOINT_FILE, job.model, meta))
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (output_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(job.config, resolve=True))
    written.files += [output_dir / METRICS_FILE, output_dir / CONFIG_FILE]
    for name, text in steps.files.items():
        (output_dir / name).write_text(text)
        written.files.append(output_dir / name)
    if steps.figures:
        from toolkit.viz import save_figure

        folder = output_dir / FIGURES_DIR
        written.figures = [save_figure(fig, folder / name) for name, fig in steps.figures.items()]
    return written


def raw_input_example(job, count: int = 5) -> np.ndarray:
    """A few test inputs as a deployed model receives them (uint8 pixels for images)."""
    x = job.splits.test.x[:count]
    if job.dataset.normalization is None:
        return x
    mean, std = job.dataset.normalization
    pixels = np.clip(np.rint((x * std + mean) * 255.0), 0, 255).astype(np.uint8)
    return pixels.reshape(count, *x.shape[2:]) if x.shape[1] == 1 else pixels
