"""Any torchvision image-classification dataset (MNIST, FashionMNIST, KMNIST, EMNIST,
CIFAR10, ...) as a :class:`Dataset`, through one on-disk array cache.

The first load of a dataset imports torchvision, reads the raw files from the data root
and stores uint8 (N, C, H, W) images, int64 labels, the class names and the pixel
statistics in the cache (:mod:`toolkit.data.cache`). Every later load, e.g. each job of a
sweep, reads those arrays with NumPy only: torch is never imported.

Data root: the ``root`` argument, else ``$TOOLKIT_DATA_DIR``, else ``./data``, in
torchvision's layout (``<root>/MNIST/raw/train-images-idx3-ubyte``...). The root may be
read-only: nothing is written there unless a download is asked for and the download host
answers. Offline with the files missing, loading fails quickly with one line naming the
folder, the expected files and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import socket
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.data.cache import cache_key, cache_path, fingerprint, load_arrays, save_arrays
from toolkit.data.dataset import Dataset, images_to_nchw, preprocess_images
from toolkit.registry import ConfigError, datasets, unknown_name_message

DATA_ENV_VAR = "TOOLKIT_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 5.0
# The folder under the root holding a dataset's files, where it is not the class name.
DATASET_FOLDERS = {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Absolute data root: ``root``, else ``$TOOLKIT_DATA_DIR``, else ``./data``."""
    return Path(root or os.environ.get(DATA_ENV_VAR) or "data").expanduser().resolve()


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
        raise ConfigError(f"dataset.subset={subset!r} must be a positive int or null (all)")
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
        arrays = _convert(dataset_class, split, root, download)
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
    folder = root / DATASET_FOLDERS.get(dataset_class, dataset_class)
    files = fingerprint(folder) if folder.is_dir() else fingerprint(root, recursive=False)
    return cache_key(dataset_class=dataset_class, split=split, root=str(root), files=files)


def _convert(
    dataset_class: str, split: str | None, root: Path, download: bool
) -> dict[str, np.ndarray]:
    """Read the raw files with torchvision (downloading if asked): uint8 (N, C, H, W)
    images, int64 labels, class names (str array, may be empty) and float64 pixel
    ``(mean, std)`` of the training images scaled to [0, 1], rounded to 4 decimals."""
    from torchvision import datasets as tv_datasets  # the only torch import in toolkit

    cls = getattr(tv_datasets, dataset_class, None)
    if not isinstance(cls, type):
        raise ConfigError(
            unknown_name_message(
                "torchvision dataset",
                dataset_class,
                list(tv_datasets.__all__),
                "dataset.dataset_class",
            )
        )
    _check_split(cls, split)
    folder, expected = _expected_files(cls, root, split)
    present = expected is not None and all((folder / name).is_file() for name in expected)
    if expected is not None and not present:
        if not download:
            raise ConfigError(_missing_message(dataset_class, folder, expected, "download=false"))
        unreachable = _unreachable_reason(cls)
        if unreachable:
            raise ConfigError(_missing_message(dataset_class, folder, expected, unreachable))
    if present:
        verify_checksums(root, root / DATASET_FOLDERS.get(dataset_class, dataset_class))
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            train = _instantiate(cls, root, split, train=True, download=download and not present)
        test = _instantiate(cls, root, split, train=False, download=False)
    except ConfigError:
        raise
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ...
        if present:
            raise ConfigError(
                f"torchvision {dataset_class} could not read {folder}: {_one_line(err)}"
            ) from None
        raise ConfigError(
            _missing_message(dataset_class, folder, expected, _one_line(err))
        ) from None
    x_train, y_train = _arrays_of(train, dataset_class)
    x_test, y_test = _arrays_of(test, dataset_class)
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "class_names": np.array([str(c) for c in getattr(train, "classes", None) or []], dtype=str),
        "pixel_stats": _pixel_stats(x_train),
    }


def verify_checksums(root: Path, folder: Path) -> None:
    """Check the raw files against ``<folder>/MD5SUMS`` when there is one (lines
    ``<md5>  <path relative to root>``); a mismatch is a one-line ConfigError naming the
    file. Runs only when the array cache is rebuilt (a changed file changes its key)."""
    listing = folder / "MD5SUMS"
    if not listing.is_file():
        return
    for line in listing.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split(maxsplit=1)
        path = root / name.strip().lstrip("*")
        if not path.is_file():
            continue  # listed archives that were unpacked, or files of other splits
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != expected:
            raise ConfigError(
                f"dataset file {path} is corrupted: md5 {digest}, expected {expected} "
                f"(from {listing}); replace it with a good copy or re-download it"
            )


def _check_split(cls: type, split: str | None) -> None:
    """ConfigError unless ``split`` names one of ``cls.splits`` for classes with variants
    besides train/test (EMNIST), or is ``None`` for classes without (MNIST). Classes that
    choose train/test by ``split`` (SVHN) are checked in :func:`_instantiate`."""
    if not _accepts_train(cls):
        return
    choices = getattr(cls, "splits", None)
    if choices is None:
        if split is not None:
            raise ConfigError(
                f"{cls.__name__} has no variants; leave dataset.split unset (got {split!r})"
            )
        return
    if split is None:
        raise ConfigError(f"{cls.__name__} needs dataset.split, one of: {', '.join(choices)}")
    if split not in choices:
        raise ConfigError(
            unknown_name_message(f"{cls.__name__} split", split, list(choices), "dataset.split")
        )


def _accepts_train(cls: type) -> bool:
    """Whether ``cls`` (or a base its ``**kwargs`` reach, as EMNIST's reach MNIST's) takes
    ``train=``."""
    return any(
        "train" in inspect.signature(base.__init__).parameters
        for base in cls.__mro__
        if "__init__" in vars(base)
    )


def _expected_files(cls: type, root: Path, split: str | None) -> tuple[Path, list[str] | None]:
    """The folder holding ``cls``'s raw files and their names (``None`` when not known)."""
    name = cls.__name__
    if name == "EMNIST":
        names = [
            f"emnist-{split}-{part}-{kind}-ubyte"
            for part in ("train", "test")
            for kind in ("images-idx3", "labels-idx1")
        ]
        return root / name / "raw", names
    resources = getattr(cls, "resources", None)
    if isinstance(resources, list) and all(isinstance(r, tuple) for r in resources):
        # MNIST family: (archive name, md5) pairs, stored uncompressed in <root>/<Class>/raw
        names = [os.path.splitext(os.path.basename(archive))[0] for archive, _ in resources]
        return root / name / "raw", names
    if hasattr(cls, "base_folder") and hasattr(cls, "train_list"):  # CIFAR10, CIFAR100
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return root / cls.base_folder, names
    return root, None


def _missing_message(dataset_class: str, folder: Path, expected: list[str] | None, why: str) -> str:
    """One line: what is missing where, why it was not downloaded, and how to fix it."""
    files = (
        f"expected {', '.join(expected)}" if expected else "see torchvision's docs for the files"
    )
    return (
        f"{dataset_class} not found in {folder} ({files}); not downloaded ({why}); set "
        f"{DATA_ENV_VAR} (or dataset.root) to a folder holding it in torchvision's layout, "
        "or run once online with dataset.download=true"
    )


def _unreachable_reason(cls: type) -> str | None:
    """Why none of ``cls``'s download hosts answers within the timeout, or ``None`` when one
    does (or none is known). Checked before torchvision's download, which first creates
    folders in the root and then tries each mirror with long waits."""
    archive = getattr(cls, "url", None)  # one archive (EMNIST, CIFAR), else the MNIST mirrors
    urls = [archive] if isinstance(archive, str) else list(getattr(cls, "mirrors", []))
    reasons = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=DOWNLOAD_TIMEOUT_S).close()
            return None
        except OSError as err:
            reasons.append(f"cannot reach {parts.hostname}: {_one_line(err)}")
    if len(reasons) > 1:
        return f"{reasons[0]}, nor {len(reasons) - 1} other host(s)"
    return reasons[0] if reasons else None


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket wait (torchvision's urllib downloads set none) while inside."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _instantiate(cls: type, root: Path, split: str | None, train: bool, download: bool) -> Any:
    """``cls`` for the train or test part: via ``train=`` (with ``split=`` the variant), or
    via ``split="train"/"test"`` for classes without ``train`` (SVHN, STL10)."""
    kwargs: dict[str, Any] = {"root": str(root), "download": download}
    if _accepts_train(cls):
        kwargs["train"] = train
        if split is not None:
            kwargs["split"] = split
    elif "split" in inspect.signature(cls).parameters and split is None:
        kwargs["split"] = "train" if train else "test"
    else:
        raise ConfigError(
            f"torchvision {cls.__name__} has no train/test choice the adapter knows "
            f"(dataset.split={split!r}); use a class with a train= or split= argument"
        )
    return cls(**kwargs)


def _arrays_of(dataset: Any, dataset_class: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) and int64 labels (N,) of a loaded torchvision dataset."""
    labels = dataset.targets if hasattr(dataset, "targets") else getattr(dataset, "labels", None)
    images = getattr(dataset, "data", None)
    if images is None or labels is None:
        raise ConfigError(
            f"torchvision {dataset_class} keeps no in-memory data/targets arrays; "
            "the adapter supports datasets like MNIST, CIFAR10 and SVHN"
        )
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ConfigError(f"torchvision {dataset_class} images are {images.dtype}, expected uint8")
    return np.ascontiguousarray(images_to_nchw(images)), np.asarray(labels, dtype=np.int64)


def _pixel_stats(images: np.ndarray) -> np.ndarray:
    """float64 ``[mean, std]`` of uint8 ``images`` scaled to [0, 1], rounded to 4 decimals
    (from a 256-bin histogram: exact, without a float copy of the images)."""
    counts = np.bincount(images.ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum()
    std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
    return np.round(np.array([mean, std]), 4)


def _one_line(err: BaseException) -> str:
    """The exception's message on one line, at most 300 characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


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
