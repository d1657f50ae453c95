"""Downloads that fail fast offline: is a host reachable, bounded socket waits, and the
one-line message for data that is neither here nor downloadable.

torchvision's downloads set no socket timeout and try every mirror in turn, so offline a
missing dataset means minutes of retries and a long traceback. The adapters ask
:func:`unreachable_reason` first (a TCP connect per host, :data:`DOWNLOAD_TIMEOUT_S` each)
and download inside :func:`socket_timeout`.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path

from toolkit.registry import one_line

DATA_ENV_VAR = "TOOLKIT_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 5.0


def unreachable_reason(urls: Iterable[str]) -> str | None:
    """Why none of the hosts of ``urls`` answers within the timeout, or ``None`` when one
    does (or no URL is given)."""
    reasons = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=DOWNLOAD_TIMEOUT_S).close()
            return None
        except OSError as err:
            reasons.append(f"cannot reach {parts.hostname}: {one_line(err)}")
    if len(reasons) > 1:
        return f"{reasons[0]}, nor {len(reasons) - 1} other host(s)"
    return reasons[0] if reasons else None


def download_urls(cls: type) -> list[str]:
    """The download URLs a torchvision dataset class names: one archive (``url``: EMNIST,
    CIFAR), the MNIST family's ``mirrors``, or the photo datasets' resource URLs."""
    archive = getattr(cls, "url", None)
    if isinstance(archive, str):
        return [archive]
    if getattr(cls, "mirrors", None):
        return list(cls.mirrors)
    prefix = getattr(cls, "_download_url_prefix", None)  # Flowers102
    if isinstance(prefix, str):
        return [prefix]
    resources = getattr(cls, "_RESOURCES", None)  # OxfordIIITPet: ((url, md5), ...)
    if resources:
        return [url for url, *_ in resources][:1]
    return []


@contextlib.contextmanager
def socket_timeout(seconds: float = DOWNLOAD_TIMEOUT_S) -> Iterator[None]:
    """Bound every socket wait (torchvision's urllib downloads set none) while inside."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def missing_message(dataset_class: str, folder: Path, expected: list[str] | None, why: str) -> str:
    """One line: what is missing where, why it was not downloaded, and how to fix it, for a
    :class:`~toolkit.registry.ParameterError` template (``{root}``, ``{download}`` marked)."""
    files = (
        f"expected {', '.join(expected)}" if expected else "see torchvision's docs for the files"
    )
    return (
        f"{dataset_class} not found in {folder} ({files}); not downloaded ({why}); set "
        f"{DATA_ENV_VAR} (or {{root}}) to a folder holding it in torchvision's layout, "
        "or run once online with {download}=True"
    )
