"""``python -m toolkit``: the Hydra entry point (see toolkit.app.cli).

A signal while the toolkit is still starting (importing) ends it quietly with the shell's
exit code (128 + the signal); nothing has been recorded yet. Once a run starts, the run
lifecycle handles signals itself (toolkit.app.interrupts).
"""

import signal
import sys


def _quit(signum: int, frame) -> None:
    sys.exit(128 + signum)


if __name__ == "__main__":
    for _signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(_signum, _quit)
    try:
        from toolkit.app.cli import main

        main()
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
