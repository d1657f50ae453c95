"""Signals as exceptions: SIGTERM (``timeout``, a scheduler, a container stop) and SIGHUP
(a closed terminal) interrupt a run the way Ctrl-C (SIGINT) does, so one code path ends
the run KILLED, keeps its last complete epoch and says how to resume.

Exit codes follow the shell's convention, 128 + the signal number: 130 for SIGINT, 143 for
SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

TRAPPED = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):  # noqa: N818  (like KeyboardInterrupt: not an Exception)
    """The run was stopped by a signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def as_interrupted(error: BaseException) -> Interrupted | None:
    """``error`` as an :class:`Interrupted` if it is one (Ctrl-C included), else None."""
    if isinstance(error, Interrupted):
        return error
    if isinstance(error, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    return None


def raise_interrupted(signum: int, frame) -> None:
    """A signal handler: raise :class:`Interrupted` for ``signum``."""
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread
    (SIGINT already raises KeyboardInterrupt); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, raise_interrupted) for s in TRAPPED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Within the block (ending a run), further SIGINT/SIGTERM/SIGHUP are ignored, so a
    second Ctrl-C cannot leave the run half-ended."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, *TRAPPED)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
