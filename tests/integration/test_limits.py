"""Usage tiers and rate limits over real HTTP: per-key windows, reads, concurrency, promotion, pins."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.limits import Tier
from imagegate.settings import Settings
from tests.conftest import T2I_15, Gateway, start_gateway
from tests.profiles import Profile, gateway_env
from tests.serving import Start

IMAGEGATE = Path(sys.executable).parent / "imagegate"
WINDOW_S = 60  # the gateway's clock is moved on instead of waiting a window out
TIERS: list[dict[str, Any]] = [
    {
        "name": "free",
        "creates_per_minute": 3,
        "reads_per_minute": 5,
        "max_concurrent": 10,
        "paid_spend_threshold_micro": 0,
    },
    {
        "name": "tier1",
        "creates_per_minute": 100,
        "reads_per_minute": 1000,
        "max_concurrent": 10,
        "paid_spend_threshold_micro": 40_000,
    },
    {  # only reached by a pin: for the concurrency limit
        "name": "solo",
        "creates_per_minute": 100,
        "reads_per_minute": 1000,
        "max_concurrent": 1,
        "paid_spend_threshold_micro": 10**15,
    },
]
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, profile: Profile) -> Iterator[Gateway]:
    gateway = start_gateway(
        tmp_path_factory.mktemp("limits"), rate_window_s=WINDOW_S, tiers=TIERS, free_calls_per_variant=0
    )
    yield gateway
    gateway.close()


@pytest.fixture(autouse=True)
def fresh_window(gw: Gateway) -> None:
    """Each test starts at the beginning of a window, so none rolls over half-way."""
    gw.clock.advance(WINDOW_S - gw.clock.timestamp() % WINDOW_S + 0.01)


def bonus_account(gw: Gateway, name: str | None = None) -> tuple[str, str]:
    """An unpinned account paying with bonus credits: its spend never promotes it."""
    account_id, key = gw.new_account(name, usd=None, tier=None)
    granted = gw.admin().post(f"/admin/accounts/{account_id}/credits", json={"usd": "10", "bonus": True})
    assert granted.status_code == 201, granted.text
    return account_id, key


def create(client: httpx.Client, prompt: str = "a blue whale") -> httpx.Response:
    return client.post("/api/v1/gpt_image/text_to_image", json={**T2I_15, "prompt": prompt})


def task_count(gw: Gateway, account_id: str) -> int:
    """Tasks of an account, read through a fresh key so no limited budget is spent."""
    key = gw.admin().post(f"/admin/accounts/{account_id}/keys", json={"name": "count"}).json()["key"]
    return len(gw.client(key).get("/api/v1/tasks", params={"limit": 100}).json()["data"])


def assert_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limit"
    retry_after = response.headers["Retry-After"]
    assert re.fullmatch(r"\d+", retry_after), retry_after
    assert 1 <= int(retry_after) <= WINDOW_S
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    reset = int(response.headers["X-RateLimit-Reset"])
    assert reset % WINDOW_S == 0  # windows end on the clock's window boundaries


def me(gw: Gateway, key: str) -> dict[str, Any]:
    response = gw.client(key).get("/api/v1/me")
    assert response.status_code == 200, response.text
    tier: dict[str, Any] = response.json()["tier"]
    return tier


def wait_settled(client: httpx.Client, timeout: float = 15) -> dict[str, Any]:
    """Poll the (unlimited) balance route until nothing is held."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get("/api/v1/me/balance").json()
        if body["held_micro"] == 0:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


# -- creation window -----------------------------------------------------------------------------
def test_creations_are_limited_per_window_and_recover(gw: Gateway) -> None:
    account_id, key = bonus_account(gw)
    user = gw.client(key)
    for remaining in (2, 1, 0):
        response = create(user)
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert "Retry-After" not in response.headers
    refused = create(user)
    assert_limited(refused, 3)
    assert "3" in refused.json()["error"]["message"]
    assert task_count(gw, account_id) == 3

    gw.clock.advance(int(refused.headers["Retry-After"]))
    again = create(user)
    assert again.status_code == 200, again.text
    assert again.headers["X-RateLimit-Limit"] == "3"
    assert task_count(gw, account_id) == 4


def test_each_key_has_its_own_window(gw: Gateway) -> None:
    account_id, key = bonus_account(gw)
    first = gw.client(key)
    for _ in range(3):
        assert create(first).status_code == 200
    assert_limited(create(first), 3)
    other_key = gw.admin().post(f"/admin/accounts/{account_id}/keys", json={"name": "second"}).json()["key"]
    second = create(gw.client(other_key))
    assert second.status_code == 200, second.text
    assert second.headers["X-RateLimit-Remaining"] == "2"
    assert_limited(create(first), 3)


# -- reads ---------------------------------------------------------------------------------------
def test_reads_have_their_own_limit_and_do_not_spend_creations(gw: Gateway) -> None:
    _, key = bonus_account(gw)
    user = gw.client(key)
    task = create(user)
    assert task.status_code == 200, task.text
    task_id = task.json()["id"]
    reads = [
        f"/api/v1/tasks/{task_id}",
        f"/api/v1/gpt_image/{task_id}",
        f"/api/v1/gpt_image/text_to_image/{task_id}",
        "/api/v1/tasks",
        f"/api/v1/tasks/{task_id}",
    ]
    for remaining, path in zip((4, 3, 2, 1, 0), reads, strict=True):
        response = user.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["X-RateLimit-Limit"] == "5", path
        assert response.headers["X-RateLimit-Remaining"] == str(remaining), path
    sixth = user.get(f"/api/v1/tasks/{task_id}")
    assert_limited(sixth, 5)
    assert "read" in sixth.json()["error"]["message"]
    assert_limited(user.get("/api/v1/tasks"), 5)

    created = create(user)
    assert created.status_code == 200, created.text
    assert created.headers["X-RateLimit-Limit"] == "3"
    assert created.headers["X-RateLimit-Remaining"] == "1"


def test_every_answer_of_a_limited_route_carries_the_headers(gw: Gateway) -> None:
    _, key = gw.new_account(usd=None, tier=None)  # no credits, no free calls here
    user = gw.client(key)
    poor = create(user)
    assert poor.status_code == 402, poor.text
    invalid = user.post("/api/v1/gpt_image/text_to_image", json={**T2I_15, "quality": "ultra"})
    assert invalid.status_code == 400, invalid.text
    missing = user.get(f"/api/v1/tasks/{uuid.uuid4()}")
    assert missing.status_code == 404, missing.text
    openai_face = user.post(
        "/v1/images/generations", json={"model": "gpt-image-1.5", "prompt": "x", "size": "1024x1024"}
    )
    assert openai_face.status_code == 402, openai_face.text
    for response in (poor, invalid, missing, openai_face):
        for header in RATE_HEADERS:
            assert header in response.headers, (response.request.url, header)
    assert poor.headers["X-RateLimit-Remaining"] == "2"
    assert invalid.headers["X-RateLimit-Remaining"] == "1"
    assert openai_face.headers["X-RateLimit-Remaining"] == "0"


def test_successful_answers_carry_the_headers_on_both_faces(gw: Gateway) -> None:
    _, key = bonus_account(gw)
    user = gw.client(key)
    created = create(user)
    image = user.post(
        "/v1/images/generations", json={"model": "gpt-image-1.5", "prompt": "x", "size": "1024x1024"}
    )
    assert created.status_code == image.status_code == 200, image.text
    listed = user.get("/api/v1/tasks")
    read = user.get(f"/api/v1/tasks/{created.json()['id']}")
    for response in (created, image, listed, read):
        for header in RATE_HEADERS:
            assert header in response.headers, (response.request.url, header)
    assert (created.headers["X-RateLimit-Limit"], created.headers["X-RateLimit-Remaining"]) == ("3", "2")
    assert (image.headers["X-RateLimit-Limit"], image.headers["X-RateLimit-Remaining"]) == ("3", "1")
    assert (listed.headers["X-RateLimit-Limit"], listed.headers["X-RateLimit-Remaining"]) == ("5", "4")
    assert read.headers["X-RateLimit-Remaining"] == "3"


# -- concurrency ---------------------------------------------------------------------------------
def test_concurrent_tasks_are_limited_per_account(gw: Gateway) -> None:
    account_id, key = gw.new_account(usd="1", tier="solo")
    user = gw.client(key)
    first = create(user, "slow [stall:1]")
    assert first.status_code == 200, first.text
    second = create(user)
    assert second.status_code == 429, second.text
    error = second.json()["error"]
    assert error["code"] == "rate_limit"
    assert error["limit"] == "concurrency"
    assert "pending or processing" in error["message"] and "1" in error["message"]
    assert int(second.headers["Retry-After"]) >= 1
    for header in RATE_HEADERS:
        assert header in second.headers
    # A second key of the same account shares the account's limit.
    other_key = gw.admin().post(f"/admin/accounts/{account_id}/keys", json={}).json()["key"]
    assert create(gw.client(other_key)).status_code == 429
    assert task_count(gw, account_id) == 1
    assert user.get("/api/v1/me/balance").json()["held_micro"] == 40_000

    assert gw.wait(user, first.json()["id"])["status"] == "completed"
    third = create(user)
    assert third.status_code == 200, third.text
    assert task_count(gw, account_id) == 2


# -- tiers ---------------------------------------------------------------------------------------
def test_paid_spend_promotes_an_account(gw: Gateway) -> None:
    _, key = gw.new_account(usd="1", tier=None)
    user = gw.client(key)
    tier = me(gw, key)
    assert (tier["name"], tier["pinned"], tier["creates_per_minute"]) == ("free", False, 3)
    first = create(user)
    assert first.status_code == 200, first.text
    assert first.headers["X-RateLimit-Limit"] == "3"
    settled = wait_settled(user)
    assert settled["paid_spent_micro_total"] == 40_000

    tier = me(gw, key)
    assert (tier["name"], tier["pinned"], tier["creates_per_minute"]) == ("tier1", False, 100)
    assert user.get("/api/v1/me/balance").json()["tier"] == "tier1"
    second = create(user)
    assert second.status_code == 200, second.text
    assert second.headers["X-RateLimit-Limit"] == "100"


def test_bonus_spend_does_not_promote(gw: Gateway) -> None:
    _, key = bonus_account(gw)
    user = gw.client(key)
    assert create(user).status_code == 200
    settled = wait_settled(user)
    assert settled["spent_micro_total"] == 40_000 and settled["paid_spent_micro_total"] == 0
    assert me(gw, key)["name"] == "free"


def test_admin_pin_overrides_spend(gw: Gateway) -> None:
    account_id, key = bonus_account(gw)
    admin = gw.admin()
    pinned = admin.put(f"/admin/accounts/{account_id}/tier", json={"tier": "tier1"})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["tier_pinned"] == "tier1"
    tier = me(gw, key)
    assert (tier["name"], tier["pinned"]) == ("tier1", True)
    assert create(gw.client(key)).headers["X-RateLimit-Limit"] == "100"

    unknown = admin.put(f"/admin/accounts/{account_id}/tier", json={"tier": "platinum"})
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["error"]["code"] == "validation"
    assert admin.put(f"/admin/accounts/{account_id}/tier", json={"tier": 2}).status_code == 400
    assert me(gw, key)["name"] == "tier1"

    unpinned = admin.put(f"/admin/accounts/{account_id}/tier", json={"tier": None})
    assert unpinned.status_code == 200 and unpinned.json()["tier_pinned"] is None
    assert me(gw, key) == {**me(gw, key), "name": "free", "pinned": False}

    # An account promoted by paid spend, pinned down.
    spender_id, spender_key = gw.new_account(usd="1", tier=None)
    spender = gw.client(spender_key)
    assert create(spender).status_code == 200
    wait_settled(spender)
    assert me(gw, spender_key)["name"] == "tier1"
    assert admin.put(f"/admin/accounts/{spender_id}/tier", json={"tier": "free"}).status_code == 200
    assert me(gw, spender_key) == {**me(gw, spender_key), "name": "free", "pinned": True}
    assert create(spender).headers["X-RateLimit-Limit"] == "3"
    assert admin.get(f"/admin/accounts/{spender_id}/credits").json()["tier_pinned"] == "free"


@pytest.mark.parametrize(
    "body", [{}, {"teir": "tier2"}, {"name": "tier2"}], ids=["empty", "misspelled", "other-field"]
)
def test_admin_pin_needs_the_tier_field(gw: Gateway, body: dict[str, Any]) -> None:
    """Only an explicit ``{"tier": null}`` unpins: a body without ``tier`` is a mistake, not an unpin."""
    account_id, key = gw.new_account(usd=None, tier="tier1")
    answer = gw.admin().put(f"/admin/accounts/{account_id}/tier", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "validation"
    assert (me(gw, key)["name"], me(gw, key)["pinned"]) == ("tier1", True)


def cli(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = gateway_env(gw.settings.data_dir, IMAGEGATE_TIERS=json.dumps(TIERS))
    return subprocess.run(
        [str(IMAGEGATE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_pins_a_tier(gw: Gateway) -> None:
    name = f"pin-{uuid.uuid4().hex[:8]}"
    _, key = bonus_account(gw, name)
    assert me(gw, key)["name"] == "free"
    pinned = cli(gw, "accounts", "tier", name, "tier1")
    assert pinned.returncode == 0, pinned.stderr
    assert (me(gw, key)["name"], me(gw, key)["pinned"]) == ("tier1", True)
    unknown = cli(gw, "accounts", "tier", name, "platinum")
    assert unknown.returncode == 1
    assert "platinum" in unknown.stderr or "tier" in unknown.stderr
    assert me(gw, key)["name"] == "tier1"
    auto = cli(gw, "accounts", "tier", name, "auto")
    assert auto.returncode == 0, auto.stderr
    assert (me(gw, key)["name"], me(gw, key)["pinned"]) == ("free", False)


# -- defaults ------------------------------------------------------------------------------------
def test_default_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IMAGEGATE_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.rate_window_s == 60
    assert settings.free_calls_per_variant == 3
    tiers = {t.name: t for t in settings.tiers}
    assert list(tiers) == ["free", "tier1", "tier2"]
    got = {n: (t.creates_per_minute, t.max_concurrent) for n, t in tiers.items()}
    assert got == {"free": (5, 1), "tier1": (60, 5), "tier2": (600, 50)}
    assert tiers["free"].paid_spend_threshold_micro == 0
    thresholds = [t.paid_spend_threshold_micro for t in settings.tiers]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 3
    for tier in settings.tiers:
        assert tier.reads_per_minute > tier.creates_per_minute

    monkeypatch.setenv("IMAGEGATE_TIERS", json.dumps(TIERS[:2]))
    monkeypatch.setenv("IMAGEGATE_RATE_WINDOW_S", "2")
    configured = Settings()
    assert configured.tiers == [Tier(**t) for t in TIERS[:2]]
    assert configured.rate_window_s == 2


# -- the demo account of `imagegate serve` -------------------------------------------------------
@pytest.fixture
def served(serve: Start, tmp_path: Path) -> tuple[str, str]:
    server = serve(tmp_path)
    assert server.demo_key is not None, "no demo key in the banner"
    return server.base_url, server.demo_key


def test_the_demo_account_is_pinned_to_tier2_with_5_dollars(served: tuple[str, str]) -> None:
    url, key = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        tier = client.get("/api/v1/me").json()["tier"]
        assert (tier["name"], tier["pinned"], tier["creates_per_minute"], tier["max_concurrent"]) == (
            "tier2",
            True,
            600,
            50,
        )
        money = client.get("/api/v1/me/balance").json()
        assert money["balance_cents"] == 500
        assert money["balance_micro"] == 5_000_000
        assert money["tier"] == "tier2"
