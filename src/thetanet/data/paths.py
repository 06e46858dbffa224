"""Where thetanet finds data: one setting, ``THETANET_DATA`` (or a CLI ``--data-dir``).

The data root is resolved the same way everywhere (the CLI, the library, ``make run``):
``--data-dir`` if given, else ``$THETANET_DATA``, else a per-user cache
(``$XDG_CACHE_HOME/thetanet`` or ``~/.cache/thetanet``). ``thetanet data fetch tratz|mnist``
fills it; ``thetanet data where`` shows what is found where.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "THETANET_DATA"
#: A copy of a data root (URL or folder) that ``thetanet data fetch`` takes the files from.
COPY_ENV_VAR = "THETANET_DATA_FROM"
CACHE_ENV_VAR = "THETANET_CACHE"
#: How the data root is chosen, for help texts and error messages.
RESOLUTION = f"--data-dir, else ${ENV_VAR}, else ~/.cache/thetanet"


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


def data_root_origin(override: str | os.PathLike[str] | None = None) -> str:
    """Where :func:`data_root` took its answer from: ``"--data-dir"``, ``"$THETANET_DATA"``
    or ``"the default"`` — so that a message never blames a variable the user did not set."""
    if override is not None:
        return "--data-dir"
    return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default"


def fetch_command(dataset: str, override: str | os.PathLike[str] | None = None) -> str:
    """The command that fetches ``dataset`` ("tratz" or "mnist") into ``data_root(override)``."""
    cmd = f"thetanet data fetch {dataset}"
    return cmd if override is None else f"{cmd} --data-dir {data_root(override)}"


def missing_data_hint(dataset: str, folder: Path, files: list[str],
                      override: str | os.PathLike[str] | None = None,
                      offline: bool = False) -> str:
    """One sentence saying how to get missing ``files`` of ``dataset`` into ``folder``
    (``offline``: after a failed download, so the command is for when the network is back)."""
    run = "when online, run" if offline else "fetch it with"
    return (f"{run} `{fetch_command(dataset, override)}` (offline: add `--from DIR|URL`, a "
            f"copy of a data root), or put "
            f"{' and '.join(files)} into {folder}/ (data root {data_root(override)} from "
            f"{data_root_origin(override)}; the data root is {RESOLUTION})")


def copy_base_url(copy: str | os.PathLike[str]) -> str:
    """A copy of a data root as a base URL: ``http(s)://`` / ``file://`` URLs as given, a
    local folder as its ``file://`` URL (so the same verified download path reads both)."""
    text = str(copy)
    if "://" in text:
        return text.rstrip("/")
    return Path(text).expanduser().resolve().as_uri().rstrip("/")


def cache_root(override: str | os.PathLike[str] | None = None) -> Path:
    """Writable cache for derived files (feature caches): ``override``, ``$THETANET_CACHE``,
    else ``$XDG_CACHE_HOME/thetanet`` (``~/.cache/thetanet``). Separate from the data root,
    which may be read-only (as ``../shared/data`` is)."""
    return _resolve(override, CACHE_ENV_VAR)
