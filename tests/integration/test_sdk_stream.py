"""``client.tasks.stream()``: Server-Sent Events from the real gateway and from a loopback server
speaking the contract (cuts, Last-Event-ID); long polls against a gateway without the route (an
older gateway, stood in for by a loopback proxy that answers 404 for it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from imagegate import AsyncClient, AuthenticationError, Client, NotFoundError, TaskTimeoutError
from imagegate.sdk import PartialImageEvent, ProgressEvent, StatusEvent, TaskEndEvent
from tests.conftest import Gateway

TASK_ID = "7d0c6b9e-0000-4000-8000-000000000001"


def task_view(status: str) -> dict[str, Any]:
    return {
        "id": TASK_ID, "object": "task", "status": status, "service": "gpt_image_2", "action": "text_to_image",
        "model": "gpt-image-2", "model_served": "gpt-image-2", "variant": None, "provider": "offline",
        "images": [{"url": "http://127.0.0.1:9/files/x.png", "width": 1024, "height": 1024, "content_type": "image/png"}]
        if status == "completed" else [],
        "error": None, "error_code": None, "client_request_id": None, "created_at": None, "started_at": None,
        "completed_at": None, "outputs_expire_at": None, "outputs_deleted": False,
        "billing": {"reservation": {"amount_cents": 4, "amount_micro": 40000}, "settlement": None, "refund": None,
                    "free_call": False, "list_price_micro": 40000},
    }  # fmt: skip


def frame(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data)}\n\n".encode()


EVENTS = [
    frame(1, "status", {"task_id": TASK_ID, "status": "pending"}),
    frame(2, "status", {"task_id": TASK_ID, "status": "processing"}),
    frame(3, "progress", {"task_id": TASK_ID, "progress": 0.5}),
    b": heartbeat\n\n",
    frame(4, "partial_image", {"task_id": TASK_ID, "index": 0, "url": "http://127.0.0.1:9/p0.png"}),
    frame(5, "future_kind", {"task_id": TASK_ID}),  # a kind this client does not know: skipped
    frame(6, "completed", task_view("completed")),
]


@dataclass
class EventServer:
    """Serves the events of TASK_ID: the first connection breaks after ``cut`` frames; every
    connection resumes after the Last-Event-ID it sends. ``first`` answers come before that."""

    base_url: str = ""
    cut: int = 3
    first: list[tuple[int, bytes]] = field(default_factory=list)
    last_ids: list[str | None] = field(default_factory=list)
    connections: int = 0
    hang: bool = False  # the first connection falls silent after its frames instead of closing
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def events() -> Iterator[EventServer]:
    state = EventServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == f"/api/v1/tasks/{TASK_ID}":
                self._plain(200, json.dumps(task_view("processing")).encode())
                return
            if self.path != f"/api/v1/tasks/{TASK_ID}/events":
                self._plain(
                    404, b'{"error": {"message": "no", "code": "not_found", "type": "x", "param": null}}'
                )
                return
            if state.first:
                status, body = state.first.pop(0)
                self._plain(status, body, {"Retry-After": "0"})
                return
            state.connections += 1
            last = self.headers.get("Last-Event-ID")
            state.last_ids.append(last)
            after = int(last) if last else 0
            frames = [f for f in EVENTS if not f.startswith(b"id: ") or int(f.split(b"\n")[0][4:]) > after]
            if state.connections == 1:
                frames = frames[: state.cut]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            for chunk in frames:
                self.wfile.write(chunk)
                self.wfile.flush()
            if state.hang and state.connections == 1:
                state.done.wait(30)
            # the connection closes here: a cut mid-stream on the first, the end on the last

        def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    state.done.set()
    server.shutdown()
    server.server_close()


def check_events(got: list[Any]) -> None:
    assert [type(e) for e in got] == [
        StatusEvent,
        StatusEvent,
        ProgressEvent,
        PartialImageEvent,
        TaskEndEvent,
    ]
    assert [e.event_id for e in got] == [1, 2, 3, 4, 6]
    assert [got[0].status, got[1].status, got[2].progress] == ["pending", "processing", 0.5]
    assert (got[3].index, got[3].url) == (0, "http://127.0.0.1:9/p0.png")
    end = got[4]
    assert end.status == "completed" and end.task.id == TASK_ID and len(end.task.images) == 1


def test_stream_reads_events_and_resumes_after_a_cut(events: EventServer) -> None:
    with Client(api_key="k", base_url=events.base_url) as client:
        got = list(client.tasks.stream(TASK_ID))
    check_events(got)
    assert events.last_ids == [None, "3"]  # resumed after the last event seen, none repeated


async def test_async_stream_does_the_same(events: EventServer) -> None:
    async with AsyncClient(api_key="k", base_url=events.base_url) as client:
        got = [event async for event in client.tasks.stream(TASK_ID)]
        check_events(got)
        assert events.last_ids == [None, "3"]
        events.connections = 0
        waited = await client.tasks.wait(TASK_ID)  # wait follows the stream to its end
        assert waited.status == "completed" and events.last_ids[-2:] == [None, "3"]


def test_stream_retries_a_busy_gateway_and_raises_other_errors(events: EventServer) -> None:
    busy = b'{"error": {"message": "busy", "code": "unavailable", "type": "x", "param": null}}'
    events.first = [(503, busy)]
    with Client(api_key="k", base_url=events.base_url) as client:
        assert client.tasks.wait(TASK_ID).status == "completed"
    bad = b'{"error": {"message": "Invalid key", "code": "authentication", "type": "x", "param": null}}'
    events.first = [(401, bad)]
    with Client(api_key="k", base_url=events.base_url) as client, pytest.raises(AuthenticationError):
        list(client.tasks.stream(TASK_ID))


def test_a_silent_stream_times_out_with_the_task_as_it_stands(events: EventServer) -> None:
    events.cut, events.hang = 2, True
    seen: list[Any] = []
    with Client(api_key="k", base_url=events.base_url) as client, pytest.raises(TaskTimeoutError) as caught:
        seen.extend(client.tasks.stream(TASK_ID, timeout=0.3))
    assert caught.value.task.status == "processing" and events.connections == 1


# --- the real gateway's event route --------------------------------------------------------


def test_stream_reads_the_gateway_s_own_events(gateway: Gateway) -> None:
    with Client(api_key=gateway.new_account()[1], base_url=gateway.base_url) as client:
        task = client.images.generate("a fox", wait=False)
        got = list(client.tasks.stream(task.id))
        assert client.has_events is True
        assert isinstance(got[-1], TaskEndEvent) and got[-1].task.status == "completed"
        assert got[-1].task.images and got[-1].task.id == task.id
        ids = [e.event_id for e in got]
        assert all(ids) and ids == sorted(ids, key=int)  # every event numbered, in order
        again = list(client.tasks.stream(task.id))  # opened after the end: the end, replayed
        assert isinstance(again[-1], TaskEndEvent) and again[-1].task.id == task.id


# --- the polling fallback, against a gateway without the route (404) -----------------------


@dataclass
class Proxy:
    base_url: str


@pytest.fixture
def older_gateway(gateway: Gateway) -> Iterator[Proxy]:
    """The gateway behind a proxy that answers 404 for the event route, as a gateway from
    before it did; everything else is forwarded as it is."""
    upstream = httpx.Client(base_url=gateway.base_url, timeout=60)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self, method: str) -> None:
            if self.path.split("?")[0].endswith("/events"):
                body = b'{"error": {"message": "Not Found", "code": "not_found", "type": "x", "param": null}}'
                status, headers = 404, {"Content-Type": "application/json"}
            else:
                length = int(self.headers.get("Content-Length") or 0)
                sent = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = upstream.request(
                    method, self.path, headers=sent, content=self.rfile.read(length) if length else None
                )
                body, status = answer.content, answer.status_code
                headers = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower()
                    not in ("content-length", "transfer-encoding", "connection", "content-encoding")
                }
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Proxy(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()
    upstream.close()


def test_stream_falls_back_to_long_polls_without_the_route(gateway: Gateway, older_gateway: Proxy) -> None:
    with Client(api_key=gateway.new_account()[1], base_url=older_gateway.base_url) as client:
        task = client.images.generate("a fox", wait=False)
        got = list(client.tasks.stream(task.id))
        assert client.has_events is False  # remembered: the next stream polls at once
        assert isinstance(got[-1], TaskEndEvent) and got[-1].task.status == "completed"
        assert all(isinstance(e, StatusEvent) and e.event_id is None for e in got[:-1])
        stalled = client.images.generate("[stall:60] a fox", wait=False)
        with pytest.raises(TaskTimeoutError):
            list(client.tasks.stream(stalled.id, timeout=0.3))
        client.tasks.cancel(stalled.id)
        with pytest.raises(NotFoundError):
            list(client.tasks.stream("00000000-0000-0000-0000-000000000000"))


async def test_async_fallback_and_a_missing_task(gateway: Gateway, older_gateway: Proxy) -> None:
    async with AsyncClient(api_key=gateway.new_account()[1], base_url=older_gateway.base_url) as client:
        with pytest.raises(NotFoundError):
            [e async for e in client.tasks.stream("00000000-0000-0000-0000-000000000000")]
        assert client.has_events is None  # a missing task says nothing about the route
        task = await client.images.generate("[fail] a fox", wait=False)
        got = [e async for e in client.tasks.stream(task.id)]
        assert got[-1].task.status == "failed" and client.has_events is False
