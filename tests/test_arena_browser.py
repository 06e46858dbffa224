"""The whole competition in a real browser (headless Debian Chromium through Playwright), on
SQLite and on a PostgreSQL server started by the test: the organiser adds two teams (the CLI,
as the README says), team A uploads a valid file in the page and sees its public score, team B
uploads a file with an error and sees the line-numbered message, then a valid one; the
project's own predictions enter from stdin (``arena submit -``); the leaderboard orders them;
after ``arena close`` the private board shows. ``ARENA_SCREENSHOTS=DIR`` saves the pages
(SQLite run) as the README's pictures. In CI (``CI`` set) nothing here skips."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright")
    pytest.importorskip("uvicorn")

import postgres_server
from arena_helpers import (
    add_team,
    arena,
    concurrent_records,
    predictions,
    served,
    synthetic_gold,
    tratz_gold,
)
from playwright.sync_api import Page, sync_playwright

from thetanet.arena.scoring import load_gold, score_upload

postgres = postgres_server.postgres  # the fixture
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]


def _chromium() -> str:
    found = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not found:
        reason = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return found


def _upload(page: Page, url: str, token: str, path: Path) -> None:
    page.goto(f"{url}/submit")
    page.fill("#token", token)
    page.set_input_files("#predictions", str(path))
    page.click("#send")
    page.wait_for_load_state()


def _board(page: Page, caption: str) -> list[list[str]]:
    table = page.locator("table", has=page.locator("caption", has_text=caption))
    return [[c.strip() for c in row.locator("td").all_inner_texts()]
            for row in table.locator("tbody tr").all()]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_whole_competition_in_a_browser(backend, request, tmp_path):
    chromium = _chromium()
    db = (request.getfixturevalue("postgres") if backend == "postgresql"
          else str(tmp_path / "arena.db"))
    gold_path = tratz_gold(tmp_path) or synthetic_gold(tmp_path / "gold.tsv", 400)
    gold = load_gold(gold_path)  # the server's defaults: seed 0, public 30 %
    tokens = {name: add_team(db, name) for name in ("Team A", "Team B", "thetanet")}
    good = predictions(gold_path, 0.25, 1, tmp_path / "a.tsv")
    poor = predictions(gold_path, 0.55, 2, tmp_path / "b.tsv")
    broken = tmp_path / "broken.tsv"
    lines = poor.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[6] = lines[6].rsplit("\t", 1)[0] + "\tNOT_A_RELATION\n"
    broken.write_text("".join(lines), encoding="utf-8")
    shots = os.environ.get("ARENA_SCREENSHOTS") if backend == "sqlite" else None
    log = tmp_path / "server.log"
    with served(gold_path, db, postgres_server.free_port(), log) as url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=FLAGS,
            viewport={"width": 960, "height": 640})
        page = browser.new_page()
        seen: list[str] = []

        def snap(name: str) -> None:
            seen.append(page.content())
            if shots:
                page.screenshot(path=str(Path(shots) / f"arena_{name}.png"))
        page.goto(url + "/")
        assert page.locator("h1").inner_text() == "The task"
        snap("task")

        _upload(page, url, tokens["Team A"], good)
        expected_a = score_upload(gold, good.read_bytes())
        assert page.locator("#public-score").inner_text() == f"{expected_a.public_f1:.4f}"
        snap("scored")

        _upload(page, url, tokens["Team B"], broken)
        message = page.locator("#refused").inner_text()
        assert "submission:7: unknown relation 'NOT_A_RELATION'" in message
        assert "nothing stored" in message
        snap("refused")
        _upload(page, url, tokens["Team B"], poor)
        expected_b = score_upload(gold, poor.read_bytes())
        assert page.locator("#public-score").inner_text() == f"{expected_b.public_f1:.4f}"

        # the project's own system enters from stdin, as `nc predict … | arena submit -` does
        own = arena("submit", "--server", url, "--token", tokens["thetanet"], "-",
                    stdin=predictions(gold_path, 0.4, 3, tmp_path / "own.tsv").read_bytes())
        assert own.returncode == 0 and b"submission 1 of 5 today" in own.stdout, own.stderr

        page.goto(url + "/leaderboard")
        rows = _board(page, "Public board")
        assert [r[1] for r in rows] == ["Team A", "thetanet", "Team B"]
        assert rows[0][:3] == ["1", "Team A", f"{expected_a.public_f1:.4f}"]
        assert rows[2][3] == "1"  # the refused upload did not count
        assert page.locator("caption", has_text="Private board").count() == 0
        snap("public_board")

        closed = arena("close", "--db", db)
        assert closed.returncode == 0, closed.stderr
        page.reload()
        private = _board(page, "Private board")
        assert [r[1] for r in private][0] == "Team A"
        assert private[0][2:4] == [f"{expected_a.private_f1:.4f}", f"{expected_a.full_f1:.4f}"]
        snap("private_board")
        page.goto(url + "/submit")
        assert page.locator("form").count() == 0 and "closed" in page.content()
        browser.close()
    server_log = log.read_text()
    assert "submission 1 today" in server_log
    for token in tokens.values():
        assert token not in server_log and all(token not in html for html in seen)


def test_daily_limit_holds_under_concurrent_writers_on_postgresql(postgres, tmp_path):
    """Where writers truly overlap (PostgreSQL's READ COMMITTED, no database-wide lock), the
    UNIQUE (team, day, slot) constraint alone keeps the limit: 16 writers, limit 4."""

    from sqlalchemy import create_engine, text

    from thetanet.arena import storage
    from thetanet.arena.schema import connect, database_url

    admin = create_engine(database_url(postgres), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE arena_limit"))
    admin.dispose()
    engine = connect(postgres.rsplit("/", 1)[0] + "/arena_limit")
    gold_path = synthetic_gold(tmp_path / "gold.tsv", 200)
    score = score_upload(load_gold(gold_path), gold_path.read_bytes())
    team, _ = storage.add_team(engine, "Team A")
    outcomes = concurrent_records(engine, team, score, 16, limit=4)
    assert sorted(o for o in outcomes if o < 100) == [1, 2, 3, 4]
    assert outcomes.count(429) == 12
    assert storage.counts(engine)["arena_submissions"] == 4
    engine.dispose()
