"""What a ``python -m toolkit ...`` command line asks for, read the way Hydra reads it.

Hydra's flags (``-m``, ``--config-dir DIR``, ``-cn NAME``, ``--cfg job``, ...) are told
apart from the overrides (``optim=adam``, ``trainer.epochs=3``), and the folders Hydra will
search for configs are collected: the toolkit's own ``conf/``, ``--config-dir`` and every
``hydra.searchpath`` entry, so that the pre-check finds a user's ``experiment/mine.yaml``
exactly where Hydra will.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.registry import ConfigError

# Hydra's flags that take a value (argparse: "--flag VALUE" or "--flag=VALUE").
_VALUE_FLAGS = {
    "-cp": "config_path",
    "--config-path": "config_path",
    "-cn": "config_name",
    "--config-name": "config_name",
    "-cd": "config_dir",
    "--config-dir": "config_dir",
    "-c": "cfg",
    "--cfg": "cfg",
    "-p": "package",
    "--package": "package",
    "--experimental-rerun": "rerun",
}
_OPTIONAL_VALUE_FLAGS = {"-i", "--info"}  # --info [all|config|defaults|...]
_INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
MULTIRUN = {"-m", "--multirun"}
HELP = {"-h", "--help", "--hydra-help"}
DRY_RUN = "--dry-run"  # the toolkit's own flag (toolkit.app.dry_run), not Hydra's
SEARCHPATH_KEY = "hydra.searchpath"


@dataclass
class CommandLine:
    """A parsed command line.

    Attributes:
        overrides: the override arguments, in order (``+model=mlp``, ``hydra.run.dir=x``).
        flags: Hydra's flags as given (``{"-m": None, "--config-dir": "mine"}``).
        config_name: the primary config (``config`` unless ``--config-name``).
    """

    overrides: list[str] = field(default_factory=list)
    flags: dict[str, str | None] = field(default_factory=dict)
    config_name: str = "config"

    @property
    def multirun(self) -> bool:
        return bool(MULTIRUN & self.flags.keys())

    @property
    def help(self) -> bool:
        return bool(HELP & self.flags.keys())

    @property
    def composes_a_job(self) -> bool:
        """Whether Hydra will run a job (not only print help, info or the config)."""
        shown = {"-c", "--cfg", "-i", "--info", "-sc", "--shell-completion"}
        return not (self.help or shown & self.flags.keys() or "config_path" in self._named())

    def check_modes(self) -> None:
        """Raise ConfigError when the line asks Hydra for two things at once (``-m`` and
        ``--cfg job``): Hydra does one of multirun, --cfg, --info, --shell-completion."""
        modes = [
            names[0]
            for names in (
                ("-m", "--multirun"),
                ("--cfg", "-c"),
                ("--info", "-i"),
                ("-sc", "--shell-completion"),
            )
            if set(names) & self.flags.keys()
        ]
        if len(modes) > 1:
            raise ConfigError(
                f"{' and '.join(modes)} cannot be combined: Hydra does one of --multirun, "
                "--cfg, --info, --shell-completion (--cfg job shows one job's config)"
            )

    def _named(self) -> dict[str, str | None]:
        return {_VALUE_FLAGS[f]: v for f, v in self.flags.items() if f in _VALUE_FLAGS}

    def config_dirs(self, conf_dir: Path) -> list[Path]:
        """Folders with configs, in Hydra's order: ``conf_dir``, ``--config-dir``, then
        the ``hydra.searchpath`` entries (``file://`` and ``pkg://``) that exist."""
        found = [conf_dir]
        given = self._named().get("config_dir")
        if given:
            found.append(Path(given).absolute())
        for entry in self.searchpath():
            folder = _search_folder(entry)
            if folder is not None:
                found.append(folder)
        return list(dict.fromkeys(found))

    def searchpath(self) -> list[str]:
        """The ``hydra.searchpath=[...]`` entries given on the command line."""
        entries: list[str] = []
        for override in self.overrides:
            key, _, value = override.lstrip("+~").partition("=")
            if key == SEARCHPATH_KEY:
                entries = [e.strip().strip("'\"") for e in value.strip("[]").split(",") if e]
        return entries

    def compose_overrides(self) -> list[str]:
        """The overrides to compose the job's config with: ``--config-dir`` becomes a
        ``hydra.searchpath`` entry, as Hydra adds it to the search path."""
        given = self._named().get("config_dir")
        entries = self.searchpath() + ([f"file://{Path(given).absolute()}"] if given else [])
        rest = [o for o in self.overrides if o.lstrip("+~").partition("=")[0] != SEARCHPATH_KEY]
        return [*rest, f"{SEARCHPATH_KEY}=[{','.join(entries)}]"] if entries else rest


def _search_folder(entry: str) -> Path | None:
    """The folder of a search-path entry: ``file://DIR`` or ``pkg://package.sub``."""
    scheme, _, location = entry.partition("://")
    if scheme == "file":
        folder = Path(location).absolute()
    elif scheme == "pkg":
        try:
            spec = importlib.util.find_spec(location.replace("/", "."))
        except (ImportError, ValueError):
            return None
        locations = list(spec.submodule_search_locations or []) if spec else []
        folder = Path(locations[0]) if locations else None
    else:
        return None
    return folder if folder is not None and folder.is_dir() else None


def parse(argv: list[str]) -> CommandLine:
    """Split ``argv`` (without the program name) into Hydra's flags and the overrides."""
    line = CommandLine()
    args = iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        if flag in _VALUE_FLAGS:
            line.flags[flag] = value if eq else next(args, None)
        elif arg in _OPTIONAL_VALUE_FLAGS:
            line.flags[arg] = None
        elif arg.startswith("-"):
            line.flags[flag] = value if eq else None
        elif arg in _INFO_TOPICS and _OPTIONAL_VALUE_FLAGS & line.flags.keys():
            continue
        else:
            line.overrides.append(arg)
    name = line._named().get("config_name")
    if name:
        line.config_name = name
    return line
