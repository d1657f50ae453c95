"""toolkit: a NumPy-only deep-learning research toolkit.

Import the pieces you need: ``toolkit.nn`` (layers, activations, losses), ``toolkit.optim``
(optimizers, schedules), ``toolkit.data``, ``toolkit.models``, ``toolkit.train``.
"""

__version__ = "0.1.0"
