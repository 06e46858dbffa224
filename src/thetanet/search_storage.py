"""Where architecture-search studies live: Optuna storages (SQLite by default, PostgreSQL to
share a study between machines), with a heartbeat so that a dead worker's trial is retried.

The default database is a SQLite file in the user data directory
(:func:`default_storage_path`), never the working directory (often a repository).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DB_NAME", "default_storage_path", "display_url", "load_existing_study",
           "open_storage", "storage_url"]

#: The default study database's file name (in :func:`default_storage_path`'s folder).
DEFAULT_DB_NAME = "thetanet-search.db"


def default_storage_path() -> Path:
    """The default study database: ``$XDG_DATA_HOME/thetanet/thetanet-search.db``
    (``~/.local/share/thetanet/thetanet-search.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "thetanet" / DEFAULT_DB_NAME


def storage_url(url: str | None) -> str:
    """A SQLAlchemy URL: ``None`` → the SQLite file :func:`default_storage_path`; a bare
    path → SQLite file; ``postgresql://`` / ``postgres://`` → the psycopg (3) driver."""
    url = url or str(default_storage_path())
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def display_url(url: str) -> str:
    """``url`` with its password hidden (for printing)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def load_existing_study(url: str | None, study_name: str) -> Any:
    """An existing study (to report or train from); creates no database on the way."""
    import optuna
    from sqlalchemy.engine import make_url

    url = storage_url(url)
    db = make_url(url).database if url.startswith("sqlite") else ""
    if db not in ("", ":memory:", None) and not Path(db).is_file():
        raise ValueError(f"no study database at {db}")
    try:
        return optuna.load_study(study_name=study_name, storage=url)
    except KeyError:
        raise ValueError(f"no study {study_name!r} in {display_url(url)}") from None


def open_storage(url: str | None = None, *, heartbeat_interval: int = 30,
                 grace_period: int | None = None, retries: int = 1) -> Any:
    """An Optuna RDB storage with a heartbeat: a trial whose worker stopped beating for
    ``grace_period`` s (default 2 × interval) is marked failed by the next worker and its
    parameters queued again (at most ``retries`` times)."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    url = storage_url(url)
    sqlite = url.startswith("sqlite")
    if sqlite:  # SQLite creates the file, not its folder (the default's may be new)
        from sqlalchemy.engine import make_url

        db = make_url(url).database
        if db not in ("", ":memory:", None):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    # SQLite: wait for the other workers' writes instead of failing with "locked"; no
    # implicit transactions of the driver (see below)
    engine = {"connect_args": {"timeout": 60, "isolation_level": None}} if sqlite else {}
    for attempt in range(5):  # workers starting together race to create the tables
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
                store = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period or 2 * heartbeat_interval,
                    heartbeat_stale_trial_callback=retry)
            break
        except (IntegrityError, OperationalError, ProgrammingError):
            if attempt == 4:
                raise
    if sqlite:
        # SQLite has no SELECT … FOR UPDATE: take its write lock when a transaction begins,
        # so two workers never both pop one queued trial (an enqueued or a retried one)
        from sqlalchemy import event

        event.listen(store.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return store
