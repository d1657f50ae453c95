"""Model builders: registered functions ``builder(input_shape, num_outputs, /, **hparams)``
returning an unbuilt :class:`~toolkit.nn.Sequential`; see :func:`build_model`."""

import importlib.util

from toolkit.models import mlp  # noqa: F401  (importing registers the builders)
from toolkit.models.build import ModelSpec, build_model

if importlib.util.find_spec("toolkit.models.cnn") is not None:
    from toolkit.models import autoencoder, cnn  # noqa: F401  (autoencoder uses cnn's checks)
    from toolkit.models import torchvision_resnet  # noqa: F401  (resnet18, resnet34)

__all__ = ["ModelSpec", "build_model"]
