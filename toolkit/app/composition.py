"""The pre-check's composition: compose the job's config once, as Hydra will, and turn
whatever is wrong into one line, before Hydra creates a folder or a run.

Hydra's own messages span many lines (or are tracebacks, for a YAML file indented with a
tab); here an unknown key at any depth gets close matches
(``trainer.early_stoping is not a config key; did you mean: trainer.early_stopping?``), a
broken YAML file its path, line and column, a value out of range the key and its range
(:mod:`toolkit.app.validate`). A sweep is checked with its first job and every value it
sweeps, the launcher and sweeper settings included.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from toolkit.app.command_line import CommandLine
from toolkit.app.overrides import config_groups, first_job
from toolkit.app.validate import validate_config, validate_hydra
from toolkit.registry import ConfigError, close_matches, one_line


def check_composition(line: CommandLine, conf_dir: Path) -> DictConfig:
    """Compose the job ``line`` asks for (a sweep: its first job) and check it; returns
    the composed config (with its ``hydra`` node). Raises ConfigError with one line."""
    overrides = line.compose_overrides()
    cfg = compose_checked(
        conf_dir, line.config_name, first_job(overrides) if line.multirun else overrides
    )
    validate_config(cfg)
    if line.multirun:
        validate_hydra(cfg.hydra)
        swept = [*line.overrides, *sweeper_overrides(cfg)]
        check_sweep_values(swept, cfg, config_groups(line.config_dirs(conf_dir)))
    key = "hydra.sweep.dir" if line.multirun else "hydra.run.dir"
    check_writable(Path(OmegaConf.select(cfg, key)), key)
    return cfg


def compose_checked(conf_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Hydra's compose with its errors as one-line ConfigErrors."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    with initialize_config_dir(str(conf_dir), version_base="1.3"):
        try:
            return compose(config_name, overrides=overrides, return_hydra_config=True)
        except Exception as err:
            broken_yaml = _yaml_error(err)
            if broken_yaml is not None:
                raise ConfigError(broken_yaml) from None
            if not isinstance(err, HydraException | OmegaConfBaseException):
                # OmegaConf's own failures while merging an override (AttributeError...)
                raise ConfigError(
                    f"the command-line overrides could not be applied: {one_line(err, typed=True)}"
                ) from None
            cause = err.__cause__ or err
            full_key = getattr(cause, "full_key", None)
            if isinstance(cause, ConfigKeyError | ConfigAttributeError) and full_key:
                base = [o for o in overrides if not _sets(o, full_key)]
                composed = compose(config_name, overrides=base, return_hydra_config=True)
                raise ConfigError(unknown_key_message(composed, full_key)) from None
            raise ConfigError(one_line(err, cause=True, limit=None)) from None


def _sets(override: str, key: str) -> bool:
    """Whether ``override`` sets ``key``, a key below it or a node above it (a mapping
    such as ``logger.reference={...}`` sets ``logger.reference.values.a``)."""
    target = override.lstrip("+~").partition("=")[0]
    return target == key or target.startswith(f"{key}.") or key.startswith(f"{target}.")


def unknown_key_message(cfg: DictConfig, full_key: str) -> str:
    """``optim.lrr is not a config key; did you mean: optim.lr? ...`` (a launcher's or
    sweeper's key also names the one chosen)."""
    parent, _, leaf = full_key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    near = close_matches(leaf, list(node.keys())) if isinstance(node, DictConfig) else []
    hint = f"; did you mean: {', '.join(f'{parent}.{k}' if parent else k for k in near)}?"
    group = parent.replace(".", "/")
    if group.startswith("hydra/") and group in cfg.hydra.runtime.choices:
        keys = [k for k in node if k != "_target_"] if isinstance(node, DictConfig) else []
        chosen = f"{group}={cfg.hydra.runtime.choices[group]}"
        listed = ", ".join(keys) or "none"
        return (
            f"{full_key} is not a config key of {chosen}{hint if near else ''} (its keys: {listed})"
        )
    return (
        f"{full_key} is not a config key{hint if near else ''} (to add a new key: +{full_key}=...)"
    )


def _yaml_error(err: BaseException) -> str | None:
    """``config file F, line L, column C: problem`` for a YAML syntax error in ``err``'s
    chain (Hydra lets PyYAML's errors through as tracebacks)."""
    import yaml

    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, yaml.MarkedYAMLError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    mark = seen.problem_mark or seen.context_mark
    problem = seen.problem or seen.context or "invalid YAML"
    where = (
        f"config file {mark.name}, line {mark.line + 1}, column {mark.column + 1}"
        if mark
        else "a config file"
    )
    advice = " (YAML indents with spaces, not tabs)" if "\\t" in problem or "\t" in problem else ""
    return f"{where}: {problem}{advice}"


def sweeper_overrides(cfg: DictConfig) -> list[str]:
    """The basic sweeper's ``params`` (an experiment preset's sweep) as overrides."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    if not isinstance(params, DictConfig):
        return []
    return [f"{key}={value}" for key, value in params.items_ex(resolve=False)]


def check_sweep_values(argv: list[str], cfg: DictConfig, groups: list[str]) -> None:
    """Raise ConfigError for the first value of a sweep over a key that its type or its
    range rejects (``trainer.epochs=5,ten``, ``probe.lr=0.1,-1``), assigning each value to
    the composed ``cfg``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    for arg in argv:
        if arg.lstrip("+~").startswith("hydra"):
            continue
        with contextlib.suppress(HydraException):  # unparsable: composing reported it
            override = parser.parse_override(arg)
            discrete = override.is_choice_sweep() or override.is_range_sweep()
            if not discrete or isinstance(override.value(), Glob):
                continue
            key = override.get_key_element()
            if key.startswith(("+", "~")) or key in groups:  # new keys; group options
                continue
            for value in override.sweep_iterator():
                job = copy.deepcopy(cfg)
                try:
                    OmegaConf.update(job, key, value, merge=False)
                except OmegaConfBaseException as err:
                    raise ConfigError(f"{key}={value}: {str(err).splitlines()[0]}") from None
                validate_config(job)


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
