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


def _folders(conf_dirs: Path | list[Path]) -> list[Path]:
    return [conf_dirs] if isinstance(conf_dirs, Path) else list(conf_dirs)


def group_options(conf_dirs: Path | list[Path], group: str) -> list[str]:
    """Options of a config group: YAML files under ``<dir>/group`` of each config folder
    (the toolkit's, ``--config-dir``, ``hydra.searchpath``) and ConfigStore nodes."""
    names = {p.stem for folder in _folders(conf_dirs) for p in (folder / group).glob("*.yaml")}
    with contextlib.suppress(OSError):  # OSError: the group is not in the ConfigStore
        names |= {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)}
    return sorted(names)


# Hydra's groups whose options a user picks on the command line; Hydra's plugins register
# them in the ConfigStore (joblib, submitit_local, optuna, ...), conf/hydra/ adds presets.
HYDRA_GROUPS = ("hydra/launcher", "hydra/sweeper")


def config_groups(conf_dirs: Path | list[Path]) -> list[str]:
    """Config groups: sub-folders of the config folders and ConfigStore groups (not
    hydra's)."""
    groups = {p.name for folder in _folders(conf_dirs) for p in folder.iterdir() if p.is_dir()}
    groups |= {g for g in ConfigStore.instance().repo if not g.endswith(".yaml")}
    return sorted(groups - {"hydra"})  # Hydra's own groups are checked by Hydra


def check_group_overrides(argv: list[str], conf_dirs: Path | list[Path]) -> None:
    """Raise ConfigError for the first ``group=option`` whose option does not exist.

    Sweeps (``optim=sgd,adam``) are checked option by option; values using Hydra's sweep
    functions (``choice(...)``, ``range(...)``) or interpolations are left to Hydra.
    """
    groups = config_groups(conf_dirs)
    for arg in argv:
        match = _OVERRIDE.match(arg)
        if not match or _SWEEP_SYNTAX & set(match["value"]):
            continue
        group = match["group"]
        if group in HYDRA_GROUPS:
            from hydra.core.plugins import Plugins

            Plugins.instance()  # imports Hydra's plugins, which register their options
        elif group not in groups:
            continue
        options = group_options(conf_dirs, group)
        for option in match["value"].split(","):
            if option and option != "null" and option not in options:
                raise ConfigError(unknown_name_message(group, option, options, key=group))


def _dotted_overrides(argv: list[str]) -> list[str]:
    """Command-line overrides Hydra composes into the job config (not flags, not hydra.*)."""
    return [a for a in argv if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]


def first_job(argv: list[str]) -> list[str]:
    """``argv`` with every sweep override reduced to its first value (``optim.lr=0.1,0.01``
    -> ``optim.lr=0.1``; an Optuna ``interval(a, b)`` -> ``a``; a ``glob`` is dropped):
    the overrides of one job, whose composition checks the sweep's keys before it starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob, IntervalSweep
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    found = []
    for arg in argv:
        try:
            override = None if arg.startswith("-") else parser.parse_override(arg)
        except HydraException:  # left to the composition, which reports it
            override = None
        if override is None or not override.is_sweep_override():
            found.append(arg)
            continue
        value = override.value()
        if isinstance(value, IntervalSweep):
            found.append(f"{override.get_key_element()}={value.start}")
        elif override.is_choice_sweep() or override.is_range_sweep():
            if isinstance(value, Glob):  # its options are known only to Hydra's loader
                continue
            first = next(iter(override.sweep_string_iterator()), None)
            if first is not None:
                found.append(f"{override.get_key_element()}={first}")
    return found
