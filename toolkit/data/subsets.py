"""Class subsets of a torchvision dataset, relabelled: a second task from the same images.

Transfer learning needs a source task and a different target task. With only MNIST at
hand, the digits split in two: a model pretrained on digits 0-4 (``classes=[0,1,2,3,4]``)
is fine-tuned on digits 5-9 (``classes=[5,6,7,8,9]``, labelled 0-4), classes it has never
seen, from a small labelled budget (``train_samples``).
"""

from __future__ import annotations

import numpy as np

from toolkit.data.dataset import Dataset
from toolkit.data.torchvision_adapter import load_torchvision
from toolkit.registry import ParameterError, datasets


@datasets.register("mnist_classes")
def mnist_classes(
    classes: list[int] = (0, 1, 2, 3, 4),
    train_samples: int | None = None,
    dataset_class: str = "MNIST",
    root: str | None = None,
    download: bool = True,
    normalize: bool = True,
) -> Dataset:
    """The images of some classes of a torchvision dataset, labelled 0..len(classes)-1.

    Args:
        classes: original class indices to keep; ``classes[i]`` becomes label ``i``.
        train_samples: keep only the first ``train_samples`` training images of those
            classes (the labelled budget); the test set keeps all their test images.
        dataset_class: the torchvision dataset (``MNIST``, ``FashionMNIST``...).
        root, download: as for the ``torchvision`` dataset.
        normalize: standardise with the *whole* dataset's pixel statistics, so a model
            pretrained on other classes of it sees identically preprocessed images.

    Returns:
        a classification :class:`Dataset` named e.g. ``MNIST[5,6,7,8,9]``: x float32
        (N, C, H, W), y int64 (N,) in 0..len(classes)-1, class names from the original.
    """
    kept = [int(c) for c in classes]
    if not kept or len(set(kept)) != len(kept):
        raise ParameterError(
            "mnist_classes", f"{{classes}}={list(classes)} must be distinct class indices"
        )
    if train_samples is not None and (
        isinstance(train_samples, bool) or not isinstance(train_samples, int) or train_samples < 1
    ):
        raise ParameterError(
            "mnist_classes", f"{{train_samples}}={train_samples!r} must be a positive int"
        )
    full = load_torchvision(dataset_class, root=root, download=download, normalize=normalize)
    unknown = [c for c in kept if not 0 <= c < full.num_classes]
    if unknown:
        raise ParameterError(
            "mnist_classes",
            f"{{classes}} has {unknown}, not classes of {full.name} (0..{full.num_classes - 1})",
        )
    relabel = np.full(full.num_classes, -1, dtype=np.int64)
    relabel[kept] = np.arange(len(kept))
    train = np.flatnonzero(relabel[full.y_train] >= 0)[:train_samples]
    test = np.flatnonzero(relabel[full.y_test] >= 0)
    names = full.class_names or [str(c) for c in range(full.num_classes)]
    return Dataset(
        name=f"{full.name}[{','.join(map(str, kept))}]",
        task="classification",
        x_train=full.x_train[train],
        y_train=relabel[full.y_train[train]],
        x_test=full.x_test[test],
        y_test=relabel[full.y_test[test]],
        num_classes=len(kept),
        class_names=[names[c] for c in kept],
        normalization=full.normalization,
    )
