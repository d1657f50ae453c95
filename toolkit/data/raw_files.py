"""The raw files of a torchvision dataset in the data root: where they are, whether they
can be read, their checksums, and ``.gz`` archives that only need unpacking.

Data root: the ``root`` argument, else ``$TOOLKIT_DATA_DIR``, else ``./data``, in
torchvision's layout (``<root>/MNIST/raw/train-images-idx3-ubyte``...).

Mirrors and Linux distributions ship the MNIST family as ``raw/*.gz`` (what torchvision
downloads, before it unpacks them). Such a folder is unpacked without a download
(:func:`unpack_archives`): next to the archives when the folder is writable, else into
the array cache's folder, which then serves as the data root for that one conversion.
The archives' md5 sums are checked first where torchvision knows them.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

from toolkit.data.cache import cache_dir, cache_key
from toolkit.data.downloads import DATA_ENV_VAR
from toolkit.registry import ConfigError

log = logging.getLogger("toolkit.data")

# The folder under the root holding a dataset's files, where it is not the class name.
DATASET_FOLDERS = {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Absolute data root: ``root``, else ``$TOOLKIT_DATA_DIR``, else ``./data``."""
    return Path(root or os.environ.get(DATA_ENV_VAR) or "data").expanduser().resolve()


def dataset_folder(root: Path, dataset_class: str) -> Path:
    """``<root>/<the dataset's folder>`` (the class name unless :data:`DATASET_FOLDERS`
    says otherwise)."""
    return root / DATASET_FOLDERS.get(dataset_class, dataset_class)


def check_readable(folder: Path) -> None:
    """A one-line ConfigError when ``folder`` (or a folder or file below it) exists but
    cannot be listed or read (permissions), instead of a traceback later."""
    if not folder.exists():
        return
    try:
        paths = [folder, *folder.rglob("*")] if folder.is_dir() else [folder]
        for path in paths:
            if path.is_dir():
                next(os.scandir(path), None)
            else:
                with open(path, "rb") as handle:
                    handle.read(1)
    except PermissionError as err:
        blocked = err.filename or folder
        raise ConfigError(
            f"data folder {folder} cannot be read ({blocked}: permission denied); give the "
            f"user read access (chmod -R u+rX {folder}) or set {DATA_ENV_VAR} to a readable copy"
        ) from None


def expected_files(cls: type, root: Path, split: str | None) -> tuple[Path, list[str] | None]:
    """The folder holding ``cls``'s raw files and their names (``None`` when not known)."""
    name = cls.__name__
    if name == "EMNIST":
        names = [
            f"emnist-{split}-{part}-{kind}-ubyte"
            for part in ("train", "test")
            for kind in ("images-idx3", "labels-idx1")
        ]
        return root / name / "raw", names
    if isinstance(archives := archive_md5s(cls), dict) and archives:
        # MNIST family: (archive name, md5) pairs, stored uncompressed in <root>/<Class>/raw
        return root / name / "raw", [os.path.splitext(archive)[0] for archive in archives]
    if hasattr(cls, "base_folder") and hasattr(cls, "train_list"):  # CIFAR10, CIFAR100
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return root / cls.base_folder, names
    return root, None


def archive_md5s(cls: type) -> dict[str, str | None]:
    """``{archive file name: md5}`` of the MNIST family's ``resources`` (empty otherwise)."""
    resources = getattr(cls, "resources", None)
    if not (isinstance(resources, list) and all(isinstance(r, tuple) for r in resources)):
        return {}
    return {os.path.basename(archive): md5 for archive, md5 in resources}


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        check_md5(path, expected, f"from {listing}")


def check_md5(path: Path, expected: str, where: str) -> None:
    """A one-line ConfigError unless ``path``'s md5 is ``expected``."""
    digest = md5_of(path)
    if digest != expected:
        raise ConfigError(
            f"dataset file {path} is corrupted: md5 {digest}, expected {expected} "
            f"({where}); replace it with a good copy or re-download it"
        )


def unpack_archives(cls: type, root: Path, folder: Path, expected: list[str]) -> Path | None:
    """Unpack ``<name>.gz`` for every expected file missing from ``folder``; returns the
    data root that now holds all of them (``root``, or a folder in the cache when
    ``folder`` is read-only), or ``None`` when some file has no archive either.

    Checksums: a file that the dataset's ``MD5SUMS`` lists is checked after unpacking
    (by :func:`verify_checksums`, which the caller runs); any other archive is checked
    first against torchvision's md5 of it (``cls.resources``). One line (logged) says
    what was unpacked where."""
    missing = [name for name in expected if not (folder / name).is_file()]
    archives = [folder / f"{name}.gz" for name in missing]
    if not missing or not all(archive.is_file() for archive in archives):
        return None
    listed = listed_files(folder.parent) | listed_files(folder)
    known = archive_md5s(cls)
    for name, archive in zip(missing, archives, strict=True):
        if name not in listed and known.get(archive.name):
            check_md5(archive, known[archive.name], f"torchvision's {cls.__name__}.resources")
    target_root, target = root, folder
    if not os.access(folder, os.W_OK):
        key = cache_key(
            unpacked=str(folder), archives=[(a.name, a.stat().st_size) for a in archives]
        )
        target_root = cache_dir() / "unpacked" / key
        target = target_root / folder.relative_to(root)
        mirror_files(folder.parent, target.parent, skip=set(missing))
        mirror_files(folder, target, skip=set(missing))
    for name, archive in zip(missing, archives, strict=True):
        if (target / name).is_file():
            continue  # unpacked by an earlier run
        tmp = target / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            with gzip.open(archive, "rb") as source, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            os.replace(tmp, target / name)
        except (OSError, EOFError) as err:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot unpack {archive} into {target}: {err}") from None
    log.info(
        "%s: unpacked %d .gz file(s) from %s into %s (no download needed)",
        cls.__name__,
        len(archives),
        folder,
        target,
    )
    return target_root


def listed_files(folder: Path) -> set[str]:
    """Base names of the files ``<folder>/MD5SUMS`` lists (empty without one)."""
    listing = folder / "MD5SUMS"
    if not listing.is_file():
        return set()
    lines = [line.split(maxsplit=1) for line in listing.read_text().splitlines() if line.strip()]
    return {os.path.basename(parts[1].strip()) for parts in lines if len(parts) == 2}


def mirror_files(source: Path, target: Path, skip: set[str]) -> None:
    """Symbolic links in ``target`` to the files directly in ``source`` (not ``skip``)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        link = target / path.name
        if path.is_file() and path.name not in skip and not link.exists():
            link.symlink_to(path)
