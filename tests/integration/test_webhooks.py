"""Signed webhooks over real HTTP: a receiver on 127.0.0.1 verifies every request with the
``standardwebhooks`` package. The in-process sender is slowed to once an hour here, so each
test drives delivery passes itself and moves the gateway's clock instead of sleeping."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from typer.testing import CliRunner, Result

from imagegate.cli import app
from imagegate.clock import ManualClock
from imagegate.db.models import Task
from imagegate.webhooks import delivery, listen, store
from tests.conftest import T2I_15, TEST_EPOCH, Gateway, start_gateway
from tests.profiles import Profile

T2I_URL = "/api/v1/gpt_image/text_to_image"
FIRST_RETRY_S = 10.0  # webhook_retry_base_s's default: the longest first wait (jitter only shortens it)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: records each request and answers with the scripted statuses of its
    path (then 200)."""

    base_url: str
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str | None = None) -> str:
        return f"{self.base_url}{path or '/hook/' + uuid.uuid4().hex}"

    def at(self, url: str) -> list[Received]:
        path = url.removeprefix(self.base_url)
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                statuses = receiver.script.get(self.path) or [200]
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            self.send_response(status)
            if status in (301, 302, 307):
                self.send_header("Location", "/moved")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    found = Receiver(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(found)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def hook_settings(receiver: Receiver) -> dict[str, Any]:
    port = receiver.base_url.rsplit(":", 1)[1]
    return {
        "fetch_allow_hosts": [f"127.0.0.1:{port}"],  # the receiver, and no other loopback port
        "webhook_poll_s": 3600,  # passes are driven by the tests
        "webhook_listen_poll_s": 0.05,
    }


@pytest.fixture(scope="module")
def gw(profile: Profile, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("webhooks"), **hook_settings(receiver))
    yield gateway
    gateway.close()


def deliver(gateway: Gateway) -> int:
    """One delivery pass on the server's loop, as the in-process sender makes it."""
    return gateway.thread.call(lambda core, _: delivery.deliver_due(core))


def create(gateway: Gateway, client: httpx.Client, **extra: Any) -> dict[str, Any]:
    response = client.post(T2I_URL, json={**T2I_15, **extra})
    assert response.status_code == 200, response.text
    return gateway.wait(client, response.json()["id"])


def secret_of(client: httpx.Client) -> str:
    response = client.get("/api/v1/me/webhook_secret")
    assert response.status_code == 200, response.text
    value: str = response.json()["secret"]
    return value


def verify(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def deliveries(client: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/tasks/{task_id}/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_a_task_end_is_delivered_signed_with_the_task_view(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    url = receiver.url()
    task = create(gw, client, callback_url=url)
    assert deliver(gw) >= 1
    (request,) = receiver.at(url)
    payload = verify(secret_of(client), request)
    assert payload["type"] == "task.completed"
    assert payload["data"] == client.get(f"/api/v1/tasks/{task['id']}").json()
    assert payload["timestamp"] == task["completed_at"]
    assert request.headers["webhook-id"] == f"evt_{task['id']}"
    assert request.headers["content-type"] == "application/json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60  # the receiver's clock
    (listed,) = deliveries(client, task["id"])
    assert listed["state"] == "succeeded" and listed["url"] == url and listed["type"] == "task.completed"
    (attempt,) = listed["attempts"]
    assert attempt["number"] == 1 and attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["latency_ms"] >= 0
    deliver(gw)
    assert len(receiver.at(url)) == 1  # nothing is sent twice


def test_failed_and_canceled_ends_are_delivered_too(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    failed_url, canceled_url = receiver.url(), receiver.url()
    failed = create(gw, client, callback_url=failed_url, prompt="a fox [fail]")
    assert failed["status"] == "failed"
    response = client.post(
        T2I_URL, json={**T2I_15, "prompt": "a fox [stall:30]", "callback_url": canceled_url}
    )
    canceled = client.post(f"/api/v1/tasks/{response.json()['id']}/cancel")
    assert canceled.json()["status"] == "canceled"
    assert deliver(gw) >= 2
    secret = secret_of(client)
    assert verify(secret, receiver.at(failed_url)[0])["type"] == "task.failed"
    body = verify(secret, receiver.at(canceled_url)[0])
    assert body["type"] == "task.canceled" and body["data"]["status"] == "canceled"


def test_retries_back_off_until_the_receiver_answers(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    url = receiver.url()
    receiver.script[url.removeprefix(receiver.base_url)] = [500, 503, 200]
    task = create(gw, client, callback_url=url)
    assert deliver(gw) >= 1
    (pending,) = deliveries(client, task["id"])
    assert pending["state"] == "pending" and pending["next_attempt_at"] is not None
    assert pending["attempts"][0]["status_code"] == 500
    assert pending["attempts"][0]["error"] == "the receiver answered 500"
    deliver(gw)
    assert len(receiver.at(url)) == 1  # not due yet
    gw.clock.advance(FIRST_RETRY_S)
    assert deliver(gw) >= 1
    gw.clock.advance(FIRST_RETRY_S * 2)  # doubled
    assert deliver(gw) >= 1
    (done,) = deliveries(client, task["id"])
    assert done["state"] == "succeeded"
    assert [a["status_code"] for a in done["attempts"]] == [500, 503, 200]
    assert [a["number"] for a in done["attempts"]] == [1, 2, 3]
    sent = receiver.at(url)
    assert len(sent) == 3 and len({r.headers["webhook-id"] for r in sent}) == 1  # one message, 3 tries
    secret = secret_of(client)
    assert all(verify(secret, r)["data"]["id"] == task["id"] for r in sent)


def test_a_redirect_is_an_answer_not_followed(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    url = receiver.url()
    receiver.script[url.removeprefix(receiver.base_url)] = [302]
    task = create(gw, client, callback_url=url)
    deliver(gw)
    (listed,) = deliveries(client, task["id"])
    assert listed["attempts"][0]["status_code"] == 302 and listed["state"] == "pending"
    assert receiver.at(receiver.base_url + "/moved") == []


def test_a_delivery_that_never_succeeds_fails_after_the_window(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    url = receiver.url()
    receiver.script[url.removeprefix(receiver.base_url)] = [500]
    task = create(gw, client, callback_url=url)
    deliver(gw)
    gw.clock.advance(25 * 3600)  # past webhook_retry_window_s
    assert deliver(gw) >= 1
    (listed,) = deliveries(client, task["id"])
    assert listed["state"] == "failed" and listed["finished_at"] is not None
    assert len(listed["attempts"]) == 2
    gw.clock.advance(25 * 3600)
    deliver(gw)
    assert len(receiver.at(url)) == 2  # given up


def test_refused_callback_targets_are_a_400_at_creation(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    other_port = int(receiver.base_url.rsplit(":", 1)[1]) + 1
    for url in (
        f"http://localhost:{other_port}/hook",  # a name resolving to loopback, not allow-listed
        f"http://127.0.0.1:{other_port}/hook",  # loopback, another port than the allowed one
        "http://10.0.0.7/hook",
        "http://[::1]/hook",
        "ftp://example.com/hook",
        "javascript:alert(1)",
    ):
        response = client.post(T2I_URL, json={**T2I_15, "callback_url": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"]["param"] == "callback_url"
    assert client.get("/api/v1/tasks").json()["data"] == []


def test_redeliver_queues_a_new_delivery_with_the_same_webhook_id(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    url = receiver.url()
    task = create(gw, client, callback_url=url)
    deliver(gw)
    queued = client.post(f"/api/v1/tasks/{task['id']}/deliveries")
    assert queued.status_code == 201, queued.text
    assert queued.json()["state"] == "pending" and queued.json()["attempts"] == []
    twice = client.post(f"/api/v1/tasks/{task['id']}/deliveries")
    assert twice.status_code == 409  # one pending delivery per task at a time
    assert deliver(gw) >= 1
    first, second = receiver.at(url)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert verify(secret_of(client), second)["data"]["id"] == task["id"]
    assert [d["state"] for d in deliveries(client, task["id"])] == ["succeeded", "succeeded"]


def test_deliveries_belong_to_the_task_owner(gw: Gateway, receiver: Receiver) -> None:
    owner, stranger = gw.user(), gw.user()
    task = create(gw, owner, callback_url=receiver.url())
    plain = create(gw, owner)
    assert stranger.get(f"/api/v1/tasks/{task['id']}/deliveries").status_code == 404
    assert stranger.post(f"/api/v1/tasks/{task['id']}/deliveries").status_code == 404
    assert deliveries(owner, plain["id"]) == []
    refused = owner.post(f"/api/v1/tasks/{plain['id']}/deliveries")
    assert refused.status_code == 409 and refused.json()["error"]["param"] == "callback_url"
    running = owner.post(T2I_URL, json={**T2I_15, "prompt": "[stall:30]", "callback_url": receiver.url()})
    early = owner.post(f"/api/v1/tasks/{running.json()['id']}/deliveries")
    assert early.status_code == 409
    owner.post(f"/api/v1/tasks/{running.json()['id']}/cancel")
    assert owner.post(f"/api/v1/tasks/{uuid.uuid4()}/deliveries").status_code == 404


def test_rotation_signs_with_both_secrets_for_the_grace(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    old = secret_of(client)
    assert old.startswith("whsec_") and secret_of(client) == old  # stable until rotated
    rotated = client.post("/api/v1/me/webhook_secret/rotate").json()
    new = rotated["secret"]
    assert new != old and rotated["previous_valid_until"] is not None
    assert secret_of(client) == new
    url = receiver.url()
    create(gw, client, callback_url=url)
    deliver(gw)
    (request,) = receiver.at(url)
    verify(new, request)
    verify(old, request)  # receivers that have not switched yet still verify
    gw.clock.advance(24 * 3600 + 60)  # the grace is over: the old secret no longer signs
    later = receiver.url()
    create(gw, client, callback_url=later)
    deliver(gw)
    (after,) = receiver.at(later)
    verify(new, after)
    with pytest.raises(WebhookVerificationError):
        verify(old, after)


def test_old_events_and_finished_deliveries_are_swept(gw: Gateway, receiver: Receiver) -> None:
    client = gw.user()
    task = create(gw, client, callback_url=receiver.url())
    deliver(gw)
    gw.clock.advance(8 * 24 * 3600)  # past webhook_retention_s
    assert gw.thread.call(lambda core, _: delivery.sweep(core)) >= 1
    assert deliveries(client, task["id"]) == []


def test_a_new_gateway_on_the_same_database_takes_the_due_retry(tmp_path: Path, receiver: Receiver) -> None:
    first = start_gateway(tmp_path, **hook_settings(receiver))
    url = receiver.url()
    receiver.script[url.removeprefix(receiver.base_url)] = [500, 200]
    try:
        client = first.user()
        key = client.headers["Authorization"]
        task = create(first, client, callback_url=url)
        assert deliver(first) == 1  # answered 500: a retry is scheduled
        secret = secret_of(client)
    finally:
        first.close()
    second = start_gateway(
        tmp_path, clock=ManualClock(TEST_EPOCH + timedelta(minutes=5)), **hook_settings(receiver)
    )
    try:
        client = second.client(key.removeprefix("Bearer "))
        assert deliver(second) == 1
        (listed,) = deliveries(client, task["id"])
        assert listed["state"] == "succeeded"
        assert [a["status_code"] for a in listed["attempts"]] == [500, 200]
        assert [verify(secret, r)["data"]["id"] for r in receiver.at(url)] == [task["id"]] * 2
    finally:
        second.close()


def test_a_sender_that_stopped_mid_attempt_is_taken_over_after_its_lease(
    gw: Gateway, receiver: Receiver
) -> None:
    client = gw.user()
    url = receiver.url()
    task = create(gw, client, callback_url=url)
    (pending,) = deliveries(client, task["id"])

    async def claim_and_stop(core: Any, _: Any) -> int | None:  # what a sender killed mid-send leaves
        now = core.now()
        async with core.db.transaction() as session:
            return await store.claim(session, pending["id"], now, now + timedelta(seconds=40))

    assert gw.thread.call(claim_and_stop) == 1
    deliver(gw)
    assert receiver.at(url) == []  # leased: nobody else sends it
    gw.clock.advance(41)
    assert deliver(gw) >= 1
    (listed,) = deliveries(client, task["id"])
    assert listed["state"] == "succeeded"
    lost, sent = listed["attempts"]
    assert (lost["number"], lost["status_code"]) == (1, None) and "stopped" in lost["error"]
    assert (sent["number"], sent["status_code"]) == (2, 200)
    assert len(receiver.at(url)) == 1


def test_a_delivery_whose_senders_keep_stopping_fails_after_the_window(
    gw: Gateway, receiver: Receiver
) -> None:
    client = gw.user()
    url = receiver.url()
    task = create(gw, client, callback_url=url)
    (pending,) = deliveries(client, task["id"])

    async def claim_and_stop(core: Any, _: Any) -> int | None:
        now = core.now()
        async with core.db.transaction() as session:
            return await store.claim(session, pending["id"], now, now + timedelta(seconds=40))

    gw.thread.call(claim_and_stop)
    gw.clock.advance(25 * 3600)
    deliver(gw)
    (listed,) = deliveries(client, task["id"])
    assert listed["state"] == "failed" and [a["status_code"] for a in listed["attempts"]] == [None]
    assert receiver.at(url) == []


def test_the_in_process_sender_delivers_on_its_own(tmp_path: Path, receiver: Receiver) -> None:
    gateway = start_gateway(tmp_path, **{**hook_settings(receiver), "webhook_poll_s": 0.05})
    try:
        client = gateway.user()
        url = receiver.url()
        task = create(gateway, client, callback_url=url)
        deadline = time.monotonic() + 30
        while not receiver.at(url) and time.monotonic() < deadline:
            time.sleep(0.02)
        (request,) = receiver.at(url)
        assert verify(secret_of(client), request)["data"]["id"] == task["id"]
    finally:
        gateway.close()


# --- the command line -------------------------------------------------------------------


def cli_env(gateway: Gateway, key: str, tmp_path: Path) -> dict[str, str]:
    return {
        "IMAGEGATE_API_KEY": key,
        "IMAGEGATE_BASE_URL": gateway.base_url,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "IMAGEGATE_PROFILE": "",
        "COLUMNS": "200",
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner(env=env).invoke(app, list(args))


def test_cli_secret_rotate_deliveries_and_redeliver(gw: Gateway, receiver: Receiver, tmp_path: Path) -> None:
    key = gw.new_account()[1]
    env = cli_env(gw, key, tmp_path)
    client = gw.client(key)
    shown = run(env, "webhooks", "secret")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip() == secret_of(client)
    rotated = run(env, "webhooks", "secret", "--rotate")
    assert rotated.exit_code == 0 and rotated.stdout.strip() == secret_of(client) != shown.stdout.strip()
    url = receiver.url()
    task = create(gw, client, callback_url=url)
    deliver(gw)
    again = run(env, "webhooks", "redeliver", task["id"])
    assert again.exit_code == 0, again.output
    deliver(gw)
    listed = run(env, "webhooks", "deliveries", task["id"])
    assert listed.exit_code == 0 and listed.stdout.count("succeeded") == 2 and " 200 " in listed.stdout
    missing = run(env, "webhooks", "redeliver", str(uuid.uuid4()))
    assert missing.exit_code == 4
    wrong_key = run({**env, "IMAGEGATE_API_KEY": "ig_wrong"}, "listen", "--forward", url)
    assert wrong_key.exit_code == 2


def test_listen_forwards_the_accounts_events_signed(gw: Gateway, receiver: Receiver, tmp_path: Path) -> None:
    key = gw.new_account()[1]
    client = gw.client(key)
    other = gw.user()
    forward = receiver.url()
    state = gw.thread.app.state
    before = getattr(state, "listen_streams", 0)
    created: list[dict[str, Any]] = []

    def end_tasks_once_listening() -> None:
        deadline = time.monotonic() + 30
        while getattr(state, "listen_streams", 0) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        create(gw, other)  # another account's end is not forwarded
        created.append(create(gw, client))  # no callback_url: listen gets every end

    worker = threading.Thread(target=end_tasks_once_listening)
    worker.start()
    result = run(cli_env(gw, key, tmp_path), "listen", "--forward", forward, "--max-events", "1")
    worker.join()
    assert result.exit_code == 0, result.output
    assert "Ready!" in result.stderr
    (request,) = receiver.at(forward)
    payload = verify(secret_of(client), request)
    assert payload["type"] == "task.completed"
    assert payload["data"] == client.get(f"/api/v1/tasks/{created[0]['id']}").json()
    assert f"task.completed evt_{created[0]['id']} → 200" in result.stdout


def listen_events(gateway: Gateway, key: str, last_event_id: str, count: int) -> list[tuple[str, str]]:
    """(id, webhook_id) of the first ``count`` events of a listen stream opened with Last-Event-ID."""
    headers = {"Authorization": f"Bearer {key}", "Last-Event-ID": last_event_id}
    seen: list[tuple[str, str]] = []
    with (
        httpx.Client(base_url=gateway.base_url, timeout=10) as http,
        http.stream("GET", "/api/v1/webhooks/listen", headers=headers) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = ""
        for line in response.iter_lines():
            if line.startswith("id:"):
                event_id = line.split(":", 1)[1].strip()
            if line.startswith("data:"):
                seen.append((event_id, json.loads(line.split(":", 1)[1])["webhook_id"]))
                if len(seen) == count:
                    return seen
    return seen


FROM_THE_BEGINNING = listen.event_id(listen.BEGINNING)


def test_listen_resumes_after_last_event_id(gw: Gateway) -> None:
    key = gw.new_account()[1]
    client = gw.client(key)
    first, second = create(gw, client), create(gw, client)
    both = listen_events(gw, key, FROM_THE_BEGINNING, 2)
    assert [w for _, w in both] == [f"evt_{first['id']}", f"evt_{second['id']}"]
    assert both[0][0] == listen.event_id((parse_iso(first["completed_at"]), first["id"]))
    assert listen_events(gw, key, both[0][0], 1) == [both[1]]  # nothing lost, nothing repeated


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_listen_sends_an_end_that_commits_after_a_later_one(gw: Gateway) -> None:
    """``completed_at`` is stamped before the end commits, so ends can become visible out of
    order. Here the middle of three ends is hidden before the stream opens and shown again
    once the stream has sent the last: it is still sent, once."""
    key = gw.new_account()[1]
    client = gw.client(key)
    first, middle, last = (create(gw, client) for _ in range(3))
    ended_at = parse_iso(middle["completed_at"])

    async def set_completed_at(core: Any, value: datetime | None) -> None:
        async with core.db.transaction() as session:
            await session.execute(update(Task).where(Task.id == middle["id"]).values(completed_at=value))

    gw.thread.call(lambda core, _: set_completed_at(core, None))
    start = listen.event_id((parse_iso(first["completed_at"]), first["id"]))
    headers = {"Authorization": f"Bearer {key}", "Last-Event-ID": start}
    seen: list[str] = []
    with (
        httpx.Client(base_url=gw.base_url, timeout=10) as http,
        http.stream("GET", "/api/v1/webhooks/listen", headers=headers) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line.split(":", 1)[1])["webhook_id"])
                if len(seen) == 1:
                    gw.thread.call(lambda core, _: set_completed_at(core, ended_at))
                if len(seen) == 2:
                    break
    assert seen == [f"evt_{last['id']}", f"evt_{middle['id']}"]
