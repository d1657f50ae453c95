"""Range checks of a composed config that need no data: one ``ConfigError`` line naming
the key, before any folder, run or file exists.

Types are checked by the typed nodes when Hydra composes (``trainer.epochs=ten``); this
module checks what a type cannot say (``trainer.epochs=0``, ``split.val=0.3`` summing to
1.2, ``probe.lr=-1``, an early-stopping monitor the trainer never logs). It runs twice: in
the command line's pre-check (a sweep's first job and every swept value, before the parent
run exists) and in the run's build step. Checks that need the dataset or the model (shapes,
a task's loss) stay with the build.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from toolkit.analysis.latent_probe import ProbeSettings
from toolkit.app.config_keys import augmenter_from
from toolkit.registry import ConfigError, close_matches

DTYPES = ("float32", "float64")
STOPPING_MODES = ("auto", "min", "max")
EPOCH_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "lr")  # Trainer's per epoch
TOLERANCE = 1e-6
_ABSENT = object()

Check = Callable[[Any], str | None]  # value -> what it must be, or None when it is fine


def integer(minimum: int) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"an integer >= {minimum}"

    return check


def number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """A real number in the interval (``low``, ``high``) with open or closed ends."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    wanted = f"> {low}" if low_open and high == math.inf else f"in {left}{low}, {high}{right}"
    if not low_open and high == math.inf:
        wanted = f">= {low}"

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return f"a number {wanted}"
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return None if above and below else wanted

    return check


def optional(inner: Check) -> Check:
    def check(value: Any) -> str | None:
        problem = None if value is None else inner(value)
        return None if problem is None else f"null or {problem}"

    return check


def one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"one of: {', '.join(choices)}"

    return check


FRACTION = number(0, 1)
RULES: list[tuple[str, Check]] = [
    ("seed", integer(0)),
    ("dtype", one_of(DTYPES)),
    ("trainer.epochs", integer(1)),
    ("trainer.batch_size", integer(1)),
    ("trainer.threads", optional(integer(1))),
    ("trainer.early_stopping.patience", integer(1)),
    ("trainer.early_stopping.mode", one_of(STOPPING_MODES)),
    ("trainer.early_stopping.min_delta", number(0)),
    ("split.train", number(0, 1, low_open=True)),
    ("split.val", number(0, 1, high_open=True)),
    ("split.test", number(0, 1, high_open=True)),
    ("augment.p", FRACTION),
]


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value at dotted ``key``, or _ABSENT (no such key, or ``???``)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node or OmegaConf.is_missing(node, leaf):
        return _ABSENT
    value = node[leaf]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one line, naming the key and what it must be) for the first
    value of ``cfg`` out of range. ``cfg`` is a job's composed config (a ``hydra`` node, if
    present, is ignored); groups it lacks are not checked."""
    for key, check in RULES:
        value = _value(cfg, key)
        if value is not _ABSENT:
            problem = check(value)
            if problem is not None:
                raise ConfigError(f"{key} must be {problem}; got {value!r}")
    _check_split_sum(cfg)
    _check_early_stopping(cfg)
    if _value(cfg, "augment") is not _ABSENT:
        augmenter_from(_value(cfg, "augment"))  # names, keywords, values
    if _value(cfg, "probe") is not _ABSENT:
        try:
            ProbeSettings(**_value(cfg, "probe"))
        except TypeError as err:
            raise ConfigError(f"probe: {err}") from None


def _check_split_sum(cfg: DictConfig) -> None:
    fractions = {name: _value(cfg, f"split.{name}") for name in ("train", "val", "test")}
    if _ABSENT in fractions.values():
        return
    total = sum(fractions.values())
    if abs(total - 1) > TOLERANCE:
        setting = " ".join(f"split.{name}={value}" for name, value in fractions.items())
        raise ConfigError(
            f"split.train + split.val + split.test = {total:g} ({setting}) must be 1; "
            "e.g. split.train=0.8 split.val=0 split.test=0.2, or split.test=0 to keep the "
            "dataset's own test set and split.train + split.val = 1"
        )


def _check_early_stopping(cfg: DictConfig) -> None:
    """The monitored metric must be one the trainer logs each epoch, and a ``val/*``
    metric needs a validation split."""
    if _value(cfg, "trainer.early_stopping.enabled") is not True:
        return
    key = "trainer.early_stopping.monitor"
    monitor = _value(cfg, key)
    if monitor not in EPOCH_METRICS:
        near = close_matches(str(monitor), list(EPOCH_METRICS))
        hint = f"did you mean: {', '.join(near)}? " if near else ""
        raise ConfigError(
            f"{key}={monitor!r} is not a metric the trainer logs each epoch; "
            f"{hint}choose one of: {', '.join(EPOCH_METRICS)}"
        )
    if str(monitor).startswith("val/") and _value(cfg, "split.val") == 0:
        raise ConfigError(
            f"{key}={monitor} needs a validation split but split.val=0; set split.val > 0 "
            f"(e.g. split=default) or monitor {monitor.replace('val/', 'train/')}"
        )


def nonzero_integer(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value != 0
    return None if ok else "a non-zero integer (-1: all cores)"


def auto_or_integer(value: Any) -> str | None:
    return None if value == "auto" or integer(1)(value) is None else "auto or an integer >= 1"


_QUEUE_RULES: list[tuple[str, Check]] = [
    ("timeout_min", integer(1)),
    ("cpus_per_task", optional(integer(1))),
    ("gpus_per_node", optional(integer(0))),
    ("tasks_per_node", integer(1)),
    ("mem_gb", optional(integer(1))),
    ("nodes", integer(1)),
]
# Hydra's launchers and sweepers (by the class name of their _target_) -> field checks
HYDRA_RULES: dict[str, list[tuple[str, Check]]] = {
    "JoblibLauncher": [
        ("n_jobs", nonzero_integer),
        ("backend", optional(one_of(("loky", "multiprocessing", "threading")))),
        ("prefer", optional(one_of(("processes", "threads")))),
        ("require", optional(one_of(("sharedmem",)))),
        ("verbose", integer(0)),
        ("timeout", optional(number(0, low_open=True))),
        ("batch_size", auto_or_integer),
        ("mmap_mode", optional(one_of(("r+", "r", "w+", "c")))),
    ],
    "LocalLauncher": _QUEUE_RULES,
    "SlurmLauncher": [
        *_QUEUE_RULES,
        ("array_parallelism", integer(1)),
        ("max_num_timeout", integer(0)),
        ("signal_delay_s", integer(0)),
    ],
    "BasicSweeper": [("max_batch_size", optional(integer(1)))],
    "OptunaSweeper": [
        ("n_trials", integer(1)),
        ("n_jobs", integer(1)),
        ("max_failure_rate", FRACTION),
    ],
}
HYDRA_RULES["ToolkitOptunaSweeper"] = HYDRA_RULES["OptunaSweeper"]


def validate_hydra(hydra: DictConfig) -> None:
    """Raise ConfigError for the first launcher or sweeper setting out of range
    (``hydra.launcher.n_jobs=0``), naming the key and the chosen launcher or sweeper."""
    choices = hydra.runtime.choices if "runtime" in hydra else {}
    for part in ("launcher", "sweeper"):
        node = hydra.get(part)
        if not isinstance(node, DictConfig):
            continue
        target = str(node.get("_target_", "")).rpartition(".")[2]
        for field_name, check in HYDRA_RULES.get(target, []):
            value = _value(node, field_name)
            problem = None if value is _ABSENT else check(value)
            if problem is not None:
                chosen = f" (hydra/{part}={choices.get(f'hydra/{part}')})"
                raise ConfigError(
                    f"hydra.{part}.{field_name} must be {problem}; got {value!r}{chosen}"
                )
