"""What the arena keeps: the competition's binding to one gold file, teams (tokens hashed),
submissions (each one row, written whole in one transaction or not at all), and the boards.

Tokens are 32 random bytes shown once; only their SHA-256 is stored (a random token needs no
slow hash). Team names are a short, plain alphabet: letters, digits, space, ``-``, ``_``, ``.``
— markup or SQL in a name is refused, and pages escape names anyway.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from thetanet.arena.schema import meta, submissions, teams
from thetanet.arena.scoring import Gold, Score

__all__ = ["Board", "Refused", "Team", "add_team", "bind", "boards", "close", "closed_at",
           "find_team", "hash_token", "record", "check_team_name"]

MAX_NAME = 40


class Refused(Exception):
    """A submission the rules turn away; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Team:
    id: int
    name: str


@dataclass(frozen=True)
class Row:
    """One line of a board."""

    rank: int
    team: str
    score: float
    used: int
    last: str
    full: float | None = None


@dataclass(frozen=True)
class Board:
    public: list[Row]
    private: list[Row] | None  # None until the organiser closes the competition


def now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_team_name(name: str) -> str:
    """The name, stripped, if it is 1–40 letters, digits, spaces, '-', '_' or '.'."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"a team name has 1 to {MAX_NAME} characters, got {len(name)}")
    bad = sorted({ch for ch in name if not (ch.isalnum() or ch in " -_.")})
    if bad or "  " in name:
        shown = " ".join(repr(ch) for ch in bad) or "double spaces"
        raise ValueError(f"a team name may hold only letters, digits, single spaces, '-', '_' "
                         f"and '.'; refused: {shown}")
    return name


def _get(conn: Connection, key: str) -> str | None:
    row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
    return row[0] if row else None


def bind(engine: Engine, gold: Gold) -> None:
    """Tie the database to this gold file and public split (first serve), or check it is the
    one it was tied to: a board must never mix scores of two test sets."""
    want = {"gold_sha256": gold.sha256, "seed": str(gold.seed),
            "public_fraction": repr(gold.public_fraction)}
    with engine.begin() as conn:
        have = {k: _get(conn, k) for k in want}
        if all(v is None for v in have.values()):
            conn.execute(meta.insert(), [{"key": k, "value": v} for k, v in want.items()])
            return
    if have != want:
        diff = ", ".join(f"{k} {have[k]} (now {want[k]})" for k in want if have[k] != want[k])
        raise ValueError(f"this database belongs to another competition: {diff}")


def add_team(engine: Engine, name: str) -> tuple[Team, str]:
    """A new team and its token (returned once, stored hashed)."""
    name = check_team_name(name)
    token = secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            new_id = conn.execute(teams.insert().values(
                name=name, name_key=name.casefold(), token_hash=hash_token(token),
                created_at=stamp(now()))).inserted_primary_key[0]
    except IntegrityError:
        raise ValueError(f"a team named {name!r} already exists") from None
    return Team(int(new_id), name), token


def find_team(engine: Engine, token: str) -> Team | None:
    """The team holding ``token``, or None."""
    if not token or len(token) > 200:
        return None
    with engine.begin() as conn:
        row = conn.execute(select(teams.c.id, teams.c.name)
                           .where(teams.c.token_hash == hash_token(token))).first()
    return Team(int(row[0]), row[1]) if row else None


def closed_at(engine: Engine) -> str | None:
    with engine.begin() as conn:
        return _get(conn, "closed_at")


def close(engine: Engine) -> str:
    """Close the competition (idempotent): no more submissions; the private board shows."""
    with engine.begin() as conn:
        when = _get(conn, "closed_at")
        if when is None:
            when = stamp(now())
            conn.execute(meta.insert().values(key="closed_at", value=when))
    return when


def _try_insert(engine: Engine, team: Team, nonce: str, score: Score, limit: int,
                t: datetime) -> int:
    """One attempt: the checks and the insert in one transaction; returns the slot taken."""
    day = t.strftime("%Y-%m-%d")
    with engine.begin() as conn:
        if _get(conn, "closed_at") is not None:
            raise Refused("the competition is closed: no more submissions", 403)
        if conn.execute(select(submissions.c.id).where(submissions.c.nonce == nonce)).first():
            raise Refused("this request was already received (a replay): nothing stored", 409)
        used = conn.execute(select(func.count()).select_from(submissions).where(
            submissions.c.team_id == team.id, submissions.c.day == day)).scalar_one()
        if used >= limit:
            raise Refused(f"daily limit reached: {limit} submissions per team per day (UTC); "
                          "nothing stored", 429)
        conn.execute(submissions.insert().values(
            team_id=team.id, day=day, slot=used + 1, nonce=nonce, created_at=stamp(t),
            n_lines=score.n_lines, file_sha256=score.sha256, public_f1=score.public_f1,
            private_f1=score.private_f1, full_f1=score.full_f1,
            public_counts=json.dumps(score.public_counts, sort_keys=True),
            private_counts=json.dumps(score.private_counts, sort_keys=True)))
        return int(used + 1)


def record(engine: Engine, team: Team, nonce: str, score: Score, limit: int) -> int:
    """Store a scored submission within the daily limit; returns its slot of the day.

    Two concurrent writers may both see the same free slot: the unique constraint lets one
    insert, the other rolls back whole and tries again with the count it now sees.
    """
    if not nonce or len(nonce) > 64:
        raise Refused("a submission needs a request id of 1 to 64 characters", 400)
    for _ in range(limit + 5):
        try:
            return _try_insert(engine, team, nonce, score, limit, now())
        except IntegrityError:
            continue  # lost a race for the slot (or the nonce): look again
    raise Refused("the server is busy: nothing stored, try again", 503)


def _best(rows: list[dict], key: str) -> dict:
    """The submission with the best ``key``; the earliest among equals."""
    return min(rows, key=lambda r: (-r[key], r["id"]))


def _ranked(per_team: dict[str, list[dict]], key: str, full: bool) -> list[Row]:
    chosen = []
    for name, rows in per_team.items():
        best = _best(rows, "public_f1")  # the private board scores the team's best public one
        chosen.append((best[key], best["id"], name, len(rows), rows[-1]["created_at"],
                       best["full_f1"] if full else None))
    chosen.sort(key=lambda c: (-c[0], c[1]))
    return [Row(i, name, score, used, last[:16].replace("T", " "), f)
            for i, (score, _, name, used, last, f) in enumerate(chosen, start=1)]


def boards(engine: Engine) -> Board:
    """The public board (best public score per team) and, once closed, the private one."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(submissions.c.id, submissions.c.created_at, submissions.c.public_f1,
                   submissions.c.private_f1, submissions.c.full_f1, teams.c.name)
            .join(teams, teams.c.id == submissions.c.team_id)
            .order_by(submissions.c.id)).mappings().all()
        closed = _get(conn, "closed_at") is not None
    per_team: dict[str, list[dict]] = {}
    for r in rows:
        per_team.setdefault(r["name"], []).append(dict(r))
    return Board(_ranked(per_team, "public_f1", False),
                 _ranked(per_team, "private_f1", True) if closed else None)


def counts(engine: Engine) -> dict[str, int]:
    """Rows per table (what tests and the load benchmark check)."""
    with engine.begin() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (teams, submissions)}
