"""A task event stream across a graceful stop of ``imagegate serve``: the stop does not wait for
open streams, and the client resumes after the restart with its Last-Event-ID."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from tests.acceptance.test_crash_safety import FAKE, auth, create, stop
from tests.serving import Start


def listen(
    base_url: str, key: str, task_id: str, got: list[ServerSentEvent], last: int | None = None
) -> None:
    headers = auth(key) | ({"Last-Event-ID": str(last)} if last is not None else {})
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(30, read=None)) as client,
        connect_sse(client, "GET", f"/api/v1/tasks/{task_id}/events") as source,
    ):
        got.extend(e for e in source.iter_sse() if e.data)


def test_a_stream_survives_a_restart_by_resuming(serve: Start, tmp_path: Path) -> None:
    server = serve(tmp_path, **FAKE)
    key = server.demo_key
    assert key
    task_id = create(server, key, "[stall:3] goes on after the restart")
    before: list[ServerSentEvent] = []
    reader = threading.Thread(target=listen, args=(server.base_url, key, task_id, before), daemon=True)
    reader.start()
    while reader.is_alive() and not any(e.event == "progress" for e in before):  # processing, live stream
        reader.join(timeout=0.05)
    assert stop(server) < 10, "an open stream does not hold the stop"
    reader.join(timeout=10)
    assert not reader.is_alive(), "the stream ended with the server"
    assert [e.event for e in before[:2]] == ["status", "status"]
    last = int(before[-1].id)

    server = serve(tmp_path, **FAKE)
    after: list[ServerSentEvent] = []
    listen(server.base_url, key, task_id, after, last)
    assert after[-1].event == "completed"
    assert all(int(e.id) > last for e in after), "ids after the restart exceed the ones before"
    assert json.loads(after[-1].data)["status"] == "completed"
    stop(server)
