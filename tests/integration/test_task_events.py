"""The task event stream over real HTTP: order and content, resume, replay, restarts, owners.

Streams are read with ``httpx-sse`` (a client's parser, not ours). The fake provider's markers
shape the tasks: ``[slow:S]`` reports progress while it works, ``[stall:S]`` holds a task in
``processing`` until it is canceled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from tests.conftest import T2I_15, Gateway, start_gateway
from tests.profiles import EMBEDDED, Profile

TERMINAL = ("completed", "failed", "canceled")


@pytest.fixture(scope="module")
def gw(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("events"), sse_heartbeat_s=0.2)
    yield gateway
    gateway.close()


def create(client: httpx.Client, prompt: str, service: str = "gpt_image") -> str:
    response = client.post(f"/api/v1/{service}/text_to_image", json={**T2I_15, "prompt": prompt})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def read(
    client: httpx.Client, path: str, *, last_event_id: int | None = None, until: int | None = None
) -> list[ServerSentEvent]:
    """Every event of one connection (until it closes, or ``until`` events have come)."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    got: list[ServerSentEvent] = []
    with connect_sse(client, "GET", path, headers=headers) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for event in source.iter_sse():
            if event.event == "message" and not event.data:
                continue  # a heartbeat comment: httpx-sse dispatches it as an empty event
            got.append(event)
            if until is not None and len(got) == until:
                break
    return got


def ids(events: list[ServerSentEvent]) -> list[int]:
    return [int(event.id) for event in events]


def test_a_stream_tells_status_progress_and_the_end_in_order(gw: Gateway) -> None:
    client = gw.user()
    task_id = create(client, "[slow:0.3] a red fox")
    events = read(client, f"/api/v1/tasks/{task_id}/events")
    kinds = [event.event for event in events]
    assert kinds[:2] == ["status", "status"]
    assert [json.loads(e.data) for e in events[:2]] == [
        {"task_id": task_id, "status": "pending"},
        {"task_id": task_id, "status": "processing"},
    ]
    assert kinds[-1] == "completed" and kinds.count("completed") == 1
    progress = [json.loads(e.data) for e in events if e.event == "progress"]
    assert len(progress) >= 3, "the provider's progress is passed on, not dropped"
    assert all(p["task_id"] == task_id and 0 <= p["progress"] <= 1 for p in progress)
    assert progress[-1]["progress"] == 1.0
    assert set(kinds) == {"status", "progress", "completed"}
    numbers = ids(events)
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), "ids increase"
    final = json.loads(events[-1].data)
    assert final == client.get(f"/api/v1/tasks/{task_id}").json(), "the end carries the task view"
    assert final["status"] == "completed" and final["images"]


def test_a_stream_opened_after_the_end_replays_and_closes(gw: Gateway) -> None:
    client = gw.user()
    task_id = create(client, "a green pear")
    gw.drain()
    first = read(client, f"/api/v1/tasks/{task_id}/events")
    again = read(client, f"/api/v1/tasks/{task_id}/events")
    assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in first]
    assert first[-1].event == "completed"


def test_last_event_id_resumes_with_nothing_lost_or_repeated(gw: Gateway) -> None:
    client = gw.user()
    task_id = create(client, "[slow:0.2] a blue jay")
    path = f"/api/v1/tasks/{task_id}/events"
    head = read(client, path, until=2)  # the connection drops after two events
    rest = read(client, path, last_event_id=int(head[-1].id))
    whole = read(client, path)
    assert [(e.id, e.event) for e in head + rest] == [(e.id, e.event) for e in whole]
    for k, event in enumerate(whole[:-1]):  # resuming after any event gives exactly what follows
        resumed = read(client, path, last_event_id=int(event.id))
        assert [e.id for e in resumed] == [e.id for e in whole[k + 1 :]]


def test_a_live_stream_resumes_across_a_cancel(gw: Gateway) -> None:
    client = gw.user()
    task_id = create(client, "[stall:60] a stuck snail")
    path = f"/api/v1/tasks/{task_id}/events"
    head = read(client, path, until=3)  # pending, processing, the provider's first progress
    assert [e.event for e in head] == ["status", "status", "progress"]
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    rest = read(client, path, last_event_id=int(head[-1].id))
    assert [e.event for e in rest] == ["canceled"]
    assert int(rest[0].id) > int(head[-1].id)
    assert json.loads(rest[0].data)["status"] == "canceled"


def test_heartbeat_comments_keep_a_quiet_stream_open(gw: Gateway) -> None:
    client = gw.user()
    task_id = create(client, "[stall:60] a quiet owl")
    comments = 0
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        for line in response.iter_lines():
            if line.startswith(":"):
                comments += 1
                if comments == 2:
                    break
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200


def test_service_paths_stream_the_same_and_show_a_cancel_as_runapi_does(gw: Gateway) -> None:
    client = gw.user()
    task_id = create(client, "[stall:60] a slow cat")
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    for path in (f"/api/v1/gpt_image/{task_id}/events", f"/api/v1/gpt_image/text_to_image/{task_id}/events"):
        events = read(client, path)
        assert events[-1].event == "failed"
        end = json.loads(events[-1].data)
        assert end == client.get(path.removesuffix("/events")).json()
        assert end["error_code"] == "canceled"
    assert read(client, f"/api/v1/tasks/{task_id}/events")[-1].event == "canceled"


def test_only_the_owner_streams_a_task(gw: Gateway) -> None:
    owner = gw.user()
    task_id = create(owner, "a private drawing")
    for path in (
        f"/api/v1/tasks/{task_id}/events",
        f"/api/v1/gpt_image/{task_id}/events",
    ):
        assert gw.user().get(path).status_code == 404  # another account: as if it did not exist
        assert gw.client().get(path).status_code == 401
    wrong_service = owner.get(f"/api/v1/gpt_image_2/{task_id}/events")
    assert wrong_service.status_code == 404
    assert owner.get("/api/v1/tasks/not-a-task/events").json()["error"]["code"] == "not_found"
    bad = owner.get(f"/api/v1/tasks/{task_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Last-Event-ID"


def test_a_stream_goes_on_after_a_restart(tmp_path: Path, profile: Profile) -> None:
    """Embedded: the history went with the process, the stream is made from the task row.
    Scale: the history lives in Redis and outlives the process. Either way a client resuming
    with the last id it saw gets the rest, in order, ending as the task did."""
    first = start_gateway(tmp_path)
    try:
        client = first.user()
        done_id = create(client, "a red kite")
        first.drain()
        before = read(client, f"/api/v1/tasks/{done_id}/events")
        live_id = create(client, "[stall:60] a slow heron")  # handed back by the stop, still pending
        seen = read(client, f"/api/v1/tasks/{live_id}/events", until=2)
        assert seen[-1].event == "status"
        key = str(client.headers["Authorization"]).removeprefix("Bearer ")
    finally:
        first.close()
    second = start_gateway(tmp_path, clock=first.clock)
    try:
        client = second.client(key)
        replay = read(client, f"/api/v1/tasks/{done_id}/events")
        if profile.name == EMBEDDED:
            assert [e.event for e in replay] == ["completed"]
        else:
            assert [(e.id, e.event) for e in replay] == [(e.id, e.event) for e in before]
        assert json.loads(replay[-1].data) == client.get(f"/api/v1/tasks/{done_id}").json()
        resumed = read(client, f"/api/v1/tasks/{done_id}/events", last_event_id=int(before[1].id))
        assert resumed[-1].event == "completed"
        assert ids(resumed) == sorted(ids(resumed)) and ids(resumed)[0] > int(before[1].id)
        (later,) = read(client, f"/api/v1/tasks/{live_id}/events", last_event_id=int(seen[-1].id), until=1)
        assert later.event in ("status", "progress") and int(later.id) > int(seen[-1].id)
        assert client.post(f"/api/v1/tasks/{live_id}/cancel").status_code == 200
        end = read(client, f"/api/v1/tasks/{live_id}/events", last_event_id=int(later.id))
        assert end[-1].event == "canceled"  # after whatever the restarted worker told meanwhile
        assert all(int(e.id) > int(later.id) for e in end)
    finally:
        second.close()


def _data(events: list[ServerSentEvent], kind: str) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in events if e.event == kind]


def test_a_failed_task_ends_its_stream_with_failed(gw: Gateway) -> None:
    client = gw.user()
    task_id = create(client, "[fail:moderation_blocked] a forbidden thing")
    events = read(client, f"/api/v1/tasks/{task_id}/events")
    assert events[-1].event == "failed"
    (end,) = _data(events, "failed")
    assert end["error_code"] == "moderation_blocked"
    assert [e.event for e in events].count("failed") == 1
