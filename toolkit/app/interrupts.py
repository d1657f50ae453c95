"""Signals as exceptions: SIGTERM (``timeout``, a scheduler, a container stop) and SIGHUP
(a closed terminal) interrupt a run the way Ctrl-C (SIGINT) does, so one code path ends
the run KILLED, keeps its last complete epoch and says how to resume.

Exit codes follow the shell's convention, 128 + the signal number: 130 for SIGINT, 143 for
SIGTERM, 129 for SIGHUP.

Every handler here also records the signal. Python raises a signal's exception wherever
the main thread happens to be, and library code sometimes loses it there (a Ctrl-C that
landed inside Hydra's writing of the job's config was seen to vanish and the run trained
on), so the run lifecycle calls :func:`raise_if_received` at its safe points: a signal
that was received stops the run even when its exception was swallowed.
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


received: list[int] = []
"""The signals received and not yet handled, first first (``python -m toolkit`` puts its
start-up handlers' list here, so a signal that arrived while Hydra set the job up counts)."""


def raise_interrupted(signum: int, frame) -> None:
    """A signal handler: record ``signum`` and raise :class:`Interrupted` for it."""
    received.append(signum)
    raise Interrupted(signum)


def raise_keyboard_interrupt(signum: int, frame) -> None:
    """The SIGINT handler: record it and raise KeyboardInterrupt, as Python's own does."""
    received.append(signum)
    raise KeyboardInterrupt


def raise_if_received() -> None:
    """At a safe point: raise :class:`Interrupted` for the first signal received and not
    yet handled, in case the exception its handler raised was swallowed where it landed."""
    if received:
        raise Interrupted(received[0])


def handled() -> None:
    """The interruption has been dealt with (the run ended KILLED): forget its signals."""
    received.clear()


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread
    (SIGINT raises KeyboardInterrupt), all recorded; the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, raise_interrupted) for s in TRAPPED}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, raise_keyboard_interrupt)
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
