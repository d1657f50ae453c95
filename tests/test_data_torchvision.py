"""The torchvision adapter and its array cache: real MNIST, a fake MNIST root, the
one-line error for missing data offline, and torch-free loads from a warm cache.

The real MNIST comes from ``$TOOLKIT_DATA_DIR``, else ``../shared/data`` beside the
project root; tests needing it are skipped when neither holds ``MNIST/raw``. Every test
writes its cache under pytest's tmp_path, never into the user's cache or the data root.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import load_dataset
from toolkit.registry import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("TOOLKIT_DATA_DIR") or PROJECT_ROOT.parent / "shared" / "data")
MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
needs_mnist = pytest.mark.skipif(
    not all((DATA_DIR / "MNIST" / "raw" / name).is_file() for name in MNIST_FILES),
    reason=f"no MNIST in {DATA_DIR}/MNIST/raw; set TOOLKIT_DATA_DIR to a folder holding it",
)


@pytest.fixture(scope="module")
def mnist_cache(tmp_path_factory):
    """A fresh cache folder for this module, set as $TOOLKIT_CACHE_DIR."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOOLKIT_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def mnist(mnist_cache):
    """MNIST loaded once from the raw files (cold cache: imports torchvision)."""
    return load_dataset("mnist", root=str(DATA_DIR), download=False)


def load_in_subprocess(code: str, cache: Path) -> str:
    """Run ``code`` in a fresh interpreter with the test's cache and data folders."""
    env = {**os.environ, "TOOLKIT_CACHE_DIR": str(cache), "TOOLKIT_DATA_DIR": str(DATA_DIR)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_mnist
def test_mnist_arrays(mnist):
    assert mnist.name == "MNIST" and mnist.task == "classification"
    assert mnist.x_train.shape == (60000, 1, 28, 28) and mnist.x_test.shape == (10000, 1, 28, 28)
    assert mnist.x_train.dtype == mnist.x_test.dtype == np.float32
    assert mnist.y_train.dtype == np.int64 and mnist.y_train.shape == (60000,)
    assert sorted(np.unique(mnist.y_train)) == list(range(10))
    assert mnist.sample_shape == (1, 28, 28) and mnist.num_outputs == 10
    assert len(mnist.class_names) == 10
    assert mnist.normalization == (0.1307, 0.3081)


@needs_mnist
def test_mnist_is_normalised_to_zero_mean_unit_std(mnist):
    assert abs(float(mnist.x_train.mean())) < 0.01
    assert abs(float(mnist.x_train.std()) - 1) < 0.01


@needs_mnist
def test_cache_entry_is_written_once_and_reused(mnist, mnist_cache):
    (entry,) = mnist_cache.glob("MNIST-*.npz")
    assert not list(mnist_cache.glob(".*.tmp"))  # no leftover temp file
    written = entry.stat().st_mtime_ns
    again = load_dataset("mnist", root=str(DATA_DIR), download=False)
    assert entry.stat().st_mtime_ns == written and list(mnist_cache.glob("*.npz")) == [entry]
    np.testing.assert_array_equal(again.x_train[:100], mnist.x_train[:100])
    np.testing.assert_array_equal(again.y_test, mnist.y_test)


@needs_mnist
def test_warm_cache_load_does_not_import_torch(mnist, mnist_cache):
    out = load_in_subprocess(
        "import sys, time\n"
        "from toolkit.data import load_dataset\n"
        "start = time.perf_counter()\n"
        "data = load_dataset('mnist', download=False)\n"
        "print(time.perf_counter() - start, data.x_train.shape, 'torch' in sys.modules)\n",
        mnist_cache,
    )
    seconds, *shape, torch_imported = out.split()
    assert " ".join(shape) == "(60000, 1, 28, 28)"
    assert torch_imported == "False"
    assert float(seconds) < 2.0


def test_importing_toolkit_data_does_not_import_torch(tmp_path):
    code = (
        "import sys, toolkit.data; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    )
    assert load_in_subprocess(code, tmp_path).strip() == "[]"


@needs_mnist
def test_subset_keeps_the_first_samples_in_the_train_test_ratio(mnist):
    small = load_dataset("mnist", root=str(DATA_DIR), download=False, subset=600)
    assert (len(small.x_train), len(small.x_test)) == (600, 100)
    np.testing.assert_array_equal(small.x_train, mnist.x_train[:600])
    np.testing.assert_array_equal(small.y_test, mnist.y_test[:100])


@needs_mnist
def test_unnormalised_pixels_are_in_unit_range(mnist):
    raw = load_dataset("mnist", root=str(DATA_DIR), download=False, normalize=False, subset=60)
    assert raw.normalization is None
    assert raw.x_train.min() == 0.0 and raw.x_train.max() == 1.0
    mean, std = mnist.normalization
    np.testing.assert_allclose(raw.x_train, mnist.x_train[:60] * std + mean, atol=1e-5)


def write_fake_mnist(root: Path, label: int, n_train: int = 12, n_test: int = 6) -> None:
    """A tiny MNIST in torchvision's raw IDX layout: image i has every pixel = i,
    every label = ``label``."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = np.repeat(np.arange(n, dtype=np.uint8), 28 * 28)
        header = np.array([0x803, n, 28, 28], dtype=">i4").tobytes()
        (raw / f"{part}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        labels = np.full(n, label, dtype=np.uint8)
        header = np.array([0x801, n], dtype=">i4").tobytes()
        (raw / f"{part}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())


def test_changed_raw_files_are_not_served_stale(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    write_fake_mnist(root, label=1)
    first = load_dataset("mnist", root=str(root), download=False, normalize=False)
    assert first.x_train.shape == (12, 1, 28, 28) and set(first.y_train) == {1}
    np.testing.assert_allclose(first.x_train[:, 0, 0, 0], np.arange(12) / 255, rtol=1e-6)

    write_fake_mnist(root, label=2)
    for path in (root / "MNIST" / "raw").iterdir():  # same sizes: only mtimes tell
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert set(load_dataset("mnist", root=str(root), download=False).y_train) == {2}
    assert len(list((tmp_path / "cache").glob("MNIST-*.npz"))) == 2


def test_missing_data_is_a_one_line_error_naming_folder_and_files(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ConfigError) as err:
        load_dataset("mnist", root=str(tmp_path), download=False)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(name in message for name in MNIST_FILES)
    assert "TOOLKIT_DATA_DIR" in message and "download=True" in message
    assert "dataset." not in message  # the engine's terms: root, download
    assert list(tmp_path.iterdir()) == []  # nothing written: no folders, no cache


def internet_reachable() -> bool:
    try:
        socket.create_connection(("ossci-datasets.s3.amazonaws.com", 443), timeout=3).close()
    except OSError:
        return False
    return True


def test_download_offline_fails_fast_with_one_line(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")  # imported before timing: the import alone takes seconds
    if internet_reachable():
        pytest.skip("online: download=True would really download MNIST")
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    root.mkdir()
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="MNIST not found in .*not downloaded") as err:
        load_dataset("mnist", root=str(root), download=True)
    assert time.perf_counter() - start < 15
    assert "\n" not in str(err.value)
    assert list(root.iterdir()) == []  # no half-made download folders in the root


def test_emnist_split_is_checked(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(ConfigError, match="did you mean: balanced"):
        load_dataset("emnist", root=str(tmp_path), split="balancd")


def test_unknown_torchvision_class_suggests_close_matches(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(ConfigError, match="unknown torchvision dataset 'MNSIT'.*did you mean"):
        load_dataset("torchvision", dataset_class="MNSIT", root=str(tmp_path))


def test_subset_must_be_positive():
    with pytest.raises(ConfigError, match="torchvision: subset=0"):
        load_dataset("mnist", subset=0)


def gzipped_copy(tmp_path: Path, md5sums: bool = True) -> Path:
    """A data root holding the shared MNIST as ``MNIST/raw/*.gz`` only (as mirrors and
    Debian ship it), with the shared ``MD5SUMS`` of the unpacked files if asked."""
    import gzip

    raw = tmp_path / "gz" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        with gzip.open(raw / f"{name}.gz", "wb", compresslevel=1) as out:
            out.write((DATA_DIR / "MNIST" / "raw" / name).read_bytes())
    if md5sums:
        (raw.parent / "MD5SUMS").write_bytes((DATA_DIR / "MNIST" / "MD5SUMS").read_bytes())
    return tmp_path / "gz"


@needs_mnist
def test_gzipped_raw_files_are_unpacked_without_a_download(mnist, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = gzipped_copy(tmp_path)
    with caplog.at_level("INFO", logger="toolkit.data"):
        unpacked = load_dataset("mnist", root=str(root), download=False)
    assert [r.message for r in caplog.records if "unpacked 4 .gz" in r.message]
    assert all((root / "MNIST" / "raw" / name).is_file() for name in MNIST_FILES)
    np.testing.assert_array_equal(unpacked.x_train, mnist.x_train)
    np.testing.assert_array_equal(unpacked.y_test, mnist.y_test)


@needs_mnist
def test_a_read_only_folder_of_archives_is_unpacked_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = gzipped_copy(tmp_path)
    raw = root / "MNIST" / "raw"
    # root ignores permission bits, so the read-only folder is simulated where it is asked
    from toolkit.data import raw_files

    real_access = os.access
    monkeypatch.setattr(
        raw_files.os, "access", lambda p, mode: False if Path(p) == raw else real_access(p, mode)
    )
    data = load_dataset("mnist", root=str(root), download=False, subset=60)
    assert data.x_train.shape == (60, 1, 28, 28)
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)
    assert len(list((tmp_path / "cache" / "unpacked").glob("*/MNIST/raw/*-ubyte"))) == 4


@needs_mnist
def test_unpacked_files_are_still_checked_against_their_md5(tmp_path, monkeypatch):
    import gzip

    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = gzipped_copy(tmp_path)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[-1] ^= 1
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(ConfigError, match=r"t10k-labels-idx1-ubyte is corrupted: md5 .*MD5SUMS"):
        load_dataset("mnist", root=str(root), download=False)

    # without MD5SUMS the archives themselves are checked against torchvision's md5s (these
    # were recompressed here, so they differ from the published archives)
    bare = gzipped_copy(tmp_path / "bare", md5sums=False)
    with pytest.raises(ConfigError, match=r"\.gz is corrupted: md5 .*torchvision's MNIST"):
        load_dataset("mnist", root=str(bare), download=False)


def test_an_unreadable_data_folder_is_one_error_line(tmp_path, monkeypatch):
    """A folder without read permission: one line naming it (the CLI prints it as
    ``error: ...``), not a traceback. Root reads anything, so as root the denial that an
    ordinary user gets from listing the folder is simulated."""
    pytest.importorskip("torchvision")
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    write_fake_mnist(root, label=1)
    raw = root / "MNIST" / "raw"
    raw.chmod(0o000)
    if os.geteuid() == 0:
        real_scandir = os.scandir

        def scandir(path="."):
            if Path(path) == raw:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        with pytest.raises(ConfigError) as err:
            load_dataset("mnist", root=str(root), download=False)
    finally:
        raw.chmod(0o755)
    message = str(err.value)
    assert "\n" not in message and message.startswith(
        f"data folder {root / 'MNIST'} cannot be read"
    )
    assert "permission denied" in message and "chmod" in message
