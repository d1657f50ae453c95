"""Pretrained weights from torchvision (or a local ``.pth`` file) for the NumPy models.

``transfer.init_from`` accepts::

    torchvision:resnet18                    torchvision's default weights for resnet18
    torchvision:resnet18:IMAGENET1K_V1      a named set of weights
    /path/to/resnet18.pth                   a torch state_dict saved with torch.save

torchvision's own weights API finds them (``torchvision.models.get_model_weights``):
online it downloads them once into torch's cache (``$TORCH_HOME/hub/checkpoints``,
default ``~/.cache/torch/hub/checkpoints``) and checks their hash; later runs load the
cached file. Offline and missing, loading stops at once with one line naming the file
expected, where to put it and where it comes from. The weights bring their
preprocessing: the normalisation (ImageNet's per-channel mean and std) and the input
size the network was trained at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.data.downloads import socket_timeout, unreachable_reason
from toolkit.registry import ConfigError, close_matches, one_line, unknown_name_message

PREFIX = "torchvision:"
PTH_SUFFIXES = (".pth", ".pt")


@dataclass
class PretrainedWeights:
    """A torch ``state_dict`` and what it was trained with.

    Attributes:
        state: parameter and buffer tensors by torch key.
        source: where they came from (``torchvision:resnet18 (IMAGENET1K_V1)`` or a path).
        arch: the torchvision architecture (``resnet18``), when known.
        normalization: per-channel ``(mean, std)`` of [0, 1] pixels the weights expect,
            when known.
        image_size: the crop side the weights were evaluated at (224), when known.
        categories: the class names of the pretrained head, when known.
    """

    state: dict[str, Any]
    source: str
    arch: str | None = None
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    image_size: int | None = None
    categories: list[str] | None = None


def is_pretrained_source(init_from: str) -> bool:
    """Whether ``init_from`` names torchvision weights or a ``.pth`` file (rather than a
    toolkit checkpoint or an MLflow run)."""
    return init_from.startswith(PREFIX) or init_from.lower().endswith(PTH_SUFFIXES)


def parse_torchvision(init_from: str) -> tuple[str, str | None]:
    """``torchvision:resnet18[:WEIGHTS]`` -> ``("resnet18", "WEIGHTS" or None)``."""
    parts = init_from.removeprefix(PREFIX).split(":")
    if len(parts) > 2 or not parts[0]:
        raise ConfigError(
            f"transfer.init_from={init_from!r}: expected torchvision:<architecture>[:<weights>], "
            "e.g. torchvision:resnet18"
        )
    return parts[0], parts[1] if len(parts) == 2 else None


def weights_enum(arch: str, weights: str | None) -> Any:
    """torchvision's weights entry for ``arch`` (its default, or the one named)."""
    from torchvision import models

    from toolkit.registry import models as builders

    numpy_twins = [name for name in models.list_models() if name in builders.names()]
    if arch not in numpy_twins:
        hint = close_matches(arch, numpy_twins)
        raise ConfigError(
            f"transfer.init_from=torchvision:{arch}: no NumPy model for torchvision's {arch!r}"
            + (f"; did you mean: {', '.join(hint)}?" if hint else "")
            + f" architectures with pretrained weights: {', '.join(numpy_twins)}"
        )
    choices = models.get_model_weights(arch)
    if weights is None:
        return choices.DEFAULT
    names = [w.name for w in choices]
    if weights not in names:
        raise ConfigError(
            unknown_name_message(
                f"{arch} weights", f"{PREFIX}{arch}:{weights}", names, "transfer.init_from"
            ).replace(f"'{PREFIX}{arch}:{weights}'", repr(weights), 1)
        )
    return choices[weights]


def expected_file(entry: Any) -> Path:
    """Where torchvision keeps the weights file ``entry`` downloads."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(entry.url)


def torchvision_weights(arch: str, weights: str | None = None) -> PretrainedWeights:
    """torchvision's pretrained weights for ``arch``, from its cache or downloaded into it
    (online); offline and not cached, a one-line ConfigError naming the file and the fix."""
    entry = weights_enum(arch, weights)
    path = expected_file(entry)
    if not path.is_file():
        why = unreachable_reason([entry.url])
        if why:
            raise ConfigError(
                f"pretrained weights {path.name} for {arch} ({entry.name}) not found in "
                f"{path.parent} and not downloaded ({why}); download {entry.url} into "
                f"{path.parent} (or set TORCH_HOME), or give transfer.init_from=<local .pth>"
            )
    try:
        with socket_timeout(60.0):
            state = entry.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # download failures, a corrupt cached file
        raise ConfigError(
            f"pretrained weights {arch} ({entry.name}) could not be loaded from {path}: "
            f"{one_line(err)}; delete the file to download it again"
        ) from None
    transforms = entry.transforms()
    return PretrainedWeights(
        state=state,
        source=f"{PREFIX}{arch} ({entry.name})",
        arch=arch,
        normalization=(tuple(transforms.mean), tuple(transforms.std)),
        image_size=int(transforms.crop_size[0]),
        categories=list(entry.meta.get("categories") or []) or None,
    )


def pth_weights(path: str | os.PathLike) -> PretrainedWeights:
    """A ``state_dict`` saved with ``torch.save`` (tensors only: loaded with
    ``weights_only=True``); a checkpoint dict holding it under ``state_dict`` or
    ``model`` works too. Its preprocessing is not known from the file."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"transfer.init_from={path}: no such file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"transfer.init_from={path}: not a torch state_dict ({one_line(err)})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(
            f"transfer.init_from={path}: holds a {type(state).__name__}, not a state_dict"
        )
    return PretrainedWeights(state=dict(state), source=str(file))


def load_pretrained_weights(init_from: str) -> PretrainedWeights:
    """The weights ``init_from`` names (see the module notes)."""
    if init_from.startswith(PREFIX):
        return torchvision_weights(*parse_torchvision(init_from))
    return pth_weights(init_from)
