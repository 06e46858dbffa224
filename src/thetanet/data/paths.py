"""Where thetanet finds data: one setting, ``THETANET_DATA`` (or a CLI ``--data-dir``).

Defaults to a per-user cache (``$XDG_CACHE_HOME/thetanet`` or ``~/.cache/thetanet``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "THETANET_DATA"


def _resolve(override: str | os.PathLike[str] | None, env_var: str) -> Path:
    """``override``, else ``$env_var``, else ``$XDG_CACHE_HOME/thetanet`` (``~/.cache/...``)."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "thetanet"


def data_root(override: str | os.PathLike[str] | None = None) -> Path:
    """Return the data root: ``override`` if given, else ``$THETANET_DATA``, else the user cache."""
    return _resolve(override, ENV_VAR)


CACHE_ENV_VAR = "THETANET_CACHE"


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """Writable cache for derived files (feature caches): ``override``, ``$THETANET_CACHE``,
    else ``$XDG_CACHE_HOME/thetanet`` (``~/.cache/thetanet``). Separate from the data root,
    which may be read-only (as ``../shared/data`` is)."""
    return _resolve(override, CACHE_ENV_VAR)
