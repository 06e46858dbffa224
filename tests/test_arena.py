"""The arena in-process: scores equal ``nc score``, the parts combine to the whole, the schema's
versions, the daily limit under concurrent writers, and each abuse refused with nothing stored.
(The whole flow in a real browser, on SQLite and PostgreSQL: test_arena_browser.py.)"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

if not os.environ.get("CI"):
    pytest.importorskip("starlette")
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("httpx")

from arena_helpers import concurrent_records, predictions, synthetic_gold, tratz_gold
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from thetanet.arena import storage
from thetanet.arena.app import ArenaConfig, create_app
from thetanet.arena.guards import BodyLimit
from thetanet.arena.schema import SCHEMA_VERSION, connect
from thetanet.arena.scoring import combine, load_gold, public_mask, score_upload
from thetanet.cli import main


@pytest.fixture
def arena(tmp_path):
    """A synthetic competition: gold, engine, two teams, a client on the app."""
    gold_path = synthetic_gold(tmp_path / "gold.tsv", n=300)
    gold = load_gold(gold_path, seed=0, public_fraction=0.3)
    engine = connect(str(tmp_path / "arena.db"))
    storage.bind(engine, gold)
    (a, token_a), (b, token_b) = (storage.add_team(engine, n) for n in ("Team A", "Team B"))
    app = create_app(gold, engine, ArenaConfig(daily_limit=3, max_upload_bytes=16 << 20,
                                               upload_seconds=10))
    with TestClient(app) as client:
        yield {"gold_path": gold_path, "gold": gold, "engine": engine, "client": client,
               "tokens": (token_a, token_b), "tmp": tmp_path}


def api(client: TestClient, token: str, data: bytes, nonce: str = "n1", **kw):
    return client.post("/api/submissions", content=data, headers={
        "Authorization": f"Bearer {token}", "X-Submission-Id": nonce, **kw})


def nc_score(gold: Path, pred: Path, capsys) -> float:
    assert main(["nc", "score", "--gold", str(gold), "--pred", str(pred), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["weighted_f1"]


@pytest.mark.parametrize("source", ["synthetic", "tratz"])
def test_scores_equal_nc_score_and_the_parts_combine(source, tmp_path, capsys):
    gold_path = (synthetic_gold(tmp_path / "gold.tsv", 400, seed=3) if source == "synthetic"
                 else tratz_gold(tmp_path))
    if gold_path is None:
        pytest.skip("the Tratz fine_random split is not in the data root (thetanet data where)")
    gold = load_gold(gold_path, seed=7, public_fraction=0.3)
    pred_path = predictions(gold_path, 0.35, seed=1, target=tmp_path / "pred.tsv")
    score = score_upload(gold, pred_path.read_bytes())
    assert score.full_f1 == pytest.approx(nc_score(gold_path, pred_path, capsys), abs=1e-12)
    assert 0.3 < score.full_f1 < 0.9  # the noise is visible, so a wrong part would show
    lines = {p: Path(p).read_text(encoding="utf-8").splitlines(keepends=True)
             for p in (gold_path, pred_path)}
    for part, mask in (("public", gold.public), ("private", ~gold.public)):
        files = []
        for p, name in ((gold_path, "gold"), (pred_path, "pred")):
            files.append(tmp_path / f"{part}_{name}.tsv")
            files[-1].write_text("".join(np.asarray(lines[p], object)[mask]), encoding="utf-8")
        expected = nc_score(files[0], files[1], capsys)
        assert getattr(score, f"{part}_f1") == pytest.approx(expected, abs=1e-12)
    assert combine(score.public_counts, score.private_counts) == pytest.approx(
        nc_score(gold_path, pred_path, capsys), abs=1e-12)
    assert score.public_f1 != pytest.approx(score.full_f1, abs=1e-6)  # the parts differ


def test_public_split_is_seeded_and_fixed():
    a, b = public_mask(1000, 0, 0.3), public_mask(1000, 0, 0.3)
    assert (a == b).all() and a.sum() == 300
    assert (public_mask(1000, 1, 0.3) != a).any()
    with pytest.raises(ValueError, match="public fraction"):
        public_mask(10, 0, 1.0)


def test_schema_version_migrations_and_binding(arena, tmp_path):
    engine = arena["engine"]
    with engine.begin() as conn:
        assert conn.execute(text("SELECT value FROM arena_meta WHERE key='schema_version'")
                            ).scalar_one() == str(SCHEMA_VERSION)
    connect(str(tmp_path / "arena.db"))  # idempotent on a current database
    with engine.begin() as conn:
        conn.execute(text("UPDATE arena_meta SET value='99' WHERE key='schema_version'"))
    with pytest.raises(ValueError, match="newer than"):
        connect(str(tmp_path / "arena.db"))
    other = load_gold(synthetic_gold(tmp_path / "other.tsv", 50, seed=9))
    with pytest.raises(ValueError, match="another competition"):
        storage.bind(engine, other)


def test_a_valid_upload_is_scored_and_stored_once(arena):
    client, (token_a, _) = arena["client"], arena["tokens"]
    data = predictions(arena["gold_path"], 0.2, 2, arena["tmp"] / "p.tsv").read_bytes()
    answer = api(client, token_a, data)
    assert answer.status_code == 200, answer.text
    assert answer.json()["public_f1"] == score_upload(arena["gold"], data).public_f1
    assert storage.counts(arena["engine"])["arena_submissions"] == 1
    board = client.get("/api/leaderboard").json()
    assert [r["team"] for r in board["public"]] == ["Team A"] and board["private"] is None


def refused(arena, response, status: int, words: str) -> None:
    """A clear refusal: the status, a message naming the problem, and nothing stored."""
    assert response.status_code == status, response.text
    assert words in response.text
    assert storage.counts(arena["engine"]) == {"arena_teams": 2, "arena_submissions": 0}


def test_abuse_oversized_upload(arena):
    client, (token, _) = arena["client"], arena["tokens"]
    big = b"x" * ((16 << 20) + 100 * 1024)
    refused(arena, api(client, token, big), 413, "larger than the limit")

    def stream():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * (1 << 20)
    refused(arena, api(client, token, stream()), 413, "larger than the limit")
    refused(arena, api(client, token, big[:(16 << 20) + 1]), 413, "larger than the limit")
    form = client.get("/submit")  # in the page: the form's file part is bounded too
    fields = {"csrf": form.cookies.get("arena_csrf") or client.cookies.get("arena_csrf"),
              "nonce": "big", "token": token}
    files = {"predictions": ("p.tsv", big[:(16 << 20) + 1], "text/plain")}
    response = client.post("/submit", data=fields, files=files)
    assert response.status_code == 413 and "larger than the limit" in response.text
    assert storage.counts(arena["engine"])["arena_submissions"] == 0


def test_abuse_bad_encoding_and_a_million_lines(arena):
    client, (token, _) = arena["client"], arena["tokens"]
    lines = arena["gold_path"].read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b"mod4", b"mod\xe94")
    refused(arena, api(client, token, b"".join(lines)), 400, "submission:5:")
    refused(arena, api(client, token, b"a\tb\tOTHER\n" * 10**6), 400, "1,000,000 lines")
    refused(arena, api(client, token, b""), 400, "empty")


def test_abuse_unknown_or_foreign_token(arena, tmp_path):
    client = arena["client"]
    data = arena["gold_path"].read_bytes()
    foreign = connect(str(tmp_path / "other.db"))  # a token of another arena
    _, token = storage.add_team(foreign, "Team A")
    refused(arena, api(client, token, data), 403, "unknown team token")
    refused(arena, api(client, arena["tokens"][0][:-1], data), 403, "unknown team token")
    refused(arena, client.post("/api/submissions", content=data), 403, "unknown team token")


def test_abuse_replayed_request(arena):
    client, (token, _) = arena["client"], arena["tokens"]
    data = arena["gold_path"].read_bytes()
    assert api(client, token, data, nonce="once").status_code == 200
    again = api(client, token, data, nonce="once")
    assert again.status_code == 409 and "replay" in again.text
    assert storage.counts(arena["engine"])["arena_submissions"] == 1
    no_id = client.post("/api/submissions", content=data,
                        headers={"Authorization": f"Bearer {token}"})
    assert no_id.status_code == 400 and storage.counts(arena["engine"])["arena_submissions"] == 1


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "Robert'); DROP TABLE "
                                  "arena_teams;--", "a\u202egnp", "x" * 41, "  "])
def test_abuse_markup_or_sql_in_a_team_name(arena, name, capsys):
    db = str(arena["tmp"] / "arena.db")
    assert main(["arena", "team", "add", name, "--db", db]) == 2
    err = capsys.readouterr().err
    assert "nothing stored" in err and "token" not in err
    assert storage.counts(arena["engine"]) == {"arena_teams": 2, "arena_submissions": 0}


def test_forms_need_the_csrf_cookie_and_refuse_a_replayed_form(arena):
    client, (token, _) = arena["client"], arena["tokens"]
    data = arena["gold_path"].read_bytes()
    form = client.get("/submit")
    csrf = form.cookies.get("arena_csrf") or client.cookies.get("arena_csrf")
    fields = {"csrf": csrf, "nonce": "form-nonce-1", "token": token}
    files = {"predictions": ("p.tsv", data, "text/tab-separated-values")}
    client.cookies.clear()  # another site's form carries no cookie of ours
    refused(arena, client.post("/submit", data=fields, files=files), 403, "another site")
    client.cookies.clear()  # (the refusal set a fresh cookie) our own page's cookie:
    client.cookies.set("arena_csrf", csrf)
    ok = client.post("/submit", data=fields, files=files)
    assert ok.status_code == 200 and 'id="public-score"' in ok.text
    again = client.post("/submit", data=fields, files=files)
    assert again.status_code == 409 and "replay" in again.text
    assert storage.counts(arena["engine"])["arena_submissions"] == 1


async def _reader(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("read")


def test_a_slow_upload_is_cut_off():
    sent: list[dict] = []

    async def stalled() -> dict:  # a client that opened a body and never sends it
        await asyncio.Event().wait()
        return {}

    async def send(message: dict) -> None:
        sent.append(message)
    app = Starlette(routes=[Route("/", _reader, methods=["POST"])])
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("t", 80), "client": ("c", 1),
             "http_version": "1.1"}
    asyncio.run(asyncio.wait_for(BodyLimit(app, 1000, 0.05)(scope, stalled, send), 10))
    assert sent[0]["status"] == 408
    assert b"longer than" in b"".join(m.get("body", b"") for m in sent)


def test_daily_limit_holds_under_concurrent_writers(arena):
    engine, gold = arena["engine"], arena["gold"]
    team = storage.find_team(engine, arena["tokens"][0])
    score = score_upload(gold, arena["gold_path"].read_bytes())
    outcomes = concurrent_records(engine, team, score, 12, limit=5)
    assert sorted(o for o in outcomes if o < 100) == [1, 2, 3, 4, 5]
    assert outcomes.count(429) == 7
    assert storage.counts(engine)["arena_submissions"] == 5


def test_pages_escape_names_and_show_no_token_or_gold(arena, caplog):
    client, (token_a, token_b) = arena["client"], arena["tokens"]
    caplog.set_level("INFO", logger="thetanet.arena")
    assert api(client, token_a, arena["gold_path"].read_bytes()).status_code == 200
    pages = [client.get(p).text for p in ("/", "/leaderboard", "/submit")]
    for secret in (token_a, token_b):
        assert all(secret not in page for page in pages) and secret not in caplog.text
    assert "team Team A: submission 1" in caplog.text
    assert "mod0\thead0" not in "".join(pages)
    compounds = client.get("/test.tsv").text.splitlines()  # what teams predict: no relation
    assert [tuple(line.split("\t")) for line in compounds] == arena["gold"].pairs
    for path in ("/gold", "/gold.tsv", "/static/../gold.tsv", "/static/%2e%2e/arena.db"):
        assert client.get(path).status_code == 404
    arena_app = client.app.app.state.arena
    board = storage.Board([storage.Row(1, "<script>x</script>", 0.5, 1, "now")], None)
    html = arena_app.env.get_template("leaderboard.html").render(
        title="t", closed=None, gold=arena["gold"], config=arena_app.config, board=board)
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_close_shows_the_private_board_and_stops_submissions(arena, capsys):
    client, (token_a, token_b) = arena["client"], arena["tokens"]
    good = predictions(arena["gold_path"], 0.1, 4, arena["tmp"] / "a.tsv").read_bytes()
    poor = predictions(arena["gold_path"], 0.6, 5, arena["tmp"] / "b.tsv").read_bytes()
    assert api(client, token_a, good, "a1").status_code == 200
    assert api(client, token_b, poor, "b1").status_code == 200
    assert main(["arena", "close", "--db", str(arena["tmp"] / "arena.db")]) == 0
    assert "final (private) board" in capsys.readouterr().out
    board = client.get("/api/leaderboard").json()
    assert [r["team"] for r in board["private"]] == ["Team A", "Team B"]
    expected = score_upload(arena["gold"], good)
    assert board["private"][0]["score"] == expected.private_f1
    assert board["private"][0]["full"] == expected.full_f1
    refused_after = api(client, token_a, good, "a2")
    assert refused_after.status_code == 403 and "closed" in refused_after.text
    assert "Private board" in client.get("/leaderboard").text


def test_the_projects_own_predictions_enter_as_they_are(tmp_path, capsys):
    """test.tsv from the arena → ``nc predict`` (a small saved model, relations A/B/C) → the
    API: the file ``nc predict`` writes is a valid submission, scored as ``nc score`` scores it."""
    rng = np.random.default_rng(5)
    gold_path = tmp_path / "gold.tsv"
    gold_path.write_text("".join(f"w{rng.integers(12)}\tw{rng.integers(12)}\t{rng.choice(list('ABC'))}\n"
                                 for _ in range(60)), encoding="utf-8")
    gold = load_gold(gold_path)
    engine = connect(str(tmp_path / "arena.db"))
    _, token = storage.add_team(engine, "thetanet")
    with TestClient(create_app(gold, engine)) as client:
        (tmp_path / "test.tsv").write_text(client.get("/test.tsv").text, encoding="utf-8")
        model = Path(__file__).resolve().parent / "fixtures" / "nc_v2"
        assert main(["nc", "predict", "--model", str(model), "--input",
                     str(tmp_path / "test.tsv"), "--output", str(tmp_path / "pred.tsv")]) == 0
        answer = api(client, token, (tmp_path / "pred.tsv").read_bytes())
    assert answer.status_code == 200, answer.text
    capsys.readouterr()
    assert gold.inventory_name.startswith("the gold file's own relations (3)")
    full = nc_score(gold_path, tmp_path / "pred.tsv", capsys)
    stored = storage.boards(engine).public[0]
    assert stored.team == "thetanet" and stored.score == answer.json()["public_f1"]
    assert score_upload(gold, (tmp_path / "pred.tsv").read_bytes()).full_f1 == pytest.approx(
        full, abs=1e-12)


def test_after_the_deadline_nothing_counts(tmp_path):
    gold_path = synthetic_gold(tmp_path / "gold.tsv", 50)
    engine = connect(str(tmp_path / "arena.db"))
    _, token = storage.add_team(engine, "Late")
    past = storage.now() - timedelta(minutes=1)
    with TestClient(create_app(load_gold(gold_path), engine, ArenaConfig(deadline=past))) as c:
        answer = api(c, token, gold_path.read_bytes())
        assert "Deadline" in c.get("/").text
    assert answer.status_code == 403 and "deadline has passed" in answer.text
    assert storage.counts(engine)["arena_submissions"] == 0
