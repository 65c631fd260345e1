"""The floor: the least work a task can cost, as a bare ASGI app under the same uvicorn.

bench/hot_path.py measures imagegate against this. Per create it does a task's minimum work and
nothing else: one key lookup (SELECT by hash), one insert (the task row), write the fixed ~2 MB
PNG to a file, one update (task completed), answer JSON. A GET of a task is one SELECT. SQLite in
WAL mode through the stdlib ``sqlite3`` module, called on the event loop (every statement is a
few tens of microseconds; a thread hop would cost more than it saves).

Routes, mirroring imagegate's:

``POST /api/v1/gpt_image/text_to_image``
    Create and complete a task; answers ``{id, status, ...}``. A prompt holding ``[stall:`` (the
    fake provider's marker) only inserts the row and leaves it pending: create-only work.
``GET /api/v1/tasks/{id}``
    The task, in the RunAPI face's shape (the caller's own tasks only).
``POST /v1/images/generations``
    The same work as a create, answered in OpenAI's ``ImagesResponse`` shape with the PNG as b64.

    python bench/floor.py --dir SCRATCH --key SECRET [--history N]

prints ``floor listening on http://127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (secret_hash TEXT PRIMARY KEY, account_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, status TEXT NOT NULL, model TEXT NOT NULL,
    params TEXT NOT NULL, images TEXT NOT NULL, created_at TEXT NOT NULL, completed_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_tasks_account_created ON tasks (account_id, created_at, id);
"""
TASKS_PREFIX = "/api/v1/tasks/"
JSON_HEADERS = [(b"content-type", b"application/json")]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # autocommit
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # as imagegate sets it
    db.executescript(SCHEMA)
    return db


def seed(db: sqlite3.Connection, key: str, account_id: str, history: int) -> None:
    """The key, and ``history`` completed tasks of the account in the past (one transaction)."""
    db.execute("INSERT OR IGNORE INTO api_keys VALUES (?, ?)", (key_hash(key), account_id))
    start = datetime.now(UTC) - timedelta(days=30)
    rows = (
        (
            str(uuid.uuid4()),
            account_id,
            "completed",
            "gpt-image-1.5",
            '{"prompt": "history"}',
            '[{"key": "old.png"}]',
            (stamp := (start + timedelta(seconds=n)).isoformat()),
            stamp,
        )
        for n in range(history)
    )
    db.execute("BEGIN")
    db.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")


class Floor:
    def __init__(self, db: sqlite3.Connection, files: Path, png: bytes) -> None:
        self.db = db
        self.files = files
        self.png = png

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        method, path = scope["method"], scope["path"]
        account = self._account(scope)
        if account is None:
            await _answer(send, 401, {"error": {"code": "invalid_api_key", "message": "no such key"}})
        elif method == "POST" and path == "/api/v1/gpt_image/text_to_image":
            task = self._create(account, await _body(receive))
            await _answer(send, 200, {k: task[k] for k in ("id", "status", "model")})
        elif method == "POST" and path == "/v1/images/generations":
            self._create(account, await _body(receive))
            b64 = base64.b64encode(self.png).decode()
            await _answer(send, 200, {"created": int(time.time()), "data": [{"b64_json": b64}], "usage": {}})
        elif method == "GET" and path.startswith(TASKS_PREFIX):
            task = self._get(account, path.removeprefix(TASKS_PREFIX))
            if task is None:
                await _answer(send, 404, {"error": {"code": "task_not_found", "message": "no such task"}})
            else:
                await _answer(send, 200, task)
        else:
            await _answer(send, 404, {"error": {"code": "not_found", "message": "no such route"}})

    def _account(self, scope: Scope) -> str | None:
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if not auth.startswith("Bearer "):
            return None
        row = self.db.execute(
            "SELECT account_id FROM api_keys WHERE secret_hash = ?", (key_hash(auth[7:]),)
        ).fetchone()
        return None if row is None else str(row[0])

    def _create(self, account: str, body: dict[str, Any]) -> dict[str, Any]:
        task_id, created = str(uuid.uuid4()), _now()
        model = str(body.get("model", "gpt-image-1.5"))
        self.db.execute(
            "INSERT INTO tasks VALUES (?, ?, 'pending', ?, ?, '[]', ?, NULL)",
            (task_id, account, model, json.dumps(body), created),
        )
        if "[stall:" in str(body.get("prompt", "")):
            return {"id": task_id, "status": "pending", "model": model}
        (self.files / f"{task_id}.png").write_bytes(self.png)
        images = json.dumps([{"key": f"{task_id}.png", "width": 1024, "height": 1024}])
        self.db.execute(
            "UPDATE tasks SET status = 'completed', images = ?, completed_at = ? WHERE id = ?",
            (images, _now(), task_id),
        )
        return {"id": task_id, "status": "completed", "model": model}

    def _get(self, account: str, task_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, status, model, images, created_at, completed_at FROM tasks"
            " WHERE id = ? AND account_id = ?",
            (task_id, account),
        ).fetchone()
        if row is None:
            return None
        images = [
            {**image, "url": f"/files/{image['key']}", "content_type": "image/png"}
            for image in json.loads(row[3])
        ]
        return {
            "id": row[0],
            "object": "task",
            "status": row[1],
            "model": row[2],
            "images": images,
            "error": None,
            "created_at": row[4],
            "completed_at": row[5],
        }


async def _body(receive: Receive) -> dict[str, Any]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    parsed = json.loads(b"".join(chunks) or b"{}")
    return parsed if isinstance(parsed, dict) else {}


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [*JSON_HEADERS, (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dir", type=Path, required=True, help="scratch directory (database, files)")
    parser.add_argument("--key", required=True, help="the one API key the floor accepts")
    parser.add_argument("--history", type=int, default=0, help="completed tasks to seed for the account")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from imagegate.providers.testing import make_instant_png  # the very bytes imagegate serves

    files = args.dir / "files"
    files.mkdir(parents=True, exist_ok=True)
    db = open_db(args.dir / "floor.db")
    seed(db, args.key, "floor-account", args.history)
    app = Floor(db, files, make_instant_png())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"floor listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    # The same server imagegate serve runs: uvicorn with its default (uvloop, httptools) choices.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
