"""Streams across a graceful stop of ``imagegate serve``: the stop does not wait for open streams;
a task event stream resumes after the restart with its Last-Event-ID, and a streaming OpenAI call
gets OpenAI's error event rather than a cut connection."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import openai
from httpx_sse import ServerSentEvent, connect_sse

from tests.acceptance.test_crash_safety import FAKE, auth, create, processing, stop
from tests.acceptance.test_serve import poll
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


def test_a_streaming_openai_call_gets_an_error_event_when_the_server_stops(
    serve: Start, tmp_path: Path
) -> None:
    server = serve(tmp_path, **FAKE)
    key = server.demo_key
    assert key
    raised: list[BaseException] = []

    def call() -> None:
        with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0) as sdk:
            try:
                list(sdk.images.generate(model="gpt-image-2.6-flare", prompt="[stall:4] slow", stream=True))
            except openai.APIError as exc:
                raised.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    poll(lambda: {"n": len(processing(server, key))}, lambda b: b["n"] == 1)
    assert stop(server) < 10
    caller.join(timeout=30)
    (error,) = raised
    assert not isinstance(error, openai.APIConnectionError), "an error event, not a cut connection"
    assert "restarting" in error.message
    assert isinstance(error.body, dict) and error.body["code"] == "unavailable"
