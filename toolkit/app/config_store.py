"""Turn every registry entry into a Hydra config-group option, generated from its signature.

``@optimizers.register("adam")`` on ``Adam(model, /, lr=0.001, beta1=0.9, ...)`` becomes the
option ``optim=adam`` holding ``{name: adam, lr: 0.001, beta1: 0.9, ...}``: a structured
config, so ``optim.lr=abc`` or ``optim.lrr=1`` fail when Hydra composes, before any work.
Positional-only parameters are injected by the app (the model, data shapes) and are not
part of the config.
"""

from __future__ import annotations

import dataclasses

from hydra.core.config_store import ConfigStore

from toolkit.app.schemas import NODES
from toolkit.app.signature_nodes import node_from_signature
from toolkit.registry import REGISTRIES, Registry


def config_node(registry: Registry, name: str) -> type:
    """A dataclass ``{name: <entry>, <hyperparameter>: <default>, ...}`` for one entry."""
    first = [("name", str, dataclasses.field(default=name))]
    class_name = f"{registry.kind}_{name}".title().replace("_", "")
    return node_from_signature(registry.get(name), class_name, first=first)


def register_configs() -> None:
    """Store a node for every entry of every registry that has a config group, and the
    typed ``trainer`` and ``logger`` nodes."""
    store = ConfigStore.instance()
    for registry in REGISTRIES.values():
        if registry.group is None:
            continue
        for name in registry.names():
            store.store(group=registry.group, name=name, node=config_node(registry, name))
    for (group, name), node in NODES.items():
        store.store(group=group, name=name, node=node)
    store.store(group="hydra/help", name="toolkit", node=help_config())


def registry_listing() -> str:
    """One line per registry: ``activation: elu, gelu, ...``."""
    return "\n".join(
        f"  {registry.kind + ':':<13} {', '.join(registry.names())}"
        for registry in REGISTRIES.values()
    )


def help_config() -> dict[str, str]:
    """The ``hydra/help`` node: groups, the registries' entries and the config."""
    header = (
        "toolkit: NumPy-only deep learning, configured by Hydra, tracked by MLflow.\n\n"
        "Train:   python -m toolkit +model=mlp optim=adam\n"
        "Sweep:   python -m toolkit -m +model=mlp optim=sgd,adam\n"
        "Choose a model with +model=NAME; any key below can be overridden (optim.lr=0.01)."
    )
    template = (
        "${hydra.help.header}\n\n"
        "== Configuration groups (group=option; model is appended: +model=NAME) ==\n"
        "$APP_CONFIG_GROUPS\n\n"
        "== Registered components (choose by name, e.g. model.activation=tanh) ==\n"
        f"{registry_listing()}\n\n"
        "== Config ==\n$CONFIG\n"
        "${hydra.help.footer}"
    )
    footer = "Hydra's own options: python -m toolkit --hydra-help"
    return {"app_name": "toolkit", "header": header, "footer": footer, "template": template}
