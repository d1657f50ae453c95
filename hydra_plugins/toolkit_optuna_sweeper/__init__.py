"""Hydra's Optuna sweeper, ending a search in which no trial finished like any other
failed sweep: the toolkit's sweep callback lists the failed jobs and the command exits 1.

The plain sweeper asks Optuna for the best trial after the last batch, which raises
``ValueError: No trials are completed yet.`` and leaves a traceback instead. Hydra loads
sweepers only from the ``hydra_plugins`` namespace package, hence this module's place.
"""

from __future__ import annotations

import sys

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ToolkitOptunaSweeper(OptunaSweeper):
    """:class:`OptunaSweeper` that returns (without a best trial) when every trial failed."""

    def sweep(self, arguments: list[str]) -> None:
        try:
            return super().sweep(arguments)
        except ValueError as err:
            if "No trials are completed" not in str(err):
                raise
            print("error: no trial of the Optuna search finished", file=sys.stderr)
            return None
