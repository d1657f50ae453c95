"""Gradient flow: how large the gradients are at each depth of a network.

The Trainer logs ``grad_norm/<layer path>`` per epoch: the L2 norm of a layer's parameter
gradients, averaged over the epoch's steps. Taking the weight layers (those that declare
``weight_names``: ``conv2d`` and ``dense``; batch-norm and other layers left out) in depth
order gives a *depth profile*.
Without shortcuts the gradients of a deep plain stack shrink towards its input; residual
blocks carry them back almost undiminished.

Each run writes its profile (``gradient_flow.json``) and a figure; a sweep's profiles are
overlaid from its folder::

    python -m toolkit -m +experiment=gradient_flow
    python -m toolkit.analysis.gradient_flow multirun/<date>/<time>   # -> gradient_flow.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from toolkit.nn.layer import Layer
from toolkit.track.sweep_records import RESULT_FILE

PROFILE_FILE = "gradient_flow.json"


@dataclass
class DepthProfile:
    """Gradient norms by depth.

    Attributes:
        layers: paths of the weight layers, input side first.
        norms: epoch (1-based, as a string key for JSON) -> one gradient L2 norm per layer.
    """

    layers: list[str]
    norms: dict[str, list[float]]

    def at(self, epoch: int) -> np.ndarray:
        """The (L,) norms of ``epoch`` (1-based)."""
        return np.asarray(self.norms[str(epoch)])

    def save(self, folder: Path) -> Path:
        path = folder / PROFILE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> DepthProfile:
        return cls(**json.loads(path.read_text()))


def depth_profile(model: Layer, history: Mapping[str, Sequence[float]]) -> DepthProfile | None:
    """The weight layers' gradient norms per epoch from a Trainer ``history``, or ``None``
    when the history has no gradient norms."""
    layers = [
        path
        for path, layer in model.named_layers()
        if layer.weight_names and f"grad_norm/{path}" in history
    ]
    if not layers:
        return None
    epochs = history["epoch"]
    norms = {
        str(int(epoch)): [float(history[f"grad_norm/{path}"][i]) for path in layers]
        for i, epoch in enumerate(epochs)
    }
    return DepthProfile(layers, norms)


def flow_metrics(profile: DepthProfile) -> dict[str, float]:
    """``grad_flow/first_over_last``: the first weight layer's gradient norm over the last
    one's in the first epoch (small when gradients vanish towards the input)."""
    first_epoch = profile.at(1)
    return {"grad_flow/first_over_last": float(first_epoch[0] / max(first_epoch[-1], 1e-30))}


def profile_figure(curves: Mapping[str, Sequence[float]], title: str):
    """Gradient norm (log scale) against depth index (1 = nearest the input), one line per
    entry of ``curves`` (label -> norms)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for label, norms in curves.items():
        depth = np.arange(1, len(norms) + 1)
        ax.plot(depth, np.maximum(norms, 1e-30), marker="o", markersize=3, label=label)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("weight layer (1 = input side)")
    ax.set_ylabel("gradient L2 norm")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    ax.set_title(title)
    return fig


def run_figure(profile: DepthProfile):
    """One run's profile in its first and last epochs."""
    first, last = min(profile.norms, key=int), max(profile.norms, key=int)
    curves = {f"epoch {first}": profile.norms[first]}
    if last != first:
        curves[f"epoch {last}"] = profile.norms[last]
    return profile_figure(curves, f"Gradient flow over {len(profile.layers)} weight layers")


def sweep_figure(sweep_dir: Path, epoch: int = 1):
    """The ``epoch`` profiles of every job of a sweep folder, labelled by job name."""
    curves = {}
    for path in sorted(Path(sweep_dir).glob(f"*/{PROFILE_FILE}"), key=lambda p: p.parent.name):
        result = path.parent / RESULT_FILE
        name = json.loads(result.read_text())["name"] if result.is_file() else path.parent.name
        curves[name] = DepthProfile.load(path).at(epoch)
    if not curves:
        raise FileNotFoundError(f"no */{PROFILE_FILE} under {sweep_dir}; is it a sweep folder?")
    return profile_figure(curves, f"Gradient flow by depth, epoch {epoch}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Overlay a sweep's gradient-flow profiles.")
    parser.add_argument("sweep_dir", type=Path, help="the sweep's folder (multirun/<date>/<time>)")
    parser.add_argument("--epoch", type=int, default=1, help="which epoch's norms (default 1)")
    args = parser.parse_args(argv)
    from toolkit.viz import save_figure

    path = save_figure(sweep_figure(args.sweep_dir, args.epoch), args.sweep_dir / "gradient_flow")
    print(path)


if __name__ == "__main__":
    main()
