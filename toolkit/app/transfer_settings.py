"""The ``transfer`` config node: its one typed schema, with every default.

The presets (``transfer=scratch`` (the default), ``finetune``, ``frozen``,
``frozen_backbone``, ``layer4_fc``) are instances of it with some values changed
(:data:`CONFIG_NODES`, stored in Hydra's ConfigStore with the other typed nodes), so a
default lives here and nowhere else. Being a structured
config, a wrong type (``transfer.pretrained=maybe``) or an unknown key fails when Hydra
composes; :meth:`TransferSettings.check` adds the value checks, before any work.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from toolkit.registry import ConfigError

# OmegaConf reads these annotations at runtime: Optional[...] rather than "X | None".
# ruff: noqa: UP045

UNSET = "???"


@dataclasses.dataclass
class TransferSettings:
    """Where a model's initial weights come from and which of its layers stay fixed.

    Attributes:
        init_from: a toolkit ``checkpoint.npz``, an MLflow run id or ``runs:/`` URI,
            ``torchvision:<arch>[:<weights>]`` (torchvision's pretrained weights, e.g.
            ``torchvision:resnet18``) or a torch ``.pth`` state_dict; ``None``: none.
        pretrained: load ``init_from``; ``false`` ignores it (the from-scratch baseline of
            a study, so one ``transfer.init_from=...`` serves every option of a sweep).
        freeze: layer paths (as the model summary prints them), dotted prefixes (stage
            names: ``layer1``) or globs (``*conv*``) that the optimizer leaves alone.
        reset_head: give the model a new output layer starting from zeros (a new label
            set) instead of loading the checkpoint's.
        cache_frozen: run the frozen leading stages once per image (evaluation mode) and
            train the rest on their cached outputs.
    """

    init_from: Optional[str] = None
    pretrained: bool = False
    freeze: list[str] = dataclasses.field(default_factory=list)
    reset_head: bool = False
    cache_frozen: bool = True

    @property
    def source(self) -> Optional[str]:
        """Where the weights come from, or ``None`` to train from scratch."""
        return self.init_from if self.pretrained else None

    def check(self) -> TransferSettings:
        """One-line ConfigErrors for values that cannot work; returns ``self``."""
        for key in ("pretrained", "reset_head", "cache_frozen"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"transfer.{key}={getattr(self, key)!r} must be true or false")
        if isinstance(self.freeze, str) or not all(isinstance(p, str) for p in self.freeze):
            raise ConfigError(
                f"transfer.freeze={self.freeze!r} must be a list of layer paths or stage "
                "names, e.g. [conv1, bn1, layer1, layer2, layer3]"
            )
        if self.pretrained and self.init_from in (None, "", UNSET):
            raise ConfigError(
                "transfer.init_from is not set: give transfer.init_from=<checkpoint.npz path, "
                "MLflow run id, torchvision:resnet18 or a .pth file> (or transfer=scratch)"
            )
        if self.reset_head and self.source is None:
            raise ConfigError(
                "transfer.reset_head=true needs pretrained weights (transfer.init_from with "
                "transfer.pretrained=true); a model from scratch has a fresh head already"
            )
        return self


def preset(**changes: object) -> TransferSettings:
    """A pretrained preset: the defaults with ``changes``; ``init_from`` must be given."""
    return TransferSettings(**{"init_from": UNSET, "pretrained": True, **changes})


#: torchvision ResNet stages before the head, for the presets below
RESNET_BACKBONE = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]

#: the ``transfer`` presets (Hydra ConfigStore nodes; ``transfer=scratch`` is the default)
CONFIG_NODES = {
    # no transfer: the model starts from its random initialisation (a study's baseline)
    ("transfer", "scratch"): TransferSettings,
    # load init_from and fine-tune all of it, with a new zero-initialised head
    ("transfer", "finetune"): preset(reset_head=True),
    # load init_from, freeze every convolution (the CNN's backbone), train the rest
    ("transfer", "frozen"): preset(reset_head=True, freeze=["*conv*"]),
    # ResNet: freeze everything but fc (a linear probe of the pretrained features)
    ("transfer", "frozen_backbone"): preset(reset_head=True, freeze=RESNET_BACKBONE),
    # ResNet: fine-tune layer4 and fc (the reference report's best setting)
    ("transfer", "layer4_fc"): preset(reset_head=True, freeze=RESNET_BACKBONE[:-1]),
}
