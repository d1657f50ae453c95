"""Model builders: registered functions ``builder(input_shape, num_outputs, /, **hparams)``
returning an unbuilt :class:`~toolkit.nn.Sequential`; see :func:`build_model`."""

import importlib.util

from toolkit.models import mlp  # noqa: F401  (importing registers the builders)
from toolkit.models.build import (
    RECONSTRUCTION,
    HasEncoder,
    ModelSpec,
    build_model,
    declared_task,
)

if importlib.util.find_spec("toolkit.models.cnn") is not None:
    # importing registers them: autoencoder uses cnn's checks; resnet18 and resnet34
    from toolkit.models import autoencoder, cnn, torchvision_resnet  # noqa: F401

__all__ = [
    "RECONSTRUCTION",
    "HasEncoder",
    "ModelSpec",
    "build_model",
    "declared_task",
]
