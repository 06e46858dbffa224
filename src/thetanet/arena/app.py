"""The arena web app (Starlette, server-rendered Jinja2 pages, run by uvicorn).

Pages: ``/`` the task, ``/leaderboard``, ``/submit`` (a form: the team's token, the file);
``/test.tsv`` the test compounds to predict, without their relations.
API: ``POST /api/submissions`` (body: the predictions TSV; ``Authorization: Bearer <token>``;
``X-Submission-Id``: a fresh id per submission, so a replayed request is refused) and
``GET /api/leaderboard``. Forms carry a CSRF token matched against a ``SameSite=Strict``
cookie and a one-use request id. Nothing serves a file from disk but the stylesheet; the gold
file is read once, at start, and only its scores leave the process. Tokens never reach a page
or a log line.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from thetanet.arena import storage
from thetanet.arena.guards import BodyLimit
from thetanet.arena.scoring import Gold, Score, SubmissionError, score_upload

__all__ = ["ArenaConfig", "create_app"]

log = logging.getLogger("thetanet.arena")
HERE = Path(__file__).resolve().parent
CSRF_COOKIE = "arena_csrf"


@dataclass(frozen=True)
class ArenaConfig:
    """What the organiser sets at ``arena serve``."""

    title: str = "Noun-compound relation classification"
    daily_limit: int = 5
    max_upload_bytes: int = 8 << 20
    upload_seconds: float = 30.0
    deadline: datetime | None = None


def _templates() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True))


class Arena:
    """The request handlers, holding the gold file, the engine and the settings."""

    def __init__(self, gold: Gold, engine: Engine, config: ArenaConfig) -> None:
        self.gold, self.engine, self.config = gold, engine, config
        self.env = _templates()

    # ---- pages ------------------------------------------------------------------------
    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        closed = storage.closed_at(self.engine)
        html = self.env.get_template(name).render(
            title=self.config.title, closed=closed, gold=self.gold, config=self.config,
            **context)
        return HTMLResponse(html, status_code=status)

    async def task(self, request: Request) -> Response:
        return await run_in_threadpool(
            self.page, "task.html", n_public=int(self.gold.public.sum()),
            n_private=int((~self.gold.public).sum()))

    async def compounds(self, request: Request) -> Response:
        """The test compounds, ``modifier<TAB>head`` in order: what teams predict."""
        body = "".join(f"{m}\t{h}\n" for m, h in self.gold.pairs)
        return PlainTextResponse(body, media_type="text/tab-separated-values",
                                 headers={"Content-Disposition": 'attachment; filename="test.tsv"'})

    async def leaderboard(self, request: Request) -> Response:
        board = await run_in_threadpool(storage.boards, self.engine)
        return await run_in_threadpool(self.page, "leaderboard.html", board=board)

    def submit_form(self, request: Request, status: int = 200, **context: Any) -> Response:
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if not (20 <= len(csrf) <= 64 and csrf.replace("-", "").replace("_", "").isalnum()):
            csrf = secrets.token_urlsafe(24)
        response = self.page("submit.html", status, csrf=csrf,
                             nonce=secrets.token_urlsafe(24), **context)
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
        return response

    async def submit_get(self, request: Request) -> Response:
        return await run_in_threadpool(self.submit_form, request)

    async def submit_post(self, request: Request) -> Response:
        form = await request.form(max_files=1, max_fields=5,
                                  max_part_size=self.config.max_upload_bytes)
        cookie, sent = request.cookies.get(CSRF_COOKIE, ""), str(form.get("csrf", ""))
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return await run_in_threadpool(
                self.submit_form, request, 403,
                error="the form expired or came from another site: nothing stored; "
                      "submit again from this page")
        upload = form.get("predictions")
        data = await upload.read() if isinstance(upload, UploadFile) else b""
        outcome = await self.handle(str(form.get("token", "")), str(form.get("nonce", "")),
                                    data)
        status = outcome.pop("status")
        return await run_in_threadpool(self.submit_form, request, status, outcome=outcome)

    # ---- API ----------------------------------------------------------------------------
    async def api_submit(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        data = await request.body()
        outcome = await self.handle(token, request.headers.get("x-submission-id", ""), data)
        status = outcome.pop("status")
        return JSONResponse(outcome, status_code=status)

    async def api_board(self, request: Request) -> Response:
        board = await run_in_threadpool(storage.boards, self.engine)
        return JSONResponse(asdict(board))

    # ---- one submission -----------------------------------------------------------------
    async def handle(self, token: str, nonce: str, data: bytes) -> dict[str, Any]:
        """Check, score and store one upload: a dict for the page or the JSON answer."""
        if len(data) > self.config.max_upload_bytes:
            return {"status": 413, "error": f"the upload is larger than the limit of "
                                            f"{self.config.max_upload_bytes:,} bytes; "
                                            "nothing stored"}
        team = await run_in_threadpool(storage.find_team, self.engine, token)
        if team is None:
            return {"status": 403, "error": "unknown team token: nothing stored"}
        if self.config.deadline and storage.now() > self.config.deadline:
            return {"status": 403, "error": "the deadline has passed: nothing stored"}
        try:
            score: Score = await run_in_threadpool(score_upload, self.gold, data)
        except SubmissionError as exc:
            return {"status": 400, "error": f"{exc}: nothing stored", "problems": exc.problems}
        try:
            slot = await run_in_threadpool(storage.record, self.engine, team, nonce, score,
                                           self.config.daily_limit)
        except storage.Refused as exc:
            return {"status": exc.status, "error": str(exc)}
        log.info("team %s: submission %d today, public weighted-F1 %.4f", team.name, slot,
                 score.public_f1)
        return {"status": 200, "team": team.name, "public_f1": score.public_f1,
                "used_today": slot, "daily_limit": self.config.daily_limit}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    arena: Arena = request.app.state.arena
    return arena.page("error.html", exc.status_code, message=exc.detail)


def create_app(gold: Gold, engine: Engine, config: ArenaConfig | None = None) -> BodyLimit:
    """The ASGI app: the routes behind the request bounds."""
    config = config or ArenaConfig()
    arena = Arena(gold, engine, config)
    routes = [
        Route("/", arena.task),
        Route("/leaderboard", arena.leaderboard),
        Route("/test.tsv", arena.compounds),
        Route("/submit", arena.submit_get, methods=["GET"]),
        Route("/submit", arena.submit_post, methods=["POST"]),
        Route("/api/submissions", arena.api_submit, methods=["POST"]),
        Route("/api/leaderboard", arena.api_board),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.arena = arena
    return BodyLimit(app, config.max_upload_bytes + 64 * 1024, config.upload_seconds)
