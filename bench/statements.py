"""SQL statements and sessions per request on the hot path: create, GET, and the worker's run.

A gateway runs in this process (uvicorn in a thread, the instant provider, billing and rate
limits on, free calls spent first), and every statement the engine executes is counted by the
asyncio task that issued it: a request's own, or a worker's (tasks named ``task-ID``).

    python bench/statements.py [--show]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import event

from imagegate.api import create_app
from imagegate.api.app import GatewayServer
from imagegate.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from _server import WIDE_TIERS

ADMIN = "bench-admin-token"
BODY = {"model": "gpt-image-1.5", "prompt": "a red fox", "aspect_ratio": "1:1", "quality": "medium"}


class Recorder:
    """Statements by who ran them: ``request`` or ``worker``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, list[str]] = {"request": [], "worker": []}

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        who = (
            "worker"
            if task is not None and task.get_name().startswith(("worker-", "task-", "lease-"))
            else "request"
        )
        with self.lock:
            self.seen[who].append(" ".join(statement.split())[:110])

    @contextmanager
    def counting(self) -> Iterator[dict[str, list[str]]]:
        with self.lock:
            start = {who: len(rows) for who, rows in self.seen.items()}
        taken: dict[str, list[str]] = {}
        yield taken
        with self.lock:
            taken.update({who: rows[start[who] :] for who, rows in self.seen.items()})


@contextmanager
def gateway(data_dir: Path) -> Iterator[tuple[str, Any]]:
    settings = Settings(
        data_dir=data_dir,
        admin_token=ADMIN,
        default_provider="instant",
        demo_account=False,
        tiers=json.loads(WIDE_TIERS),
        log_level="warning",
    )
    app = create_app(settings)
    server = GatewayServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app.state.gateway
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def new_key(http: httpx.Client) -> str:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    account = http.post("/admin/accounts", json={"name": "bench"}, headers=admin).json()["id"]
    http.post(f"/admin/accounts/{account}/credits", json={"usd": "1000"}, headers=admin)
    return str(http.post(f"/admin/accounts/{account}/keys", json={}, headers=admin).json()["key"])


def wait_idle(recorder: Recorder, settle_s: float = 0.3) -> None:
    """Until the workers have issued no statement for ``settle_s``."""
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < settle_s:
        time.sleep(0.05)
        now = len(recorder.seen["worker"])
        if now != last:
            last, quiet_since = now, time.monotonic()


def measure(show: bool) -> dict[str, int]:
    recorder = Recorder()
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch, gateway(Path(scratch)) as (base, gw):
        event.listen(gw.db.engine.sync_engine, "before_cursor_execute", recorder)
        # The SQLite write connection (db/writer.py) runs outside the engine: its statements too.
        gw.db.trace_writes(
            lambda sql: (
                None if sql in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK") else recorder(None, None, sql)
            )
        )
        with httpx.Client(base_url=base, timeout=30) as http:
            http.headers["Authorization"] = f"Bearer {new_key(http)}"
            for _ in range(4):  # spend the free calls and warm every cache
                task_id = http.post("/api/v1/gpt_image/text_to_image", json=BODY).json()["id"]
                wait_idle(recorder)
            http.get(f"/api/v1/tasks/{task_id}")
            reader = getattr(gw.db, "_reader", None)  # GETs' read-only SQLite connection, once opened
            if reader is not None:
                reader.set_trace_callback(lambda sql: recorder(None, None, sql))
            with recorder.counting() as created:
                task_id = http.post("/api/v1/gpt_image/text_to_image", json=BODY).json()["id"]
                wait_idle(recorder)
            with recorder.counting() as read:
                assert http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"
            with recorder.counting() as generated:
                body = {"model": "gpt-image-1.5", "prompt": "a fox", "size": "1024x1024"}
                assert http.post("/v1/images/generations", json=body).status_code == 200
                wait_idle(recorder)
    for name, taken in (("create", created), ("GET", read), ("OpenAI face", generated)):
        for who in ("request", "worker"):
            counts[f"{name}: {who}"] = len(taken[who])
            if show:
                for statement in taken[who]:
                    print(f"    {name}/{who}: {statement}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--show", action="store_true", help="print every statement")
    args = parser.parse_args()
    counts = measure(args.show)
    width = max(map(len, counts))
    for name, count in counts.items():
        print(f"{name:<{width}}  {count:>3} statements")
    print(
        f"{'total per task (create path)':<{width}}  {sum(v for k, v in counts.items() if 'create' in k):>3}"
    )


if __name__ == "__main__":
    main()
