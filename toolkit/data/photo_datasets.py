"""torchvision's photo datasets: Oxford-IIIT Pet (37 breeds or cat/dog) and Flowers102.

Their images are JPEG files of every size, so unlike MNIST or CIFAR they have no
in-memory arrays: each photo is decoded, resized and centre-cropped once into the array
cache (:mod:`toolkit.data.photos`) through torchvision's own dataset class (its file
lists, splits and labels). Offline with the files missing, one line names the folder,
the files expected and the fix, after a quick check of the download host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolkit.data.cache import cache_key, fingerprint
from toolkit.data.dataset import Dataset
from toolkit.data.downloads import (
    download_urls,
    missing_message,
    socket_timeout,
    unreachable_reason,
)
from toolkit.data.photos import cached_photo_arrays, check_normalize, check_sizes, photo_dataset
from toolkit.data.raw_files import check_readable, data_root
from toolkit.registry import ParameterError, datasets, one_line

PET_TARGETS = {"binary": "binary-category", "category": "category"}
#: what each class needs under the data root, and its (train parts, test part)
LAYOUTS: dict[str, tuple[str, list[str], tuple[list[str], str]]] = {
    "OxfordIIITPet": (
        "oxford-iiit-pet",
        ["images/", "annotations/trainval.txt", "annotations/test.txt"],
        (["trainval"], "test"),
    ),
    "Flowers102": (
        "flowers-102",
        ["jpg/", "imagelabels.mat", "setid.mat"],
        (["train", "val"], "test"),
    ),
}


@datasets.register("oxford_pet")
def oxford_pet(
    root: str | None = None,
    target: str = "binary",
    image_size: int = 224,
    resize: int | None = None,
    download: bool = True,
    normalize: str = "imagenet",
    subset: int | None = None,
) -> Dataset:
    """Oxford-IIIT Pet: 3680 trainval / 3669 test photos of cats and dogs.

    Args:
        target: ``binary`` (cat/dog, the reference report's task) or ``category`` (the 37
            breeds).
        image_size, resize: the centre crop's side and the shorter side before it.
        download, normalize, subset: as for :func:`toolkit.data.image_folder.image_folder`
            (``download`` fetches the files when they are missing; needs internet).
    """
    if target not in PET_TARGETS:
        raise ParameterError("oxford_pet", f"{{target}}={target!r} is not one of: binary, category")
    extra = {"target_types": PET_TARGETS[target]}
    label = f"OxfordIIITPet-{target}"
    return photo_source(
        label, "OxfordIIITPet", extra, root, image_size, resize, download, normalize, subset
    )


@datasets.register("flowers102")
def flowers102(
    root: str | None = None,
    image_size: int = 224,
    resize: int | None = None,
    download: bool = True,
    normalize: str = "imagenet",
    subset: int | None = None,
) -> Dataset:
    """Flowers102: 102 flower species, 2040 train+val / 6149 test photos."""
    return photo_source(
        "Flowers102", "Flowers102", {}, root, image_size, resize, download, normalize, subset
    )


def photo_source(
    label: str,
    dataset_class: str,
    extra: dict[str, Any],
    root: str | None,
    image_size: int,
    resize: int | None,
    download: bool,
    normalize: str,
    subset: int | None,
) -> Dataset:
    """The cached photo arrays of a torchvision photo dataset, as a :class:`Dataset`."""
    resize = check_sizes(image_size, resize)
    check_normalize(normalize)
    base = data_root(root)
    folder_name, _, _ = LAYOUTS[dataset_class]
    check_readable(base / folder_name)
    key = cache_key(
        dataset_class=dataset_class,
        extra=extra,
        root=str(base),
        files=fingerprint(base / folder_name, recursive=False),
        image_size=image_size,
        resize=resize,
    )
    arrays = cached_photo_arrays(
        f"{label}-{image_size}",
        key,
        lambda: convert_photos(dataset_class, extra, base, image_size, resize, download),
    )
    return photo_dataset(label, arrays, normalize, subset)


def expected_paths(dataset_class: str, root: Path) -> tuple[Path, list[str], bool]:
    """The dataset's folder, the files/folders it needs there, and whether all exist."""
    folder_name, needed, _ = LAYOUTS[dataset_class]
    folder = root / folder_name
    present = all(
        (folder / name).is_dir() if name.endswith("/") else (folder / name).is_file()
        for name in needed
    )
    return folder, needed, present


def convert_photos(
    dataset_class: str,
    extra: dict[str, Any],
    root: Path,
    image_size: int,
    resize: int,
    download: bool,
) -> dict[str, np.ndarray]:
    """Decode every photo through torchvision's class: uint8 (N, 3, S, S) train (the
    union of the train parts) and test arrays, int64 labels, class names."""
    from torchvision import datasets as tv_datasets  # imported only to build the cache

    from toolkit.data.photos import resize_center_crop

    cls = getattr(tv_datasets, dataset_class)
    folder, needed, present = expected_paths(dataset_class, root)
    if not present:
        why = "{download}=False" if not download else unreachable_reason(download_urls(cls))
        if why:
            raise ParameterError(None, missing_message(dataset_class, folder, needed, why))
    _, _, (train_parts, test_part) = LAYOUTS[dataset_class]

    def crop(image) -> np.ndarray:
        return resize_center_crop(image.convert("RGB"), image_size, resize)

    def part(split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        try:
            with socket_timeout():
                data = cls(
                    str(root),
                    split=split,
                    transform=crop,
                    download=download and not present,
                    **extra,
                )
        except Exception as err:  # RuntimeError "Dataset not found", URLError, OSError...
            why = one_line(err)
            raise ParameterError(
                None, missing_message(dataset_class, folder, needed, why)
            ) from None
        images = np.empty((len(data), 3, image_size, image_size), dtype=np.uint8)
        labels = np.empty(len(data), dtype=np.int64)
        for index in range(len(data)):
            images[index], labels[index] = data[index]
        names = (
            getattr(data, "bin_classes", None)
            if extra.get("target_types") == "binary-category"
            else None
        )
        return images, labels, list(names or getattr(data, "classes", None) or [])

    trains = [part(split) for split in train_parts]
    x_test, y_test, names = part(test_part)
    num_classes = int(max(y.max() for _, y, _ in trains)) + 1
    return {
        "x_train": np.concatenate([x for x, _, _ in trains]),
        "y_train": np.concatenate([y for _, y, _ in trains]),
        "x_test": x_test,
        "y_test": y_test,
        "class_names": np.array(names or [str(i) for i in range(num_classes)], dtype=str),
    }
