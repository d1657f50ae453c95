"""Shared test setup: built-ins and the project's example plugins are registered, and the
real MNIST is found through TOOLKIT_DATA_DIR (defaulting to ../shared/data)."""

import os
import signal
from pathlib import Path

import pytest

from toolkit.registry import load_plugins

# A test run started in the background (`nohup pytest &`, some CI runners) inherits an
# ignored SIGINT, and so would every command the tests start; the tests that press Ctrl-C
# on a run need the default a terminal gives (a Python handler here: children get SIG_DFL).
signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
SHARED_DATA = ROOT.parent / "shared" / "data"

load_plugins([PLUGINS])

if "TOOLKIT_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["TOOLKIT_DATA_DIR"] = str(SHARED_DATA)


def mnist_available() -> bool:
    root = Path(os.environ.get("TOOLKIT_DATA_DIR", "data"))
    return (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


requires_mnist = pytest.mark.skipif(
    not mnist_available(), reason="real MNIST not found; set TOOLKIT_DATA_DIR"
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One dataset cache for the whole session, outside the user's cache."""
    path = tmp_path_factory.mktemp("dataset-cache")
    os.environ["TOOLKIT_CACHE_DIR"] = str(path)
    return path
