"""``--help`` in half a second instead of three and a half.

Hydra's help lists every config group and its options, and for each of those ~130
queries (Hydra 1.3) ``ConfigLoaderImpl.get_group_options`` deep-copies the whole config
repository, ConfigStore nodes included, so that the query cannot change it. The queries
only read, so while help is printed one copy per (config, overrides) can serve them all;
the output is the same text. A Hydra without that method prints help the slow way.
"""

from __future__ import annotations

from typing import Any


def share_repository_copies_for_help() -> None:
    """Make Hydra's config loader reuse its repository copy per (config name, overrides)
    for the rest of this process (call it only when the process prints help and exits)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    make_copy = getattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo", None)
    if make_copy is None or getattr(make_copy, "shared_for_help", False):
        return
    copies: dict[tuple[int, str | None, tuple[str, ...]], Any] = {}

    def shared_copy(loader: Any, config_name: str | None, overrides: list[str]) -> Any:
        key = (id(loader), config_name, tuple(overrides))
        if key not in copies:
            copies[key] = make_copy(loader, config_name, overrides)
        return copies[key]

    shared_copy.shared_for_help = True  # type: ignore[attr-defined]
    ConfigLoaderImpl._parse_overrides_and_create_caching_repo = shared_copy  # type: ignore[method-assign]
