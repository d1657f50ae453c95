"""Reading a torchvision dataset with in-memory arrays (MNIST family, CIFAR, SVHN) into
uint8 NCHW images and int64 labels: the one place (with :mod:`toolkit.data.photos`) that
imports torchvision, and only when the array cache is (re)built."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.data.dataset import images_to_nchw
from toolkit.data.downloads import (
    DOWNLOAD_TIMEOUT_S,
    download_urls,
    missing_message,
    socket_timeout,
    unreachable_reason,
)
from toolkit.data.raw_files import (
    check_readable,
    dataset_folder,
    expected_files,
    unpack_archives,
    verify_checksums,
)
from toolkit.registry import ConfigError, ParameterError, one_line, unknown_name_message


def torchvision_class(dataset_class: str) -> type:
    """``torchvision.datasets.<dataset_class>``; unknown names get close matches."""
    from torchvision import datasets as tv_datasets  # imported only to build the cache

    cls = getattr(tv_datasets, dataset_class, None)
    if not isinstance(cls, type):
        raise ParameterError(
            None,
            unknown_name_message(
                "torchvision dataset", dataset_class, list(tv_datasets.__all__), "{dataset_class}"
            ),
        )
    return cls


def convert(
    dataset_class: str, split: str | None, root: Path, download: bool
) -> dict[str, np.ndarray]:
    """Read the raw files with torchvision (unpacking ``.gz`` archives, or downloading if
    asked): uint8 (N, C, H, W) images, int64 labels, class names (str array, may be empty)
    and float64 pixel ``(mean, std)`` of the training images scaled to [0, 1]."""
    cls = torchvision_class(dataset_class)
    check_split(cls, split)
    check_readable(dataset_folder(root, dataset_class))
    folder, expected = expected_files(cls, root, split)
    present = expected is not None and all((folder / name).is_file() for name in expected)
    if expected is not None and not present:
        unpacked_root = unpack_archives(cls, root, folder, expected)
        if unpacked_root is not None:
            root, present = unpacked_root, True
            folder, _ = expected_files(cls, root, split)
    if expected is not None and not present:
        if not download:
            raise ParameterError(
                None, missing_message(dataset_class, folder, expected, "{download}=False")
            )
        unreachable = unreachable_reason(download_urls(cls))
        if unreachable:
            raise ParameterError(
                None, missing_message(dataset_class, folder, expected, unreachable)
            )
    if present:
        verify_checksums(root, dataset_folder(root, dataset_class))
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            train = instantiate(cls, root, split, train=True, download=download and not present)
        test = instantiate(cls, root, split, train=False, download=False)
    except ConfigError:
        raise
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ...
        if present:
            raise ConfigError(
                f"torchvision {dataset_class} could not read {folder}: {one_line(err)}"
            ) from None
        why = one_line(err)
        raise ParameterError(None, missing_message(dataset_class, folder, expected, why)) from None
    x_train, y_train = arrays_of(train, dataset_class)
    x_test, y_test = arrays_of(test, dataset_class)
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "class_names": np.array([str(c) for c in getattr(train, "classes", None) or []], dtype=str),
        "pixel_stats": pixel_stats(x_train),
    }


def check_split(cls: type, split: str | None) -> None:
    """ConfigError unless ``split`` names one of ``cls.splits`` for classes with variants
    besides train/test (EMNIST), or is ``None`` for classes without (MNIST). Classes that
    choose train/test by ``split`` (SVHN) are checked in :func:`instantiate`."""
    if not accepts_train(cls):
        return
    choices = getattr(cls, "splits", None)
    if choices is None:
        if split is not None:
            raise ParameterError(
                None, f"{cls.__name__} has no variants; leave {{split}} unset (got {split!r})"
            )
        return
    if split is None:
        raise ParameterError(None, f"{cls.__name__} needs {{split}}, one of: {', '.join(choices)}")
    if split not in choices:
        raise ParameterError(
            None, unknown_name_message(f"{cls.__name__} split", split, list(choices), "{split}")
        )


def accepts_train(cls: type) -> bool:
    """Whether ``cls`` (or a base its ``**kwargs`` reach, as EMNIST's reach MNIST's) takes
    ``train=``."""
    return any(
        "train" in inspect.signature(base.__init__).parameters
        for base in cls.__mro__
        if "__init__" in vars(base)
    )


def instantiate(cls: type, root: Path, split: str | None, train: bool, download: bool) -> Any:
    """``cls`` for the train or test part: via ``train=`` (with ``split=`` the variant), or
    via ``split="train"/"test"`` for classes without ``train`` (SVHN, STL10)."""
    kwargs: dict[str, Any] = {"root": str(root), "download": download}
    if accepts_train(cls):
        kwargs["train"] = train
        if split is not None:
            kwargs["split"] = split
    elif "split" in inspect.signature(cls).parameters and split is None:
        kwargs["split"] = "train" if train else "test"
    else:
        raise ParameterError(
            None,
            f"torchvision {cls.__name__} has no train/test choice the adapter knows "
            f"({{split}}={split!r}); use a class with a train= or split= argument",
        )
    return cls(**kwargs)


def arrays_of(dataset: Any, dataset_class: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) and int64 labels (N,) of a loaded torchvision dataset."""
    labels = dataset.targets if hasattr(dataset, "targets") else getattr(dataset, "labels", None)
    images = getattr(dataset, "data", None)
    if images is None or labels is None:
        raise ConfigError(
            f"torchvision {dataset_class} keeps no in-memory data/targets arrays; "
            "the adapter supports datasets like MNIST, CIFAR10 and SVHN (photo datasets: "
            "dataset=oxford_pet, flowers102 or image_folder)"
        )
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ConfigError(f"torchvision {dataset_class} images are {images.dtype}, expected uint8")
    return np.ascontiguousarray(images_to_nchw(images)), np.asarray(labels, dtype=np.int64)


def pixel_stats(images: np.ndarray) -> np.ndarray:
    """float64 ``[mean, std]`` of uint8 ``images`` scaled to [0, 1], rounded to 4 decimals
    (from a 256-bin histogram: exact, without a float copy of the images)."""
    counts = np.bincount(images.ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum()
    std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
    return np.round(np.array([mean, std]), 4)
