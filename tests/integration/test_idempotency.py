"""Idempotency-Key and X-Client-Request-Id on both faces, over real HTTP."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import T2I_15, Gateway, png_bytes, start_gateway
from tests.profiles import Profile

CREATE = "/api/v1/gpt_image/text_to_image"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, profile: Profile) -> Iterator[Gateway]:
    """No free calls: every task is charged, so a double charge shows in the balance."""
    gateway = start_gateway(tmp_path_factory.mktemp("idempotency"), free_calls_per_variant=0)
    yield gateway
    gateway.close()


def account(gw: Gateway, usd: str = "1") -> tuple[str, httpx.Client]:
    _, key = gw.new_account(usd=usd, tier="tier2")
    return key, gw.client(key)


def post(client: httpx.Client, body: dict[str, Any], key: str | None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(CREATE, json=body, headers=headers)


def tasks(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/api/v1/tasks", params={"limit": 100})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def settled_balance(gw: Gateway, client: httpx.Client) -> int:
    for task in tasks(client):
        gw.wait(client, task["id"])
    body = client.get("/api/v1/me/balance").json()
    assert body["held_micro"] == 0
    return int(body["balance_micro"])


def new_key() -> str:
    return f"idem-{uuid.uuid4()}"


# -- RunAPI face ---------------------------------------------------------------------------------
def test_same_key_same_body_replays_the_task_and_charges_once(gw: Gateway) -> None:
    _, user = account(gw)
    key = new_key()
    first = post(user, T2I_15, key)
    assert first.status_code == 200, first.text
    assert first.json().get("task_replayed") is not True
    again = post(user, T2I_15, key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["task_replayed"] is True
    assert again.headers["X-Imagegate-Task-Id"] == first.json()["id"]

    done = gw.wait(user, first.json()["id"])
    assert done["status"] == "completed"
    late = post(user, T2I_15, key)  # after completion: still the same task, with its settlement
    assert late.status_code == 200, late.text
    assert late.json()["id"] == first.json()["id"] and late.json()["task_replayed"] is True
    assert late.json()["status"] == "completed"
    assert late.json()["billing"]["settlement"] == {"charged_amount_cents": 4, "amount_micro": 40_000}

    # The same body with its keys in another order is the same request.
    reordered = json.dumps(dict(reversed(list(T2I_15.items()))))
    shuffled = user.post(
        CREATE, content=reordered, headers={"Idempotency-Key": key, "Content-Type": "application/json"}
    )
    assert shuffled.status_code == 200, shuffled.text
    assert shuffled.json()["id"] == first.json()["id"]

    assert [t["id"] for t in tasks(user)] == [first.json()["id"]]
    assert settled_balance(gw, user) == 1_000_000 - 40_000


def test_same_key_other_body_is_409(gw: Gateway) -> None:
    _, user = account(gw)
    key = new_key()
    first = post(user, T2I_15, key)
    assert first.status_code == 200, first.text
    other = post(user, {**T2I_15, "prompt": "a grey whale"}, key)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "conflict"
    other_quality = post(user, {**T2I_15, "quality": "high"}, key)
    assert other_quality.status_code == 409, other_quality.text
    assert [t["id"] for t in tasks(user)] == [first.json()["id"]]
    assert settled_balance(gw, user) == 1_000_000 - 40_000


def test_different_keys_make_different_tasks(gw: Gateway) -> None:
    _, user = account(gw)
    first = post(user, T2I_15, new_key())
    second = post(user, T2I_15, new_key())
    plain = post(user, T2I_15, None)
    assert first.status_code == second.status_code == plain.status_code == 200
    ids = {first.json()["id"], second.json()["id"], plain.json()["id"]}
    assert len(ids) == 3
    assert not any(r.json().get("task_replayed") for r in (first, second, plain))
    assert settled_balance(gw, user) == 1_000_000 - 3 * 40_000


def test_keys_belong_to_one_account(gw: Gateway) -> None:
    _, alice = account(gw)
    _, bob = account(gw)
    key = new_key()
    mine = post(alice, T2I_15, key)
    theirs = post(bob, T2I_15, key)
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json().get("task_replayed") is not True
    # Another account's key with another body is not a conflict either.
    other = post(bob, {**T2I_15, "prompt": "something else"}, new_key())
    assert other.status_code == 200
    assert [t["id"] for t in tasks(alice)] == [mine.json()["id"]]
    assert settled_balance(gw, alice) == 1_000_000 - 40_000
    assert settled_balance(gw, bob) == 1_000_000 - 2 * 40_000


def test_a_replay_needs_no_credit(gw: Gateway) -> None:
    """The last credit went to the original; the replay returns it instead of a 402."""
    _, user = account(gw, usd="0.04")
    key = new_key()
    first = post(user, T2I_15, key)
    assert first.status_code == 200, first.text
    replay = post(user, T2I_15, key)
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == first.json()["id"]
    fresh = post(user, T2I_15, new_key())
    assert fresh.status_code == 402, fresh.text
    assert settled_balance(gw, user) == 0


def test_a_refused_request_does_not_use_up_its_key(gw: Gateway) -> None:
    """A 402 leaves no task, so the same key works once the account has credits."""
    account_id, key = gw.new_account(usd=None, tier="tier2")
    user = gw.client(key)
    idem = new_key()
    refused = post(user, T2I_15, idem)
    assert refused.status_code == 402, refused.text
    granted = gw.admin().post(f"/admin/accounts/{account_id}/credits", json={"usd": "1"})
    assert granted.status_code == 201, granted.text
    accepted = post(user, T2I_15, idem)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json().get("task_replayed") is not True
    assert post(user, T2I_15, idem).json()["id"] == accepted.json()["id"]
    assert settled_balance(gw, user) == 1_000_000 - 40_000


def test_a_key_lives_24_hours(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, free_calls_per_variant=0)  # its own clock, moved on by a day
    try:
        _, user = account(gw)
        key = new_key()
        first = post(user, T2I_15, key)
        assert first.status_code == 200, first.text
        gw.wait(user, first.json()["id"])
        gw.clock.advance(23 * 3600)
        assert post(user, T2I_15, key).json()["id"] == first.json()["id"]
        assert post(user, {**T2I_15, "prompt": "another"}, key).status_code == 409

        gw.clock.advance(2 * 3600)
        later = post(user, {**T2I_15, "prompt": "another"}, key)
        assert later.status_code == 200, later.text
        assert later.json()["id"] != first.json()["id"]
        assert later.json().get("task_replayed") is not True
        assert post(user, {**T2I_15, "prompt": "another"}, key).json()["id"] == later.json()["id"]
        assert len(tasks(user)) == 2
        assert settled_balance(gw, user) == 1_000_000 - 2 * 40_000
    finally:
        gw.close()


def test_concurrent_duplicates_make_one_task(gw: Gateway) -> None:
    api_key, user = account(gw)
    key = new_key()
    clients = [gw.client(api_key) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def fire(client: httpx.Client) -> None:
        barrier.wait()
        response = post(client, T2I_15, key)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=fire, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 8
    assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    assert sum(1 for r in answers if not r.json().get("task_replayed")) == 1
    assert [t["id"] for t in tasks(user)] == list(ids)
    assert settled_balance(gw, user) == 1_000_000 - 40_000


def test_client_request_id_is_stored_and_echoed(gw: Gateway) -> None:
    _, user = account(gw)
    request_id = f"order-{uuid.uuid4()}"
    created = post(user, T2I_15, None, **{"X-Client-Request-Id": request_id})
    assert created.status_code == 200, created.text
    assert created.headers["X-Client-Request-Id"] == request_id
    task_id = created.json()["id"]
    read = user.get(f"/api/v1/tasks/{task_id}")
    assert read.json()["client_request_id"] == request_id
    assert read.headers["X-Client-Request-Id"] == request_id
    listed = {t["id"]: t for t in tasks(user)}
    assert listed[task_id]["client_request_id"] == request_id

    bad = post(user, T2I_15, None, **{"X-Client-Request-Id": "x" * 513})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["param"] == "X-Client-Request-Id"


def test_an_overlong_idempotency_key_is_400(gw: Gateway) -> None:
    _, user = account(gw)
    refused = post(user, T2I_15, "k" * 513)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "validation"
    assert refused.json()["error"]["param"] == "Idempotency-Key"
    assert tasks(user) == []
    longest = post(user, T2I_15, "k" * 512)
    assert longest.status_code == 200, longest.text
    assert post(user, T2I_15, "k" * 512).json()["id"] == longest.json()["id"]


# -- OpenAI face ---------------------------------------------------------------------------------
def test_openai_generations_replay_with_the_sdk(gw: Gateway) -> None:
    api_key, user = account(gw)
    key = new_key()
    with OpenAI(base_url=f"{gw.base_url}/v1", api_key=api_key, max_retries=0) as sdk:
        params: dict[str, Any] = {"model": "gpt-image-1.5", "prompt": "a lighthouse", "size": "1024x1024"}
        first = sdk.images.generate(**params, extra_headers={"Idempotency-Key": key})
        second = sdk.images.generate(**params, extra_headers={"Idempotency-Key": key})
        assert first.data and second.data
        assert first.data[0].b64_json == second.data[0].b64_json
        assert first.created == second.created
        assert len(tasks(user)) == 1
        assert settled_balance(gw, user) == 1_000_000 - 40_000

        with pytest.raises(openai.ConflictError):
            sdk.images.generate(**{**params, "prompt": "a windmill"}, extra_headers={"Idempotency-Key": key})
    assert len(tasks(user)) == 1
    assert settled_balance(gw, user) == 1_000_000 - 40_000


def test_openai_edits_replay(gw: Gateway) -> None:
    _, user = account(gw)
    key = new_key()
    image = png_bytes(64, 64)
    data = {"model": "gpt-image-1.5", "prompt": "paint it red", "size": "1024x1024"}

    def edit(body: bytes, idempotency_key: str) -> httpx.Response:
        return user.post(
            "/v1/images/edits",
            data=data,
            files={"image": ("in.png", body, "image/png")},
            headers={"Idempotency-Key": idempotency_key},
        )

    first = edit(image, key)
    assert first.status_code == 200, first.text
    second = edit(image, key)
    assert second.status_code == 200, second.text
    assert second.headers["X-Imagegate-Task-Id"] == first.headers["X-Imagegate-Task-Id"]
    other = edit(png_bytes(64, 64, (255, 0, 0)), key)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "conflict"
    assert len(tasks(user)) == 1
    assert settled_balance(gw, user) == 1_000_000 - 40_000


def test_openai_face_stores_the_client_request_id(gw: Gateway) -> None:
    _, user = account(gw)
    response = user.post(
        "/v1/images/generations",
        json={"model": "gpt-image-1.5", "prompt": "a kite", "size": "1024x1024"},
        headers={"X-Client-Request-Id": "kite-1"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Client-Request-Id"] == "kite-1"
    task = user.get(f"/api/v1/tasks/{response.headers['X-Imagegate-Task-Id']}").json()
    assert task["client_request_id"] == "kite-1"
