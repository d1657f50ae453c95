"""Check ``group=option`` command-line overrides before Hydra runs, with close matches.

Hydra's own message for an unknown option is a multi-line error without suggestions;
this check answers ``optim=adma`` with one line naming ``adam`` and ``adamw``.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from hydra.core.config_store import ConfigStore

from toolkit.registry import ConfigError, unknown_name_message

_OVERRIDE = re.compile(r"^[+~]{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<value>[^=]*)$")
_SWEEP_SYNTAX = set("()[]{}$*")


def group_options(conf_dir: Path, group: str) -> list[str]:
    """Options of a config group: YAML files under ``conf_dir/group`` and ConfigStore nodes."""
    names = {p.stem for p in (conf_dir / group).glob("*.yaml")}
    with contextlib.suppress(OSError):  # OSError: the group is not in the ConfigStore
        names |= {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)}
    return sorted(names)


def config_groups(conf_dir: Path) -> list[str]:
    """Config groups: sub-folders of ``conf_dir`` and ConfigStore groups (not hydra's)."""
    groups = {p.name for p in conf_dir.iterdir() if p.is_dir()}
    groups |= {g for g in ConfigStore.instance().repo if not g.endswith(".yaml") and g != "hydra"}
    return sorted(groups)


def check_group_overrides(argv: list[str], conf_dir: Path) -> None:
    """Raise ConfigError for the first ``group=option`` whose option does not exist.

    Sweeps (``optim=sgd,adam``) are checked option by option; values using Hydra's sweep
    functions (``choice(...)``, ``range(...)``) or interpolations are left to Hydra.
    """
    groups = config_groups(conf_dir)
    for arg in argv:
        match = _OVERRIDE.match(arg)
        if not match or match["group"] not in groups or _SWEEP_SYNTAX & set(match["value"]):
            continue
        group = match["group"]
        options = group_options(conf_dir, group)
        for option in match["value"].split(","):
            if option and option != "null" and option not in options:
                raise ConfigError(unknown_name_message(group, option, options, key=group))
