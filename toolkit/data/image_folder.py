"""Any folder of photos in torchvision's ``ImageFolder`` layout, as a dataset
(``dataset=image_folder dataset.root=PATH``)::

    PATH/cat/001.jpg, PATH/cat/002.png, ..., PATH/dog/...          one folder per class
    PATH/train/cat/..., PATH/test/cat/...  (or val/)                 with its own test split

Class names are the folder names, sorted (label 0 is the first, as in ``ImageFolder``).
Without ``train``/``test`` folders, a seeded stratified ``test_fraction`` of each class is
the test split. Photos are resized and centre-cropped once into the array cache
(:mod:`toolkit.data.photos`); reading needs Pillow, not torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.data.cache import cache_key, fingerprint
from toolkit.data.dataset import Dataset
from toolkit.data.photos import (
    cached_photo_arrays,
    check_normalize,
    check_sizes,
    image_files,
    load_photos,
    photo_dataset,
)
from toolkit.data.raw_files import check_readable
from toolkit.registry import ConfigError, ParameterError, datasets

#: torchvision's ``IMG_EXTENSIONS``
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
TEST_FOLDERS = ("test", "val")


@datasets.register("image_folder")
def image_folder(
    root: str | None = None,
    image_size: int = 224,
    resize: int | None = None,
    test_fraction: float = 0.2,
    normalize: str = "imagenet",
    subset: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Photos in class folders under ``root`` (see the module notes).

    Args:
        root: the folder (required).
        image_size: side of the square centre crop, in pixels.
        resize: the shorter side before cropping (default ``image_size * 256 / 224``).
        test_fraction: share of each class held out for testing when ``root`` has no
            ``train``/``test`` folders, in (0, 1).
        normalize: ``imagenet`` (per-channel ImageNet statistics, for pretrained
            weights), ``dataset`` (the training photos' own) or ``none`` ([0, 1]).
        subset: a seeded random ``subset`` of the training photos (and the same share of
            the test photos), for quick runs.
        seed: the stratified test split's seed.

    Returns:
        a classification :class:`Dataset`: x float32 (N, 3, S, S), y int64 (N,).
    """
    if root in (None, "", "???"):
        raise ParameterError(
            "image_folder", "{root} is not set: give {root}=<folder of class folders>"
        )
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise ParameterError("image_folder", f"{{root}}={root}: no such folder ({folder})")
    resize = check_sizes(image_size, resize)
    check_normalize(normalize)
    if isinstance(test_fraction, bool) or not 0 < test_fraction < 1:
        raise ParameterError(
            "image_folder", f"{{test_fraction}}={test_fraction!r} must be in (0, 1)"
        )
    check_readable(folder)
    key = cache_key(
        image_folder=str(folder),
        files=fingerprint(folder),
        image_size=image_size,
        resize=resize,
        test_fraction=test_fraction,
        seed=seed,
    )
    arrays = cached_photo_arrays(
        f"image_folder-{folder.name}",
        key,
        lambda: folder_arrays(folder, image_size, resize, test_fraction, seed),
    )
    return photo_dataset(f"image_folder:{folder.name}", arrays, normalize, subset)


def folder_arrays(
    folder: Path, image_size: int, resize: int, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Decode every photo: uint8 ``x_train``/``x_test`` (N, 3, S, S), int64 labels,
    ``class_names``."""
    test_folder = next((folder / n for n in TEST_FOLDERS if (folder / n).is_dir()), None)
    if (folder / "train").is_dir() and test_folder is not None:
        classes = class_folders(folder / "train")
        train_files, train_labels = labelled_files(folder / "train", classes)
        test_files, test_labels = labelled_files(test_folder, classes)
    else:
        classes = class_folders(folder)
        files, labels = labelled_files(folder, classes)
        test = stratified_test_mask(labels, test_fraction, seed)
        train_files = [f for f, t in zip(files, test, strict=True) if not t]
        test_files = [f for f, t in zip(files, test, strict=True) if t]
        train_labels, test_labels = labels[~test], labels[test]
    return {
        "x_train": load_photos(train_files, image_size, resize),
        "y_train": train_labels,
        "x_test": load_photos(test_files, image_size, resize),
        "y_test": test_labels,
        "class_names": np.array(classes, dtype=str),
    }


def class_folders(folder: Path) -> list[str]:
    """The class folder names under ``folder``, sorted; fewer than two is an error."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError(
            f"image folder {folder} has {len(classes)} class folder(s) ({', '.join(classes)}); "
            "expected one sub-folder per class (at least two), e.g. cat/ and dog/"
        )
    return classes


def labelled_files(folder: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    """Every photo under ``folder/<class>/`` and its class index; a class without photos
    is an error naming it."""
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = image_files(folder / name, EXTENSIONS)
        if not found:
            raise ConfigError(
                f"class folder {folder / name} holds no images ({', '.join(EXTENSIONS)})"
            )
        files += found
        labels += [index] * len(found)
    return files, np.array(labels, dtype=np.int64)


def stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask choosing ``round(fraction * n_c)`` (at least 1, at most n_c - 1)
    samples of each class ``c`` at random (seeded)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(max(1, round(fraction * len(members))), len(members) - 1)
        mask[rng.permutation(members)[:count]] = True
    return mask
