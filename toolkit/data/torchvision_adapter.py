"""Any torchvision image-classification dataset (MNIST, FashionMNIST, KMNIST, EMNIST,
CIFAR10, ...) as a :class:`Dataset`, through one on-disk array cache.

The first load of a dataset imports torchvision, reads the raw files from the data root
(:mod:`toolkit.data.torchvision_arrays`) and stores uint8 (N, C, H, W) images, int64
labels, the class names and the pixel statistics in the cache
(:mod:`toolkit.data.cache`). Every later load, e.g. each job of a sweep, reads those
arrays with NumPy only: torch is never imported.

Data root: the ``root`` argument, else ``$TOOLKIT_DATA_DIR``, else ``./data``, in
torchvision's layout (``<root>/MNIST/raw/train-images-idx3-ubyte``...; ``raw/*.gz`` as
mirrors ship them is unpacked, see :mod:`toolkit.data.raw_files`). The root may be
read-only: nothing is written there unless a download is asked for and the download host
answers. Offline with the files missing, loading fails quickly with one line naming the
folder, the expected files and the fix (:mod:`toolkit.data.downloads`).

Photo datasets (Oxford-IIIT Pet, Flowers102, image folders) are in
:mod:`toolkit.data.photos`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from toolkit.data.cache import cache_key, cache_path, fingerprint, load_arrays, save_arrays
from toolkit.data.dataset import Dataset, preprocess_images
from toolkit.data.downloads import DATA_ENV_VAR
from toolkit.data.raw_files import check_readable, data_root, dataset_folder, verify_checksums
from toolkit.data.torchvision_arrays import convert
from toolkit.registry import ParameterError, datasets

__all__ = ["DATA_ENV_VAR", "data_root", "load_torchvision", "verify_checksums"]


@datasets.register("torchvision")
def load_torchvision(
    dataset_class: str = "MNIST",
    root: str | None = None,
    download: bool = True,
    normalize: bool = True,
    subset: int | None = None,
    split: str | None = None,
) -> Dataset:
    """A torchvision classification dataset by class name, as float32 NCHW arrays.

    Args:
        dataset_class: a class of ``torchvision.datasets`` with in-memory ``data`` and
            ``targets`` (or ``labels``): ``MNIST``, ``FashionMNIST``, ``KMNIST``, ``EMNIST``,
            ``QMNIST``, ``CIFAR10``, ``CIFAR100``, ``SVHN``...
        root: data root (default ``$TOOLKIT_DATA_DIR``, else ``./data``).
        download: fetch the files into the root when they are missing (needs internet).
        normalize: standardise pixels with the training set's scalar ``(mean, std)`` over
            all pixels and channels (rounded to 4 decimals, which gives the customary
            constants, e.g. MNIST 0.1307/0.3081, CIFAR10 0.4734/0.2516); otherwise pixels
            are only scaled to [0, 1].
        subset: keep only the first ``subset`` training samples and the first
            ``round(subset * n_test / n_train)`` (at least 1) test samples, i.e. the
            dataset's own train/test ratio (MNIST: ``subset // 6``), for quick runs.
        split: the variant, for classes that have one besides train/test (EMNIST:
            ``byclass``, ``bymerge``, ``balanced``, ``letters``, ``digits``, ``mnist``).

    Returns:
        a classification :class:`Dataset`: x float32 (N, C, H, W), y int64 (N,). Images are
        as torchvision stores them (EMNIST's are transposed relative to MNIST's).
    """
    if subset is not None and (not isinstance(subset, int) or subset < 1):
        raise ParameterError(
            "torchvision", f"{{subset}}={subset!r} must be a positive int or None (all)"
        )
    label = f"{dataset_class}-{split}" if split else dataset_class
    arrays = _cached_arrays(label, dataset_class, split, data_root(root), download)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    class_names = [str(name) for name in arrays["class_names"]] or None
    num_classes = len(class_names) if class_names else int(max(y_train.max(), y_test.max())) + 1
    if subset is not None:
        n_test = max(1, round(subset * len(x_test) / len(x_train)))
        x_train, y_train = x_train[:subset], y_train[:subset]
        x_test, y_test = x_test[:n_test], y_test[:n_test]
    mean, std = (float(v) for v in arrays["pixel_stats"])
    normalization = (mean, std) if normalize else None
    return Dataset(
        name=label,
        task="classification",
        x_train=preprocess_images(x_train, normalization),
        y_train=y_train,
        x_test=preprocess_images(x_test, normalization),
        y_test=y_test,
        num_classes=num_classes,
        class_names=class_names,
        normalization=normalization,
    )


def _cached_arrays(
    label: str, dataset_class: str, split: str | None, root: Path, download: bool
) -> dict[str, np.ndarray]:
    """The cache entry for this dataset and root (file name starting with ``label``),
    built from the raw files if missing."""
    arrays = load_arrays(cache_path(label, _key(dataset_class, split, root)))
    if arrays is None:
        arrays = convert(dataset_class, split, root, download)
        path = cache_path(label, _key(dataset_class, split, root))  # after a download, too
        try:
            save_arrays(path, arrays)
        except OSError as err:
            warnings.warn(
                f"could not write the dataset cache {path} ({err}); later loads will read the "
                "raw files again; set TOOLKIT_CACHE_DIR to a writable folder",
                stacklevel=3,
            )
    return arrays


def _key(dataset_class: str, split: str | None, root: Path) -> str:
    """Cache key: class, split, absolute root and (path, size, mtime) of the raw files."""
    folder = dataset_folder(root, dataset_class)
    check_readable(folder)
    files = fingerprint(folder) if folder.is_dir() else fingerprint(root, recursive=False)
    return cache_key(dataset_class=dataset_class, split=split, root=str(root), files=files)


@datasets.register("mnist")
def mnist(
    root: str | None = None,
    download: bool = True,
    normalize: bool = True,
    subset: int | None = None,
) -> Dataset:
    """MNIST digits: 60000/10000 grayscale 28x28 images, 10 classes."""
    return load_torchvision("MNIST", root, download, normalize, subset)


@datasets.register("fashion_mnist")
def fashion_mnist(
    root: str | None = None,
    download: bool = True,
    normalize: bool = True,
    subset: int | None = None,
) -> Dataset:
    """Fashion-MNIST clothing: 60000/10000 grayscale 28x28 images, 10 classes."""
    return load_torchvision("FashionMNIST", root, download, normalize, subset)


@datasets.register("kmnist")
def kmnist(
    root: str | None = None,
    download: bool = True,
    normalize: bool = True,
    subset: int | None = None,
) -> Dataset:
    """Kuzushiji-MNIST cursive Japanese: 60000/10000 grayscale 28x28 images, 10 classes."""
    return load_torchvision("KMNIST", root, download, normalize, subset)


@datasets.register("emnist")
def emnist(
    root: str | None = None,
    download: bool = True,
    normalize: bool = True,
    subset: int | None = None,
    split: str = "balanced",
) -> Dataset:
    """EMNIST handwritten characters (``balanced``: 112800/18800 28x28 images, 47 classes)."""
    return load_torchvision("EMNIST", root, download, normalize, subset, split)


@datasets.register("cifar10")
def cifar10(
    root: str | None = None,
    download: bool = True,
    normalize: bool = True,
    subset: int | None = None,
) -> Dataset:
    """CIFAR-10 objects: 50000/10000 RGB 32x32 images, 10 classes."""
    return load_torchvision("CIFAR10", root, download, normalize, subset)
