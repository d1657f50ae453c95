"""Turn every registry entry into a Hydra config-group option, generated from its signature.

``@optimizers.register("adam")`` on ``Adam(model, /, lr=0.001, beta1=0.9, ...)`` becomes the
option ``optim=adam`` holding ``{name: adam, lr: 0.001, beta1: 0.9, ...}``: a structured
config, so ``optim.lr=abc`` or ``optim.lrr=1`` fail when Hydra composes, before any work.
Positional-only parameters are injected by the app (the model, data shapes) and are not
part of the config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hydra.core.config_store import ConfigStore

from toolkit.app.schemas import NODES
from toolkit.app.signature_nodes import node_from_signature
from toolkit.registry import PLUGIN_FAILURES, REGISTRIES, Registry

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # shipped inside the package


def config_node(registry: Registry, name: str) -> type:
    """A dataclass ``{name: <entry>, <hyperparameter>: <default>, ...}`` for one entry."""
    first = [("name", str, dataclasses.field(default=name))]
    class_name = f"{registry.kind}_{name}".title().replace("_", "")
    return node_from_signature(registry.get(name), class_name, first=first)


ARCHITECTURE_GROUP = "architecture"  # every model's bare node, extended by its recipe


def recipe_files(conf_dir: Path = CONF_DIR) -> dict[str, Path]:
    """Model recipes: ``conf/model/<name>.yaml`` (``+model=<name>`` composes it)."""
    return {path.stem: path for path in sorted((conf_dir / "model").glob("*.yaml"))}


def register_configs() -> None:
    """Store a node for every entry of every registry that has a config group, the typed
    nodes of :mod:`toolkit.app.schemas` and the help.

    Models are stored twice: as ``architecture/<name>`` (the builder's signature) and as
    ``model/<name>``, unless ``conf/model/<name>.yaml`` is the model's recipe, which
    extends ``architecture/<name>`` with its training settings."""
    store = ConfigStore.instance()
    recipes = recipe_files()
    for registry in REGISTRIES.values():
        if registry.group is None:
            continue
        for name in registry.names():
            node = config_node(registry, name)
            if registry.group == "model":
                store.store(group=ARCHITECTURE_GROUP, name=name, node=node)
                if name in recipes:
                    continue
            store.store(group=registry.group, name=name, node=node)
    for (group, name), node in NODES.items():
        store.store(group=group, name=name, node=node)
    store.store(group="hydra/help", name="toolkit", node=help_config())


def registry_listing() -> str:
    """One line per registry: ``activation: elu, gelu, ...``."""
    return "\n".join(
        f"  {registry.kind + ':':<13} {', '.join(registry.names())}"
        for registry in REGISTRIES.values()
    )


def recipe_settings(path: Path) -> str:
    """What a recipe file sets, as overrides: ``schedule=cosine model.dropout=0.1 ...``."""
    import yaml

    content = yaml.safe_load(path.read_text()) or {}
    settings = []
    for entry in content.pop("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.startswith("override "):
                    settings.append(f"{key.removeprefix('override ').lstrip('/')}={value}")
    content.pop("recipe", None)

    def flat(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                flat(value, f"{prefix}{key}.")
        else:
            value = _yaml_value(node)
            settings.append(f"{prefix[:-1]}={value}")

    flat(content, "")
    return " ".join(settings)


def _yaml_value(value: object) -> str:
    """A value as written on the command line: ``[32,64]``, ``true``, ``0.1``."""
    if isinstance(value, list):
        return "[" + ",".join(_yaml_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def recipe_listing() -> str:
    return "\n".join(
        f"  {name + ':':<17} {recipe_settings(path)}" for name, path in recipe_files().items()
    )


def _literal(text: str) -> str:
    """``text`` safe inside Hydra's help template (string.Template, OmegaConf)."""
    return text.replace("${", "$ {").replace("$", "$$")


def failure_listing() -> str:
    """The plugins that failed to load, if any, as a help section."""
    if not PLUGIN_FAILURES:
        return ""
    lines = "\n".join(f"  {_literal(str(failure))}" for failure in PLUGIN_FAILURES)
    return f"== Plugins that failed to load (not registered) ==\n{lines}\n\n"


def help_config() -> dict[str, str]:
    """The ``hydra/help`` node: groups, the registries' entries and the config."""
    header = (
        "toolkit: NumPy-only deep learning, configured by Hydra, tracked by MLflow.\n\n"
        "Train:   python -m toolkit +model=mlp optim=adam\n"
        "Sweep:   python -m toolkit -m +model=mlp optim=sgd,adam\n"
        "Preview: python -m toolkit -m +experiment=activation_pairs --dry-run "
        "(its jobs and an estimated wall time; runs nothing)\n"
        "Choose a model with +model=NAME; any key below can be overridden (optim.lr=0.01)."
    )
    template = (
        "${hydra.help.header}\n\n"
        "== Configuration groups (group=option; model is appended: +model=NAME) ==\n"
        "$APP_CONFIG_GROUPS\n\n"
        "== Registered components (choose by name, e.g. model.activation=tanh) ==\n"
        f"{registry_listing()}\n\n"
        "== Model recipes (what +model=NAME sets; the command line overrides any of it) ==\n"
        f"{recipe_listing()}\n\n"
        f"{failure_listing()}"
        "== Config ==\n$CONFIG\n"
        "${hydra.help.footer}"
    )
    footer = "Hydra's own options: python -m toolkit --hydra-help"
    return {"app_name": "toolkit", "header": header, "footer": footer, "template": template}
