"""Datasets, splits and batching (NumPy only; torch is imported lazily, and only to fill the
array cache the first time a torchvision dataset is loaded).

Registered datasets (``toolkit.registry.datasets``, config group ``dataset``):
``torchvision`` (any torchvision classification dataset by class name), its presets
``mnist``, ``fashion_mnist``, ``kmnist``, ``emnist``, ``cifar10``, the class subsets
``mnist_classes`` (relabelled, for transfer studies), and the synthetic ``xor``, ``sin``,
``spirals``; the photo datasets ``oxford_pet``, ``flowers102`` and ``image_folder``.
"""

from typing import Any

from toolkit.data import (  # noqa: F401  (registers datasets)
    image_folder,
    photo_datasets,
    subsets,
    synthetic,
    torchvision_adapter,
)
from toolkit.data.augment import Augmenter, build_augmenter  # registers augmentations
from toolkit.data.batching import iterate_batches, num_batches
from toolkit.data.dataset import Dataset, preprocess_images
from toolkit.data.splits import ArrayData, Splits, split_dataset
from toolkit.registry import datasets

__all__ = [
    "Augmenter",
    "build_augmenter",
    "ArrayData",
    "Dataset",
    "Splits",
    "iterate_batches",
    "load_dataset",
    "num_batches",
    "preprocess_images",
    "split_dataset",
]


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Build the registered dataset ``name`` with keyword hyperparameters; unknown names
    and keywords raise ConfigError (one line, with close matches)."""
    return datasets.build(name, **kwargs)
