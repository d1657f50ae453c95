"""On-disk array cache: raw datasets converted once to NumPy arrays, shared by every job.

Entries are uncompressed ``.npz`` files in :func:`cache_dir` (``$TOOLKIT_CACHE_DIR``, else
``~/.cache/toolkit/datasets``), named ``<label>-<key>.npz`` where the key hashes what the
arrays were made from (see :func:`cache_key`), so a changed data root or changed raw files
give a new entry instead of stale data. Writes go to a temporary file in the same folder
and are moved into place with ``os.replace``, so parallel jobs never read a half-written
entry. Loading never unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from pathlib import Path

import numpy as np

CACHE_ENV_VAR = "TOOLKIT_CACHE_DIR"
FORMAT_VERSION = 1  # bump when the stored arrays change meaning


def cache_dir() -> Path:
    """``$TOOLKIT_CACHE_DIR`` if set, else ``~/.cache/toolkit/datasets`` (not created here)."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "toolkit" / "datasets"


def fingerprint(folder: Path, recursive: bool = True) -> list[tuple[str, int, int]]:
    """``(relative path, size in bytes, mtime in ns)`` of every file under ``folder``, sorted;
    empty when the folder does not exist. Cheap: reads directory entries, not file contents."""
    if not folder.is_dir():
        return []
    paths = folder.rglob("*") if recursive else folder.iterdir()
    entries = []
    for path in paths:
        if path.is_file():
            stat = path.stat()
            entries.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


def cache_key(**parts: object) -> str:
    """16 hex digits of SHA-256 over ``parts`` (JSON-serialisable) and the format version."""
    payload = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_path(label: str, key: str) -> Path:
    """Where the entry for ``label`` (human-readable, e.g. ``MNIST``) and ``key`` lives."""
    return cache_dir() / f"{label}-{key}.npz"


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``, or ``None`` when there is no readable entry (missing, or
    damaged, e.g. by a full disk: the caller then rebuilds and replaces it)."""
    try:
        with np.load(path, allow_pickle=False) as entry:
            return {name: entry[name] for name in entry.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return None


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` at ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # same folder: same disk
    try:
        with open(tmp, "xb") as file:
            np.savez(file, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
