"""Check ``group=option`` command-line overrides before Hydra runs, with close matches.

Hydra's own message for an unknown option is a multi-line error without suggestions;
this check answers ``optim=adma`` with one line naming ``adam`` and ``adamw``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import tempfile
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from toolkit.registry import ConfigError, close_matches, unknown_name_message

_OVERRIDE = re.compile(r"^[+~]{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<value>[^=]*)$")
_SWEEP_SYNTAX = set("()[]{}$*")


def group_options(conf_dir: Path, group: str) -> list[str]:
    """Options of a config group: YAML files under ``conf_dir/group`` and ConfigStore nodes."""
    names = {p.stem for p in (conf_dir / group).glob("*.yaml")}
    with contextlib.suppress(OSError):  # OSError: the group is not in the ConfigStore
        names |= {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)}
    return sorted(names)


# Hydra's groups whose options a user picks on the command line; Hydra's plugins register
# them in the ConfigStore (joblib, submitit_local, optuna, ...), conf/hydra/ adds presets.
HYDRA_GROUPS = ("hydra/launcher", "hydra/sweeper")


def config_groups(conf_dir: Path) -> list[str]:
    """Config groups: sub-folders of ``conf_dir`` and ConfigStore groups (not hydra's)."""
    groups = {p.name for p in conf_dir.iterdir() if p.is_dir()}
    groups |= {g for g in ConfigStore.instance().repo if not g.endswith(".yaml")}
    return sorted(groups - {"hydra"})  # Hydra's own groups are checked by Hydra


def check_group_overrides(argv: list[str], conf_dir: Path) -> None:
    """Raise ConfigError for the first ``group=option`` whose option does not exist.

    Sweeps (``optim=sgd,adam``) are checked option by option; values using Hydra's sweep
    functions (``choice(...)``, ``range(...)``) or interpolations are left to Hydra.
    """
    groups = config_groups(conf_dir)
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
        options = group_options(conf_dir, group)
        for option in match["value"].split(","):
            if option and option != "null" and option not in options:
                raise ConfigError(unknown_name_message(group, option, options, key=group))


def _dotted_overrides(argv: list[str]) -> list[str]:
    """Command-line overrides Hydra composes into the job config (not flags, not hydra.*)."""
    return [a for a in argv if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]


def _keys_near(cfg, full_key: str) -> list[str]:
    """Sibling keys of ``full_key`` in ``cfg`` that look like its last part."""
    parent, _, leaf = full_key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return []
    return [f"{parent}.{k}" if parent else k for k in close_matches(leaf, list(node.keys()))]


def _one_line(error: BaseException) -> str:
    """Hydra's message and its cause's as one line (indented detail lines dropped)."""
    text = f"{error}\n{error.__cause__ or ''}"
    return "; ".join(line.strip() for line in text.splitlines() if line and line[0] != " ")


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


def check_composition(argv: list[str], conf_dir: Path, multirun: bool = False) -> None:
    """Compose the job config once so that unknown keys and wrong value types fail with one
    line, e.g. ``optim.lrr is not a config key; did you mean: optim.lr?``. A sweep
    (``multirun``) is checked with its first job's values (:func:`first_job`)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    overrides = _dotted_overrides(first_job(argv) if multirun else argv)
    with initialize_config_dir(str(conf_dir), version_base="1.3"):
        try:
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as err:
            cause = err.__cause__ or err
            full_key = getattr(cause, "full_key", None)
            if isinstance(cause, ConfigKeyError | ConfigAttributeError) and full_key:
                base = [o for o in overrides if not o.lstrip("+~").startswith(f"{full_key}=")]
                near = _keys_near(compose("config", overrides=base), full_key)
                hint = f"; did you mean: {', '.join(near)}?" if near else ""
                raise ConfigError(
                    f"{full_key} is not a config key{hint} (to add a new key: +{full_key}=...)"
                ) from None
            raise ConfigError(_one_line(err)) from None
    if multirun:
        check_sweep_values(argv, cfg, config_groups(conf_dir))
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [a.split("=", 1)[1] for a in argv if a.startswith(f"{key}=")]
    check_writable(Path(given[-1] if given else OmegaConf.select(cfg, key)), key)


def check_sweep_values(argv: list[str], cfg: DictConfig, groups: list[str]) -> None:
    """Raise ConfigError for the first value of a sweep over a typed key that its type
    rejects (``trainer.epochs=5,ten``), assigning each value to the composed ``cfg``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    for arg in _dotted_overrides(argv):
        with contextlib.suppress(HydraException):  # unparsable: composing reported it
            override = parser.parse_override(arg)
            discrete = override.is_choice_sweep() or override.is_range_sweep()
            if not discrete or isinstance(override.value(), Glob):
                continue
            key = override.get_key_element()
            if key.startswith(("+", "~")) or key in groups:  # new keys; group options
                continue
            for value in override.sweep_iterator():
                try:
                    OmegaConf.update(copy.deepcopy(cfg), key, value, merge=False)
                except OmegaConfBaseException as err:
                    raise ConfigError(f"{key}={value}: {str(err).splitlines()[0]}") from None


def check_writable(folder: Path, key: str) -> None:
    """ConfigError unless ``folder`` exists writable or can be created (its nearest
    existing ancestor is writable)."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    try:  # permissions alone do not tell (root, read-only mounts, /proc): try it
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".toolkit-write-check-"))
    except OSError as err:
        raise ConfigError(
            f"output folder {folder} cannot be created in {existing} ({err.strerror}); "
            f"set {key}=<writable folder>"
        ) from None
