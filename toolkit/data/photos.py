"""RGB photos as arrays: decoded, resized and centre-cropped once into the array cache.

Photos come in every size, so each is prepared the way torchvision's ImageNet models are
evaluated (``Resize(resize)`` then ``CenterCrop(image_size)``): its shorter side scaled
to ``resize`` pixels (bilinear, antialiased), then the central ``image_size`` square
kept. The result, uint8 (N, 3, S, S) with int64 labels, is cached
(:mod:`toolkit.data.cache`), so later jobs load arrays without decoding a JPEG again.
Training-time augmentation (random resized crops, flips) then works on those arrays
(:mod:`toolkit.data.augment.photo`).

Normalisation is per channel: ``"imagenet"`` (the default) uses ImageNet's statistics,
which is what pretrained torchvision weights expect; ``"dataset"`` the training images'
own per-channel mean and std; ``"none"`` only scales to [0, 1].
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from toolkit.data.cache import cache_path, load_arrays, save_arrays
from toolkit.data.dataset import Dataset, preprocess_images
from toolkit.registry import ConfigError, ParameterError

#: torchvision's ImageNet statistics of pixels scaled to [0, 1], per channel (R, G, B)
IMAGENET_NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALIZE_CHOICES = ("imagenet", "dataset", "none")

Normalization = tuple[tuple[float, ...], tuple[float, ...]]


def check_sizes(image_size: int, resize: int | None) -> int:
    """The resize side for ``image_size`` (default ``round(image_size * 256 / 224)``, as
    ImageNet's 256 -> 224); one-line ConfigErrors for bad values."""
    for key, value in (("image_size", image_size), ("resize", resize)):
        if value is None and key == "resize":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(None, f"{{{key}}}={value!r} must be a positive integer")
    resize = round(image_size * 256 / 224) if resize is None else resize
    if resize < image_size:
        raise ParameterError(
            None,
            f"{{resize}}={resize} is smaller than {{image_size}}={image_size}; the "
            "centre crop must fit inside the resized photo",
        )
    return resize


def check_normalize(normalize: str) -> str:
    if normalize not in NORMALIZE_CHOICES:
        raise ParameterError(
            None, f"{{normalize}}={normalize!r} is not one of: {', '.join(NORMALIZE_CHOICES)}"
        )
    return normalize


def load_photo(path: str | os.PathLike, image_size: int, resize: int) -> np.ndarray:
    """One photo file as uint8 (3, image_size, image_size): shorter side to ``resize``
    (bilinear, antialiased), then the centre crop (torchvision's ``Resize`` +
    ``CenterCrop`` geometry). A file that is not an image is a one-line ConfigError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.draft("RGB", (resize, resize))  # JPEG: decode at a reduced scale >= resize
            return resize_center_crop(image.convert("RGB"), image_size, resize)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ConfigError(f"cannot read image {path}: {err}") from None


def resize_center_crop(image, image_size: int, resize: int) -> np.ndarray:
    """A PIL RGB image -> uint8 (3, image_size, image_size), see :func:`load_photo`."""
    from PIL import Image

    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(resize * long / short)
    size = (resize, new_long) if width <= height else (new_long, resize)
    if size != image.size:
        image = image.resize(size, Image.BILINEAR, reducing_gap=None)
    left = int(round((size[0] - image_size) / 2.0))
    top = int(round((size[1] - image_size) / 2.0))
    image = image.crop((left, top, left + image_size, top + image_size))
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def load_photos(
    paths: Sequence[str | os.PathLike], image_size: int, resize: int, threads: int | None = None
) -> np.ndarray:
    """Many photo files as uint8 (N, 3, S, S), decoded on ``threads`` threads (default:
    all cores; PIL releases the GIL while it decodes and resizes)."""
    out = np.empty((len(paths), 3, image_size, image_size), dtype=np.uint8)

    def fill(index: int) -> None:
        out[index] = load_photo(paths[index], image_size, resize)

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        list(pool.map(fill, range(len(paths))))
    return out


def channel_stats(images: np.ndarray) -> Normalization:
    """Per-channel (mean, std) of uint8 (N, C, H, W) scaled to [0, 1], 4 decimals (exact,
    from a 256-bin histogram per channel)."""
    values = np.arange(256) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256)
        mean = counts @ values / counts.sum()
        means.append(round(float(mean), 4))
        stds.append(round(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())), 4))
    return tuple(means), tuple(stds)


def cached_photo_arrays(
    label: str, key: str, build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The cache entry ``label``-``key``, built by ``build()`` (and stored) when missing."""
    path = cache_path(label, key)
    arrays = load_arrays(path)
    if arrays is None:
        arrays = build()
        try:
            save_arrays(path, arrays)
        except OSError as err:
            warnings.warn(
                f"could not write the dataset cache {path} ({err}); later loads will decode "
                "the photos again; set TOOLKIT_CACHE_DIR to a writable folder",
                stacklevel=3,
            )
    return arrays


def subset_indices(n: int, subset: int | None, seed: int = 0) -> np.ndarray:
    """All of ``range(n)``, or a seeded random ``subset`` of it in increasing order (photo
    lists are often sorted by class, so the first ``subset`` would miss classes)."""
    if subset is None or subset >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:subset])


def photo_dataset(
    name: str, arrays: dict[str, np.ndarray], normalize: str, subset: int | None
) -> Dataset:
    """A classification :class:`Dataset` from cached uint8 photo arrays (``x_train``,
    ``y_train``, ``x_test``, ``y_test``, ``class_names``), normalised per channel."""
    if subset is not None and (not isinstance(subset, int) or subset < 1):
        raise ParameterError(None, f"{{subset}}={subset!r} must be a positive int or None (all)")
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if subset is not None:
        n_test = max(1, round(subset * len(x_test) / max(len(x_train), 1)))
        train, test = subset_indices(len(x_train), subset), subset_indices(len(x_test), n_test)
        x_train, y_train, x_test, y_test = (
            x_train[train],
            y_train[train],
            x_test[test],
            y_test[test],
        )
    normalization: Normalization | None = {
        "imagenet": IMAGENET_NORMALIZATION,
        "dataset": channel_stats(arrays["x_train"]) if len(arrays["x_train"]) else None,
        "none": None,
    }[check_normalize(normalize)]
    class_names = [str(c) for c in arrays["class_names"]]
    return Dataset(
        name=name,
        task="classification",
        x_train=preprocess_images(x_train, normalization),
        y_train=y_train.astype(np.int64),
        x_test=preprocess_images(x_test, normalization),
        y_test=y_test.astype(np.int64),
        num_classes=len(class_names),
        class_names=class_names,
        normalization=normalization,
    )


def renormalize(
    x: np.ndarray, source: Normalization | tuple | None, target: Normalization | tuple | None
) -> np.ndarray:
    """Images normalised with ``source`` (per-channel or scalar ``(mean, std)``, or None
    for [0, 1] pixels) re-expressed in ``target``'s units: ``(x * s1 + m1 - m2) / s2`` per
    channel, a new float array of x's dtype."""
    m1, s1 = _channel_arrays(source, x.shape[1])
    m2, s2 = _channel_arrays(target, x.shape[1])
    scale, shift = (s1 / s2).astype(x.dtype), ((m1 - m2) / s2).astype(x.dtype)
    return x * scale + shift


def _channel_arrays(normalization, channels: int) -> tuple[np.ndarray, np.ndarray]:
    mean, std = normalization if normalization is not None else (0.0, 1.0)
    mean = np.broadcast_to(np.asarray(mean, np.float64), (channels,))
    std = np.broadcast_to(np.asarray(std, np.float64), (channels,))
    return mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)


def image_files(folder: Path, extensions: Sequence[str]) -> list[Path]:
    """Files under ``folder`` (recursively) with one of ``extensions``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
