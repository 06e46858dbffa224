"""The arena's database: tables, the schema version and its migrations, and the engine.

SQLite by default (one file, WAL, every transaction ``BEGIN IMMEDIATE`` so writers queue instead
of failing), PostgreSQL by URL. The schema version lives in the ``meta`` table; :func:`migrate`
brings an older database up to :data:`SCHEMA_VERSION`, one numbered step at a time, and refuses a
newer one. The daily limit is a constraint, not a lock: a submission takes the next free
``slot`` of its team's day, and ``UNIQUE (team_id, day, slot)`` lets only one of two concurrent
writers have it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import make_url

__all__ = ["SCHEMA_VERSION", "connect", "meta", "migrate", "submissions", "teams"]

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "arena_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
teams = Table(
    "arena_teams", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False),
    Column("name_key", String(40), nullable=False, unique=True),  # casefolded: no look-alikes
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
)
submissions = Table(
    "arena_submissions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", Integer, ForeignKey("arena_teams.id"), nullable=False),
    Column("day", String(10), nullable=False),  # UTC date, the daily limit's unit
    Column("slot", Integer, nullable=False),  # 1, 2, … within (team, day)
    Column("nonce", String(64), nullable=False, unique=True),  # a replayed request reuses it
    Column("created_at", String(32), nullable=False),
    Column("n_lines", Integer, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("public_f1", Float, nullable=False),
    Column("private_f1", Float, nullable=False),
    Column("full_f1", Float, nullable=False),
    Column("public_counts", Text, nullable=False),  # JSON {relation: [tp, predicted, support]}
    Column("private_counts", Text, nullable=False),
    UniqueConstraint("team_id", "day", "slot", name="one_submission_per_slot"),
    CheckConstraint("slot >= 1", name="slot_positive"),
)


def _v1(conn: Connection) -> None:
    """Version 1: teams and submissions."""
    metadata.create_all(conn, tables=[teams, submissions])


#: Migration to version v (from v - 1), in order.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1}


def database_url(db: str) -> str:
    """An SQLAlchemy URL: ``postgresql://…`` uses psycopg 3; a bare path is an SQLite file."""
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    url = make_url(db)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def connect(db: str) -> Engine:
    """An engine on ``db`` (URL or SQLite path), its schema migrated to the current version."""
    url = database_url(db)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # writers queue on the database lock instead of failing on a read-then-write upgrade
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    else:
        engine = create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True)
    migrate(engine)
    return engine


def schema_version(conn: Connection) -> int:
    """The database's schema version; 0 for an empty database."""
    if not inspect(conn).has_table(meta.name):
        return 0
    row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row[0]) if row else 0


def migrate(engine: Engine) -> int:
    """Apply the missing migrations in one transaction; returns the version reached."""
    with engine.begin() as conn:
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise ValueError(f"the arena database has schema version {current}, newer than "
                             f"this thetanet's {SCHEMA_VERSION}: upgrade thetanet")
        if current < SCHEMA_VERSION:
            metadata.create_all(conn, tables=[meta])
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](conn)
            if current == 0:
                conn.execute(meta.insert().values(key="schema_version",
                                                  value=str(SCHEMA_VERSION)))
            else:
                conn.execute(meta.update().where(meta.c.key == "schema_version")
                             .values(value=str(SCHEMA_VERSION)))
    return SCHEMA_VERSION
