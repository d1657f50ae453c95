"""The toolkit model as an MLflow pyfunc: ``mlflow.pyfunc.load_model(uri).predict(images)``
returns class probabilities (N, K) for raw images, e.g. MNIST (N, 28, 28) uint8.

The model is logged "from code" (this file), not pickled; the toolkit package travels
with it (``code_paths``), so it loads wherever NumPy and MLflow are installed.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np

import toolkit


class ToolkitPyfunc(mlflow.pyfunc.PythonModel):
    """Wraps :class:`toolkit.train.predict.Predictor` around the run's checkpoint."""

    def load_context(self, context) -> None:
        from toolkit.registry import load_plugins
        from toolkit.train.predict import Predictor

        load_plugins()
        self.predictor = Predictor.from_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        """Images (N, H, W) or (N, C, H, W), raw pixels (a DataFrame is converted) -> class
        probabilities (N, K). (The ndarray hint tells MLflow to take the input schema from
        the logged example instead of asking for type hints it could validate.)"""
        values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        return self.predictor.predict_proba(values)


mlflow.models.set_model(ToolkitPyfunc())


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Only errors from these loggers meanwhile: MLflow's INFO/WARNING lines about signature
    inference and an unresolvable ``pip`` (uv environments have none) are noise here."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# What a deployed model does not need of the package: the app (Hydra), analyses,
# figures and configs. The engine, data preprocessing, models and this file travel.
NOT_SHIPPED = ("app", "analysis", "viz", "conf", "__pycache__", "*.pyc")


def log_pyfunc_model(checkpoint: Path, input_example: np.ndarray) -> None:
    """Log ``checkpoint`` as the active run's ``model`` (one input as its example)."""
    with (
        tempfile.TemporaryDirectory() as folder,
        quiet_loggers("mlflow.pyfunc", "mlflow.models", "mlflow.utils.environment"),
    ):
        code = Path(folder) / "toolkit"
        shutil.copytree(
            Path(toolkit.__file__).parent, code, ignore=shutil.ignore_patterns(*NOT_SHIPPED)
        )
        mlflow.pyfunc.log_model(
            name="model",
            python_model=__file__,
            artifacts={"checkpoint": str(checkpoint)},
            code_paths=[str(code)],
            pip_requirements=[f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"],
            input_example=np.asarray(input_example)[:1],
        )
