"""``python -m toolkit``: the Hydra entry point (see toolkit.app.cli).

A signal while the toolkit is still starting (importing) ends it quietly with the shell's
exit code (128 + the signal); nothing has been recorded yet. Once a run starts, the run
lifecycle handles signals itself (toolkit.app.interrupts). Once it has ended, further
signals are ignored while the process shuts down (joining the tracking thread, ending an
interrupted sweep's parent run), so a late Ctrl-C cannot turn an ended run into a
traceback.
"""

import signal
import sys

_received: list[int] = []  # becomes toolkit.app.interrupts.received once that is imported


def _quit(signum: int, frame) -> None:
    _received.append(signum)
    sys.exit(128 + signum)


def _ctrl_c(signum: int, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


if __name__ == "__main__":
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
        signal.signal(signal.SIGINT, _ctrl_c)
    for _signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(_signum, _quit)
    try:
        from toolkit.app import interrupts

        interrupts.received = _received
        from toolkit.app.cli import main

        main()
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    finally:  # the run has ended (or says how to resume): shutting down is not interrupted
        for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(_signum, signal.SIG_IGN)
