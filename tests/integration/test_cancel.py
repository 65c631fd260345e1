"""Cancel in each status, over real HTTP, with the ledger exact after each.

``pending`` ends at once and its hold is released; ``processing`` ends at once too and the
provider is told to stop over the bus (the fake provider's stall is cut short; an ``openai``
upstream request is closed); a terminal task answers 409 and nothing moves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from imagegate.billing import ledger
from imagegate.providers.testing_upstream import OpenAIUpstream, stall
from tests.conftest import T2I_15, Gateway, start_gateway

KEY_ENV = "IMAGEGATE_TEST_CANCEL_OPENAI_KEY"


def violations(gw: Gateway) -> list[str]:
    async def check(core: Any, _: Any) -> list[str]:
        async with core.db.sessions() as session:
            return await ledger.violations(session)

    return gw.thread.call(check)


def balance(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/api/v1/me/balance").json()
    return body


def create(client: httpx.Client, prompt: str, service: str = "gpt_image") -> str:
    body = (
        {**T2I_15, "prompt": prompt} if service == "gpt_image" else {"model": "gpt-image-2", "prompt": prompt}
    )
    response = client.post(f"/api/v1/{service}/text_to_image", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def until_processing(client: httpx.Client, task_id: str) -> None:
    """Read the task's events until it is processing (no sleeping, no polling)."""
    with connect_sse(client, "GET", f"/api/v1/tasks/{task_id}/events") as source:
        for event in source.iter_sse():
            if event.event == "status" and '"processing"' in event.data:
                return
    raise AssertionError(f"task {task_id} ended before it was processing")


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path, workers=1, free_calls_per_variant=0)
    yield gateway
    gateway.close()


def test_cancel_in_each_status_keeps_the_ledger_exact(gw: Gateway) -> None:
    client = gw.user()
    start = balance(client)
    running = create(client, "[stall:60] a snail that never arrives")
    until_processing(client, running)
    waiting = create(client, "a task behind it")  # the only worker is busy: it stays pending
    assert client.get(f"/api/v1/tasks/{waiting}").json()["status"] == "pending"
    price = client.get(f"/api/v1/tasks/{waiting}").json()["billing"]["reservation"]["amount_micro"]
    assert balance(client)["held_micro"] == 2 * price

    canceled = client.post(f"/api/v1/tasks/{waiting}/cancel")
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert body["status"] == "canceled" and body["billing"]["refund"]["refunded_at"]
    assert balance(client)["held_micro"] == price, "the pending task's hold is released at once"
    assert violations(gw) == []

    stopped = client.post(f"/api/v1/tasks/{running}/cancel")
    assert stopped.status_code == 200 and stopped.json()["status"] == "canceled"
    gw.thread.call(lambda _, queue: queue.drain(), timeout=15)  # the 60 s stall was cut short
    after = balance(client)
    assert after["held_micro"] == 0
    assert after["balance_micro"] == start["balance_micro"], "nothing charged for canceled tasks"
    assert violations(gw) == []

    for task_id in (running, waiting):
        again = client.post(f"/api/v1/tasks/{task_id}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    done = create(client, "a finished drawing")
    gw.drain()
    assert client.get(f"/api/v1/tasks/{done}").json()["status"] == "completed"
    charged = balance(client)
    refused = client.post(f"/api/v1/tasks/{done}/cancel")
    assert refused.status_code == 409
    assert balance(client) == charged, "a refused cancel moves nothing"
    assert client.get(f"/api/v1/tasks/{done}").json()["status"] == "completed"
    assert violations(gw) == []


def test_another_accounts_task_cannot_be_canceled(gw: Gateway) -> None:
    owner = gw.user()
    task_id = create(owner, "[stall:60] mine")
    refused = gw.user().post(f"/api/v1/tasks/{task_id}/cancel")
    assert refused.status_code == 404
    assert owner.get(f"/api/v1/tasks/{task_id}").json()["status"] in ("pending", "processing")
    assert owner.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    gw.thread.call(lambda _, queue: queue.drain(), timeout=15)
    assert violations(gw) == []


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    os.environ[KEY_ENV] = "sk-test-cancel"
    with OpenAIUpstream() as server:
        yield server
    del os.environ[KEY_ENV]


def test_cancel_closes_the_upstream_request(tmp_path: Path, upstream: OpenAIUpstream) -> None:
    provider = {"name": "up", "kind": "openai", "api_key_env": KEY_ENV, "base_url": upstream.base_url}
    gw = start_gateway(tmp_path, providers=[{**provider, "timeout_s": 120}], default_provider="up")
    try:
        upstream.script(stall(120))
        client = gw.user()
        start = balance(client)
        task_id = create(client, "a fox", service="gpt_image_2")
        until_processing(client, task_id)
        deadline = time.monotonic() + 30
        while not upstream.received and time.monotonic() < deadline:  # the request is on its way
            time.sleep(0.01)
        assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
        while not upstream.hung_up and time.monotonic() < deadline:  # the upstream notices
            time.sleep(0.01)
        assert upstream.hung_up == ["/v1/images/generations"], "the upstream request was closed"
        assert len(upstream.received) == 1, "and not sent again"
        gw.thread.call(lambda _, queue: queue.drain(), timeout=15)
        assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "canceled"
        assert balance(client)["balance_micro"] == start["balance_micro"]
        assert violations(gw) == []
    finally:
        gw.close()
