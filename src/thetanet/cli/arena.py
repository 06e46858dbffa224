"""``thetanet arena``: hold the competition (serve, team add, close) and enter it (submit).

The organiser: ``arena serve --gold test.tsv --db arena.db``, ``arena team add NAME --db …``
(prints the team's token once, as the last word), ``arena close --db …`` (the private board).
A team: ``thetanet nc predict … | thetanet arena submit --server URL --token TOKEN``. Serving
needs the ``arena`` extra (Starlette, uvicorn, SQLAlchemy, Jinja2); submitting needs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import Any

from thetanet.cli import CLIError, positive_int
from thetanet.cli.arguments import input_file, number

TOKEN_ENV = "THETANET_ARENA_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("arena", help="hold a competition: web app, teams, leaderboards",
                       description="Hold a competition (serve, team add, close) and enter "
                                   "it (submit).")
    asub = p.add_subparsers(dest="arena_command", metavar="ACTION")
    sv = asub.add_parser("serve", help="run the competition's web app")
    sv.add_argument("--gold", required=True, help="the hidden test set, modifier<TAB>head<TAB>"
                                                  "RELATION (never served)")
    sv.add_argument("--db", required=True, help="SQLite file or URL (sqlite:///…, "
                                                "postgresql://user@host/db)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--title", default="Noun-compound relation classification")
    sv.add_argument("--daily-limit", type=positive_int, default=5)
    sv.add_argument("--public-fraction", type=float, default=0.3,
                    help="share of the test set on the public board (default 0.3)")
    sv.add_argument("--seed", type=int, default=0, help="seed of the public/private split")
    sv.add_argument("--deadline", default=None, help="UTC, e.g. 2026-12-20T23:59")
    sv.add_argument("--max-upload-mb", type=float, default=8.0)
    sv.add_argument("--upload-seconds", type=float, default=30.0)
    sv.set_defaults(func=cmd_serve)

    team = asub.add_parser("team", help="manage teams").add_subparsers(
        dest="team_command", metavar="ACTION")
    add = team.add_parser("add", help="add a team; prints its token once, as the last word")
    add.add_argument("name")
    add.add_argument("--db", required=True)
    add.set_defaults(func=cmd_team_add)

    cl = asub.add_parser("close", help="close the competition and show the private board")
    cl.add_argument("--db", required=True)
    cl.set_defaults(func=cmd_close)

    sb = asub.add_parser("submit", help="submit a predictions TSV to an arena")
    sb.add_argument("predictions", nargs="?", default="-", help="the TSV, or '-' (stdin)")
    sb.add_argument("--server", required=True, help="the arena's address, http://host:port")
    sb.add_argument("--token", default=None, help=f"the team's token (or ${TOKEN_ENV})")
    sb.add_argument("--timeout", type=float, default=120.0)
    sb.set_defaults(func=cmd_submit)
    p.set_defaults(func=lambda args: _help(p))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _engine(db: str) -> Any:
    try:
        from thetanet.arena.schema import connect
    except ImportError as exc:
        raise CLIError(f"the arena needs its extra ({exc.name} is missing): "
                       "pip install 'thetanet[arena]'") from None
    try:
        return connect(db)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except Exception as exc:  # the driver's own error: unreachable server, bad file
        raise CLIError(f"cannot open the arena database: {type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def _deadline(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(f"--deadline must be an ISO date-time such as 2026-12-20T23:59, "
                       f"got {text!r}") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def cmd_serve(args: argparse.Namespace) -> int:
    input_file("--gold", args.gold)
    number("--public-fraction", args.public_fraction, low=0, high=1, low_open=True,
           high_open=True)
    number("--max-upload-mb", args.max_upload_mb, low=0, high=1024, low_open=True)
    number("--upload-seconds", args.upload_seconds, low=0, high=3600, low_open=True)
    engine = _engine(args.db)
    import logging

    import uvicorn

    from thetanet.arena import storage
    from thetanet.arena.app import ArenaConfig, create_app
    from thetanet.arena.scoring import load_gold
    from thetanet.data.tratz import DataFormatError

    try:
        gold = load_gold(args.gold, args.seed, args.public_fraction)
        storage.bind(engine, gold)
    except (DataFormatError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    config = ArenaConfig(args.title, args.daily_limit, int(args.max_upload_mb * (1 << 20)),
                         args.upload_seconds, _deadline(args.deadline))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    print(f"arena: {gold.n} test compounds ({int(gold.public.sum())} public), "
          f"{gold.inventory_name}; http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(create_app(gold, engine, config), host=args.host, port=args.port,
                log_level="info", timeout_keep_alive=5, server_header=False)
    return 0


def cmd_team_add(args: argparse.Namespace) -> int:
    from thetanet.arena import storage

    engine = _engine(args.db)
    try:
        team, token = storage.add_team(engine, args.name)
    except ValueError as exc:
        raise CLIError(f"{exc}; nothing stored") from None
    print(f"team {team.name!r} added; its token, shown only now (stored hashed): {token}")
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    from thetanet.arena import storage

    engine = _engine(args.db)
    when = storage.close(engine)
    board = storage.boards(engine)
    print(f"closed at {when}; final (private) board:")
    for row in board.private or []:
        print(f"{row.rank:3d}  {row.team:<40}  private {row.score:.4f}  full {row.full:.4f}  "
              f"public {next(r.score for r in board.public if r.team == row.team):.4f}")
    return 0


def _read_predictions(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    input_file("predictions", path)
    with open(path, "rb") as fh:
        return fh.read()


def cmd_submit(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise CLIError(f"a team token is needed: --token TOKEN or ${TOKEN_ENV}")
    data = _read_predictions(args.predictions)
    request = urllib.request.Request(
        args.server.rstrip("/") + "/api/submissions", data=data, method="POST",
        headers={"Authorization": f"Bearer {token}", "X-Submission-Id": uuid.uuid4().hex,
                 "Content-Type": "text/tab-separated-values; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"error": body.strip() or exc.reason}
        for problem in answer.get("problems", []):
            print(f"thetanet arena submit: {problem}", file=sys.stderr)
        raise CLIError(f"refused ({exc.code}): {answer.get('error')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CLIError(f"cannot reach {args.server}: {exc}") from None
    print(f"team {answer['team']}: public weighted-F1 {answer['public_f1']:.4f} "
          f"(submission {answer['used_today']} of {answer['daily_limit']} today)")
    return 0
