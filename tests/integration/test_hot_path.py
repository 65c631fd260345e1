"""The hot path's statement budget, and the principal cache never outliving a revocation here."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from imagegate.db.models import Account, Base, Task
from imagegate.db.session import CHECKPOINT_EVERY, Database
from imagegate.errors import NotFoundError
from imagegate.tasks import store
from tests.conftest import T2I_15, Gateway, start_gateway

T2I_URL = "/api/v1/gpt_image/text_to_image"


class Statements:
    """Statements the engine runs, split into a worker's (tasks ``task-<id>``) and the rest."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by: dict[str, list[str]] = {"request": [], "worker": []}

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.written(statement)

    def written(self, statement: str) -> None:
        if statement in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            return
        task = asyncio.current_task()
        who = "worker" if task is not None and task.get_name().startswith("task-") else "request"
        with self.lock:
            self.by[who].append(statement.split(None, 2)[0] + " " + statement.split()[1])

    def take(self) -> dict[str, list[str]]:
        with self.lock:
            taken, self.by = self.by, {"request": [], "worker": []}
        return taken


@pytest.fixture
def instant(tmp_path: Path) -> Iterator[tuple[Gateway, Statements]]:
    # No background pass (webhook poll, sweep) may run a statement inside a counted window: on a
    # loaded machine the window grows and the once-a-second webhook poll landed in it.
    gw = start_gateway(
        tmp_path,
        default_provider="instant",
        free_calls_per_variant=1,
        webhook_poll_s=3600,
        sweep_interval_s=3600,
    )
    statements = Statements()
    db = gw.thread.app.state.gateway.db
    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statements)
    db.trace_writes(statements.written)  # the SQLite write connection's statements
    yield gw, statements
    db.trace_writes(None)
    event.remove(engine, "before_cursor_execute", statements)
    gw.close()


@pytest.mark.one_profile("the embedded profile's statements; PostgreSQL also defers the job")
def test_statements_per_create_get_and_run(instant: tuple[Gateway, Statements]) -> None:
    gw, statements = instant
    user = gw.user()
    for _ in range(2):  # the free call, then a paid one: keys cached, the allowance spent
        task_id = user.post(T2I_URL, json=T2I_15).json()["id"]
        gw.drain()
    statements.take()

    created = user.post(T2I_URL, json=T2I_15)
    assert created.status_code == 200, created.text
    gw.drain()
    taken = statements.take()
    # The balance lock reads the active count and free calls; then the hold, its entry, the row.
    assert taken["request"] == [
        "UPDATE balances",
        "UPDATE balances",
        "INSERT INTO",
        "INSERT INTO",
    ], taken["request"]
    # Claim (returning the task), end (returning it), the hold's move, the totals, the entry.
    assert taken["worker"] == [
        "UPDATE tasks",
        "UPDATE tasks",
        "UPDATE tasks",
        "UPDATE balances",
        "INSERT INTO",
    ], taken["worker"]

    task = user.get(f"/api/v1/tasks/{created.json()['id']}")
    assert task.json()["status"] == "completed"
    assert task.json()["billing"]["settlement"]["amount_micro"] == 40_000
    # Its one SELECT runs on the database's read connection: no session, no engine statement.
    assert statements.take()["request"] == []
    assert task_id != created.json()["id"]


def test_a_revoked_key_is_refused_at_once_though_cached(instant: tuple[Gateway, Statements]) -> None:
    gw, _ = instant
    account_id, key = gw.new_account()
    user = gw.client(key)
    task_id = user.post(T2I_URL, json=T2I_15).json()["id"]
    assert user.get(f"/api/v1/tasks/{task_id}").status_code == 200  # the key is cached now
    prefix = key[:12]
    assert gw.admin().post(f"/admin/keys/{prefix}/revoke").status_code == 200
    refused = user.get(f"/api/v1/tasks/{task_id}")
    assert refused.status_code == 401, refused.text
    assert user.post(T2I_URL, json=T2I_15).status_code == 401
    assert account_id


@pytest.fixture(params=["file", "memory"])
async def empty_db(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """The schema on a SQLite file (the reader and writer connections) or in memory (anything
    else: the session fallback)."""
    db = Database(f"sqlite:///{tmp_path / 'hot.db'}" if request.param == "file" else "sqlite://")
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        yield db
    finally:
        await db.dispose()


async def test_read_one_types_a_row_as_the_orm_would(empty_db: Database) -> None:
    """The reader connection (a SQLite file) and the session fallback (anything else) agree."""
    db = empty_db
    stamp = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    async with db.transaction() as session:
        session.add(Account(id="acct", name="acct", created_at=stamp))
        await session.flush()
        session.add(Task(**TASK, created_at=stamp))
    task = await store.read_for_account(db, "acct", "t-1")
    assert (task.status, task.free_call, task.created_at) == ("completed", True, stamp)
    assert task.images == TASK["images"] and task.usage is None
    with pytest.raises(NotFoundError):
        await store.read_for_account(db, "someone-else", "t-1")
    with pytest.raises(NotFoundError):
        await store.read_for_account(db, "acct", "t-2")


async def test_a_write_commits_whole_or_not_at_all_and_types_as_the_orm(empty_db: Database) -> None:
    """``Database.write``: the SQLite write connection (a file) and the session fallback (anything
    else) insert with the columns' defaults, read RETURNING rows typed alike, and roll back on error."""
    db = empty_db
    stamp = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    async with db.write() as tx:
        await tx.run(
            insert(Base.metadata.tables["accounts"]), {"id": "acct", "name": "a", "created_at": stamp}
        )
        await store.add(tx, {**TASK, "created_at": stamp})  # attempts, prices... by their defaults
    with pytest.raises(RuntimeError):
        async with db.write() as tx:
            claimed = await store.claim(tx, "t-2", stamp, timedelta(seconds=30))
            assert claimed is None  # t-2 does not exist
            await store.add(tx, {**TASK, "id": "t-2", "status": "pending", "created_at": stamp})
            raise RuntimeError("rolled back")
    with pytest.raises(NotFoundError):
        await store.read_for_account(db, "acct", "t-2")
    async with db.write() as tx:
        await store.add(tx, {**TASK, "id": "t-3", "status": "pending", "created_at": stamp})
        claimed = await store.claim(tx, "t-3", stamp, timedelta(seconds=30))
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.started_at) == ("processing", 1, stamp)
    assert claimed.lease_until == stamp + timedelta(seconds=30) and claimed.params == TASK["params"]
    async with db.write() as tx:  # only the attempt that holds the task renews its lease
        assert await store.renew(tx, "t-3", 1, stamp + timedelta(seconds=60))
        assert not await store.renew(tx, "t-3", 2, stamp + timedelta(seconds=90))
    renewed = await store.read_for_account(db, "acct", "t-3")
    assert renewed.lease_until == stamp + timedelta(seconds=60)
    task = await store.read_for_account(db, "acct", "t-1")
    assert (task.attempts, task.price_micro, task.created_at, task.images) == (
        0,
        0,
        stamp,
        TASK["images"],
    )


@pytest.mark.one_profile("SQLite's write-ahead log")
async def test_the_wal_is_copied_back_on_a_thread_never_in_a_commit(tmp_path: Path) -> None:
    """A checkpoint fsyncs the database file (on ext4 with every dirty output file: 0.3-2 s
    measured), so the loop's own commits never run one; every ``CHECKPOINT_EVERY`` commits
    a thread does. Seen from a connection that reads the database file alone (``immutable``:
    no WAL), the rows arrive with that checkpoint, not before."""
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    stamp = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def in_the_file() -> int:
        with closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as file_only:
            if not file_only.execute("SELECT 1 FROM sqlite_master WHERE name = 'tasks'").fetchall():
                return 0  # not even the schema has been copied back yet
            return int(file_only.execute("SELECT count(*) FROM tasks").fetchone()[0])

    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with db.write() as tx:
            await tx.run(
                insert(Base.metadata.tables["accounts"]), {"id": "acct", "name": "a", "created_at": stamp}
            )
        wide = {**TASK, "params": {"prompt": "x" * 20_000}}  # 5 pages a row: past SQLite's 1,000
        for index in range(1, CHECKPOINT_EVERY - 1):
            async with db.write() as tx:
                await store.add(tx, {**wide, "id": f"t-{index}", "created_at": stamp})
        assert in_the_file() == 0  # ~500 pages in the WAL, and no commit copied them back
        async with db.write() as tx:
            await store.add(tx, {**wide, "id": "t-last", "created_at": stamp})
        assert db._checkpoint is not None
        await db._checkpoint  # the commit that made CHECKPOINT_EVERY started it, on a thread
        assert in_the_file() == CHECKPOINT_EVERY - 1
    finally:
        await db.dispose()


TASK: dict[str, Any] = {
    "id": "t-1",
    "account_id": "acct",
    "face": "runapi",
    "service": "gpt_image",
    "action": "text_to_image",
    "model": "gpt-image-1.5",
    "model_served": "gpt-image-1.5",
    "variant": "v",
    "provider": "instant",
    "status": "completed",
    "params": {"prompt": "a fox"},
    "render": {},
    "inputs": [],
    "images": [{"key": "outputs/t-1/0.png", "width": 1, "height": 1}],
    "free_call": True,
    "hold_state": "captured",
}


def test_the_plain_poll_answers_as_the_route_does(instant: tuple[Gateway, Statements]) -> None:
    """api/polled.py serves the plain GET; ``?wait=0`` goes through FastAPI: the same answer."""
    gw, _ = instant
    user = gw.user()
    task_id = user.post(T2I_URL, json=T2I_15).json()["id"]
    gw.drain()
    plain, routed = user.get(f"/api/v1/tasks/{task_id}"), user.get(f"/api/v1/tasks/{task_id}?wait=0")
    assert plain.status_code == routed.status_code == 200
    assert plain.json() == routed.json()
    skip = {"x-request-id", "date", "x-ratelimit-remaining"}
    assert {k: v for k, v in plain.headers.items() if k not in skip} == {
        k: v for k, v in routed.headers.items() if k not in skip
    }
    assert plain.headers["x-request-id"].startswith("req_")
    assert int(plain.headers["x-ratelimit-remaining"]) == int(routed.headers["x-ratelimit-remaining"]) + 1
    unchanged = user.get(f"/api/v1/tasks/{task_id}", headers={"If-None-Match": plain.headers["etag"]})
    assert unchanged.status_code == 304

    _, other_key = gw.new_account()
    other = gw.client(other_key)
    other.get("/api/v1/me")  # its key is cached: the plain form serves it
    for response in (other.get(f"/api/v1/tasks/{task_id}"), other.get(f"/api/v1/tasks/{task_id}?wait=0")):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
        assert "x-ratelimit-limit" in response.headers and response.headers["x-request-id"]
    missing = other.get("/api/v1/tasks/NOT-A-TASK")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_plain_poll_is_rate_limited_like_the_route(tmp_path: Path) -> None:
    tiers = [
        {
            "name": "tiny",
            "creates_per_minute": 5,
            "reads_per_minute": 3,
            "max_concurrent": 5,
            "paid_spend_threshold_micro": 0,
        }
    ]
    gw = start_gateway(tmp_path, default_provider="instant", tiers=tiers)
    try:
        _, key = gw.new_account(tier=None)
        user = gw.client(key)
        task_id = user.post(T2I_URL, json=T2I_15).json()["id"]
        answers = [user.get(f"/api/v1/tasks/{task_id}") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "rate_limit"
        assert refused.headers["Retry-After"] and refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.headers["x-request-id"].startswith("req_")
    finally:
        gw.close()


def test_the_front_create_answers_as_the_route_does(instant: tuple[Gateway, Statements]) -> None:
    """api/polled.py serves the plain create; with a query string it goes through FastAPI."""
    gw, _ = instant
    user = gw.user()
    front, routed = user.post(T2I_URL, json=T2I_15), user.post(T2I_URL + "?via=fastapi", json=T2I_15)
    assert front.status_code == routed.status_code
    assert front.json().keys() == routed.json().keys()
    skip = {"x-request-id", "date", "x-ratelimit-remaining", "x-imagegate-task-id", "x-runapi-task-id"}
    assert {k for k in front.headers if k not in skip} == {k for k in routed.headers if k not in skip}
    assert front.headers["x-request-id"].startswith("req_")
    cases: list[tuple[Any, dict[str, Any]]] = [
        (user, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        (user, {"json": {**T2I_15, "quality": "ultra"}}),
        (user, {"json": T2I_15, "headers": {"X-Client-Request-Id": "x" * 600}}),
        (gw.client("ig_not_a_key"), {"json": T2I_15}),
    ]
    for client, request in cases:
        for url in (T2I_URL, T2I_URL + "?via=fastapi"):
            answer = client.post(url, **request)
            assert 400 <= answer.status_code < 500, answer.text
            assert answer.json()["error"]["code"], answer.text
            assert answer.headers["x-request-id"].startswith("req_")
        front_code = client.post(T2I_URL, **request).json()["error"]["code"]
        assert front_code == client.post(T2I_URL + "?via=fastapi", **request).json()["error"]["code"]
    unknown = user.post("/api/v1/no_such_service/text_to_image", json=T2I_15)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_the_front_generations_answer_as_the_route_does(instant: tuple[Gateway, Statements]) -> None:
    """api/polled.py serves the OpenAI face's generations; with a query string FastAPI does."""
    gw, _ = instant
    user = gw.user()
    url, body = "/v1/images/generations", {"model": "gpt-image-1.5", "prompt": "a blue whale"}
    front, routed = user.post(url, json=body), user.post(url + "?via=fastapi", json=body)
    assert front.status_code == routed.status_code == 200, front.text
    assert front.json().keys() == routed.json().keys()
    assert front.json()["data"][0]["b64_json"] == routed.json()["data"][0]["b64_json"]
    skip = {"x-request-id", "date", "x-ratelimit-remaining", "x-imagegate-task-id", "x-runapi-task-id"}
    skip |= {"content-length"}
    assert {k for k in front.headers if k not in skip} == {k for k in routed.headers if k not in skip}
    assert front.headers["x-request-id"].startswith("req_")
    cases: list[tuple[Any, dict[str, Any]]] = [
        (user, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        (user, {"content": b"[1]", "headers": {"Content-Type": "application/json"}}),
        (user, {"json": {**body, "quality": "ultra"}}),
        (user, {"json": {**body, "colour": "red"}}),
        (user, {"json": body, "headers": {"Idempotency-Key": "x" * 600}}),
        (gw.client("ig_not_a_key"), {"json": body}),
        (gw.client(), {"json": body}),
    ]
    for client, request in cases:
        answers = [client.post(u, **request) for u in (url, url + "?via=fastapi")]
        for answer in answers:
            assert 400 <= answer.status_code < 500, answer.text
            assert answer.headers["x-request-id"].startswith("req_")
        assert answers[0].status_code == answers[1].status_code
        assert answers[0].json()["error"] == answers[1].json()["error"]


def test_the_base_url_follows_each_request_host(instant: tuple[Gateway, Statements]) -> None:
    """Base URLs are kept by what they are made of: a second Host gets its own."""
    gw, _ = instant
    user = gw.user()
    task_id = user.post(T2I_URL, json=T2I_15).json()["id"]
    gw.drain()
    for host in ("one.test", "two.test:8080", "one.test"):
        view = user.get(f"/api/v1/tasks/{task_id}", headers={"Host": host}).json()
        assert view["images"] and view["images"][0]["url"].startswith(f"http://{host}/"), view["images"]
