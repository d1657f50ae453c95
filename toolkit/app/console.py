"""What a run tells the person running it: one logger, ``toolkit``, whose lines go to the
console (stderr) and to the run folder's ``toolkit.log`` (Hydra's job log file).

Hydra configures the handlers (``conf/hydra/job_logging/toolkit.yaml``): plain lines on
the console, time-stamped ones in the file, other libraries only from WARNING up. Jobs of
a parallel sweep prefix their console lines with their label, so interleaved lines can be
told apart. Records marked ``file_only`` (the per-epoch metric lines, which the progress
bar already shows) go to the file alone.
"""

from __future__ import annotations

import logging
import sys

from toolkit.train.callbacks import Callback

LOGGER = logging.getLogger("toolkit")
_label = {"text": ""}


def set_label(label: str) -> None:
    """Prefix this process's console lines with ``[label]`` ('' for none)."""
    _label["text"] = label


def _configured() -> bool:
    """Whether Hydra set up the job log (a handler with :class:`ConsoleFilter`)."""
    handlers = logging.getLogger().handlers + LOGGER.handlers
    return any(isinstance(f, ConsoleFilter) for h in handlers for f in h.filters)


def _emit(level: int, message: str, file_only: bool = False) -> None:
    if _configured():
        LOGGER.log(level, message, extra={"file_only": file_only})
    elif not file_only:  # outside a Hydra job (the library API, tests): plain stderr
        print(message, file=sys.stderr)


def say(message: str, file_only: bool = False) -> None:
    """An information line (model summary, progress, the final line)."""
    _emit(logging.INFO, message, file_only)


def warn(message: str) -> None:
    _emit(logging.WARNING, f"warning: {message}")


def error(message: str) -> None:
    """The one ``error:`` line of a run that stops."""
    _emit(logging.ERROR, f"error: {message}")


class ConsoleFilter(logging.Filter):
    """Drops ``file_only`` records from the console and adds the job label."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        if _label["text"] and not getattr(record, "labelled", False):
            record.msg = f"[{_label['text']}] {record.msg}"
            record.labelled = True
        return True


class EpochLog(Callback):
    """One line per epoch with its metrics (``file_only`` when a progress bar shows them)."""

    def __init__(self, file_only: bool) -> None:
        self.file_only = file_only

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        shown = "  ".join(f"{k}={v:.4g}" for k, v in logs.items() if not k.startswith("grad_norm/"))
        say(f"epoch {epoch}/{trainer.epochs}: {shown}", file_only=self.file_only)
