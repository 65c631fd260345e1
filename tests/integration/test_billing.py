"""Credits over real HTTP: free calls, holds, captures and releases, usage, prices, admin and CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import T2I_15, Gateway, png_bytes, start_gateway
from tests.profiles import Profile, gateway_env, sql

IMAGEGATE = Path(sys.executable).parent / "imagegate"
T2I_15_VARIANT = "gpt-image-1.5-text-to-image"
EDIT_15_VARIANT = "gpt-image-1.5-image-to-image"
T2I_15_HIGH = {**T2I_15, "quality": "high"}
T2I_2_1K = {"model": "gpt-image-2", "prompt": "a red fox", "aspect_ratio": "1:1", "output_resolution": "1k"}
SOURCE = "data:image/png;base64," + base64.b64encode(png_bytes(32, 32)).decode()
EDIT_15 = {**T2I_15, "prompt": "make it green", "source_image_urls": [SOURCE]}


# -- helpers -------------------------------------------------------------------------------------
def create(client: httpx.Client, body: dict[str, Any], service: str = "gpt_image") -> httpx.Response:
    return client.post(f"/api/v1/{service}/text_to_image", json=body)


def created(client: httpx.Client, body: dict[str, Any], service: str = "gpt_image") -> dict[str, Any]:
    response = create(client, body, service)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def balance(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/v1/me/balance")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def task_ids(client: httpx.Client) -> list[str]:
    response = client.get("/api/v1/tasks", params={"limit": 100})
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()["data"]]


def with_prompt(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    return {**body, "prompt": prompt}


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IMAGEGATE), *args],
        env=gateway_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def nofree(tmp_path_factory: pytest.TempPathFactory, profile: Profile) -> Iterator[Gateway]:
    """A gateway without free calls, so every call is paid from the first."""
    gw = start_gateway(tmp_path_factory.mktemp("nofree"), free_calls_per_variant=0)
    yield gw
    gw.close()


def paid_user(gw: Gateway, usd: str = "10") -> tuple[str, httpx.Client]:
    account_id, key = gw.new_account(usd=usd, tier="tier2")
    return account_id, gw.client(key)


# -- free calls, 402 and the first paid call ---------------------------------------------------
def test_free_calls_then_insufficient_credits_then_paid(gateway: Gateway) -> None:
    account_id, key = gateway.new_account(usd=None, tier="tier2")
    user = gateway.client(key)
    start = balance(user)
    assert start["free_calls"]["per_variant"] == 3
    assert start["free_calls"]["left"][T2I_15_VARIANT] == 3
    assert start["balance_micro"] == 0

    ids = []
    for left in (2, 1, 0):
        task = created(user, T2I_15)
        ids.append(task["id"])
        assert task["billing"]["free_call"] is True
        assert task["billing"]["reservation"] == {"amount_cents": 0, "amount_micro": 0}
        now = balance(user)
        assert now["free_calls"]["left"][T2I_15_VARIANT] == left
        assert now["balance_micro"] == 0
    for task_id in ids:
        done = gateway.wait(user, task_id)
        assert done["status"] == "completed"
        assert done["billing"]["free_call"] is True
        assert done["billing"]["settlement"] == {"charged_amount_cents": 0, "amount_micro": 0}

    before = balance(user)
    refused = create(user, T2I_15)
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["code"] == "insufficient_credits"
    assert sorted(task_ids(user)) == sorted(ids), "a refused call must leave no task row"
    after = balance(user)
    assert after["balance_micro"] == before["balance_micro"] == 0
    assert after["held_micro"] == 0
    assert after["free_calls"]["left"][T2I_15_VARIANT] == 0

    # Another variant keeps its own free calls.
    assert after["free_calls"]["left"][EDIT_15_VARIANT] == 3
    edit = user.post("/api/v1/gpt_image/edit_image", json=EDIT_15)
    assert edit.status_code == 200, edit.text
    assert edit.json()["billing"]["free_call"] is True
    assert gateway.wait(user, edit.json()["id"])["status"] == "completed"
    assert balance(user)["free_calls"]["left"][EDIT_15_VARIANT] == 2

    granted = gateway.admin().post(
        f"/admin/accounts/{account_id}/credits", json={"usd": "1", "note": "top-up"}
    )
    assert granted.status_code == 201, granted.text
    paid = created(user, T2I_15)
    assert paid["billing"]["free_call"] is False
    assert paid["billing"]["reservation"] == {"amount_cents": 4, "amount_micro": 40_000}
    done = gateway.wait(user, paid["id"])
    assert done["status"] == "completed"
    assert done["billing"]["settlement"] == {"charged_amount_cents": 4, "amount_micro": 40_000}
    assert done["billing"]["refund"] is None
    final = balance(user)
    assert final["balance_cents"] == 96
    assert final["balance_micro"] == 960_000
    assert final["held_micro"] == 0
    assert final["spent_cents_total"] == 4
    assert final["spent_cents_today"] == 4
    assert final["paid_spent_micro_total"] == 40_000


def test_a_failed_free_call_gives_the_free_call_back(gateway: Gateway) -> None:
    _, key = gateway.new_account(usd=None, tier="tier2")
    user = gateway.client(key)
    task = created(user, with_prompt(T2I_15, "a whale [stall:1] [fail]"))
    assert task["billing"]["free_call"] is True
    assert balance(user)["free_calls"]["left"][T2I_15_VARIANT] == 2
    done = gateway.wait(user, task["id"])
    assert done["status"] == "failed"
    assert done["billing"]["settlement"] is None
    assert done["billing"]["refund"] is not None and done["billing"]["refund"]["refunded_at"]
    assert balance(user)["free_calls"]["left"][T2I_15_VARIANT] == 3


def test_a_canceled_free_call_gives_the_free_call_back(gateway: Gateway) -> None:
    _, key = gateway.new_account(usd=None, tier="tier2")
    user = gateway.client(key)
    task = created(user, with_prompt(T2I_15, "a whale [stall:5]"))
    assert task["billing"]["free_call"] is True
    assert balance(user)["free_calls"]["left"][T2I_15_VARIANT] == 2
    canceled = user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["billing"]["refund"]["refunded_at"]
    assert balance(user)["free_calls"]["left"][T2I_15_VARIANT] == 3


# -- paid calls: failure, cancel, quality, n ---------------------------------------------------
def test_a_failed_paid_call_is_refunded(nofree: Gateway) -> None:
    _, user = paid_user(nofree, "1")
    before = balance(user)
    task = created(user, with_prompt(T2I_15, "a whale [fail]"))
    assert task["billing"]["free_call"] is False
    assert task["billing"]["reservation"] == {"amount_cents": 4, "amount_micro": 40_000}
    done = nofree.wait(user, task["id"])
    assert done["status"] == "failed"
    assert done["billing"]["settlement"] is None
    assert done["billing"]["refund"]["refunded_at"]
    after = balance(user)
    assert after["balance_micro"] == before["balance_micro"] == 1_000_000
    assert after["held_micro"] == 0
    assert after["spent_micro_total"] == 0


def test_cancel_releases_the_hold(nofree: Gateway) -> None:
    _, user = paid_user(nofree, "1")
    task = created(user, with_prompt(T2I_15, "a whale [stall:5]"))
    during = balance(user)
    assert during["held_micro"] == 40_000
    assert during["balance_micro"] == 960_000
    canceled = user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert body["status"] == "canceled"
    assert body["billing"]["refund"]["refunded_at"]
    assert body["billing"]["settlement"] is None
    after = balance(user)
    assert after["balance_micro"] == 1_000_000
    assert after["held_micro"] == 0
    assert after["spent_micro_total"] == 0
    # Reading it back later says the same.
    assert nofree.wait(user, task["id"])["billing"]["refund"]["refunded_at"]


def test_high_quality_costs_22_cents(nofree: Gateway) -> None:
    _, user = paid_user(nofree, "1")
    task = created(user, T2I_15_HIGH)
    assert task["billing"]["reservation"] == {"amount_cents": 22, "amount_micro": 220_000}
    done = nofree.wait(user, task["id"])
    assert done["billing"]["settlement"] == {"charged_amount_cents": 22, "amount_micro": 220_000}
    after = balance(user)
    assert after["balance_micro"] == 780_000
    assert after["spent_cents_total"] == 22


def test_openai_face_charges_per_image(nofree: Gateway) -> None:
    _, user = paid_user(nofree, "1")
    response = user.post(
        "/v1/images/generations",
        json={
            "model": "gpt-image-1.5",
            "prompt": "two foxes",
            "n": 2,
            "size": "1024x1024",
            "quality": "medium",
        },
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    task = user.get(f"/api/v1/tasks/{response.headers['X-Imagegate-Task-Id']}").json()
    assert task["billing"]["reservation"] == {"amount_cents": 8, "amount_micro": 80_000}
    assert task["billing"]["settlement"] == {"charged_amount_cents": 8, "amount_micro": 80_000}
    after = balance(user)
    assert after["balance_micro"] == 920_000
    assert after["held_micro"] == 0


def test_a_retired_model_is_charged_at_the_requested_variants_price(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[models."gpt-image-1.5".lifecycle]\nshutdown_date = "2020-01-01"\n')
    gw = start_gateway(tmp_path / "data", catalog_file=catalog, free_calls_per_variant=0)
    try:
        _, user = paid_user(gw, "1")
        task = created(user, T2I_15_HIGH)
        assert task["model"] == "gpt-image-1.5"
        assert task["model_served"] == "gpt-image-2"
        assert task["billing"]["reservation"] == {"amount_cents": 22, "amount_micro": 220_000}
        done = gw.wait(user, task["id"])
        assert done["status"] == "completed"
        assert done["model_served"] == "gpt-image-2"
        assert done["billing"]["settlement"] == {"charged_amount_cents": 22, "amount_micro": 220_000}
        assert balance(user)["balance_micro"] == 780_000
    finally:
        gw.close()


def test_racing_for_the_last_credit_only_one_wins(nofree: Gateway) -> None:
    account_id, key = nofree.new_account(usd="0.04", tier="tier2")
    clients = [nofree.client(key) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def fire(client: httpx.Client) -> None:
        barrier.wait()
        response = create(client, T2I_15)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=fire, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] + [402] * 7, [r.text for r in answers]
    assert all(r.json()["error"]["code"] == "insufficient_credits" for r in answers if r.status_code == 402)
    winner = next(r.json() for r in answers if r.status_code == 200)
    user = clients[0]
    assert task_ids(user) == [winner["id"]]
    assert nofree.wait(user, winner["id"])["status"] == "completed"
    after = balance(user)
    assert after["balance_micro"] == 0
    assert after["held_micro"] == 0
    assert after["spent_micro_total"] == 40_000
    credits = nofree.admin().get(f"/admin/accounts/{account_id}/credits").json()
    assert credits["paid_micro"] == 0 and credits["spent_paid_micro"] == 40_000
    check = cli(nofree.settings.data_dir, "ledger", "check")
    assert check.returncode == 0, check.stderr


# -- usage ---------------------------------------------------------------------------------------
def test_usage_per_day_and_variant(nofree: Gateway) -> None:
    _, user = paid_user(nofree, "1")
    ids = [
        created(user, T2I_15)["id"],
        created(user, T2I_15_HIGH)["id"],
        created(user, with_prompt(T2I_15, "a whale [fail]"))["id"],
        created(user, T2I_2_1K, service="gpt_image_2")["id"],
    ]
    statuses = [nofree.wait(user, task_id)["status"] for task_id in ids]
    assert statuses == ["completed", "completed", "failed", "completed"]

    day = nofree.clock.today().isoformat()
    report = user.get("/api/v1/me/usage")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["to"] == day
    rows = {(row["date"], row["variant"]): row for row in body["data"]}
    assert set(rows) == {(day, T2I_15_VARIANT), (day, "gpt-image-2-text-to-image")}
    first = rows[(day, T2I_15_VARIANT)]
    assert (first["calls"], first["completed"], first["failures"], first["free_calls"]) == (3, 2, 1, 0)
    assert first["spend_micro"] == 260_000 and first["spend_cents"] == 26
    second = rows[(day, "gpt-image-2-text-to-image")]
    assert (second["calls"], second["completed"], second["failures"]) == (1, 1, 0)
    assert second["spend_micro"] == 60_000 and second["spend_cents"] == 6
    assert balance(user)["spent_micro_total"] == 320_000

    same = user.get("/api/v1/me/usage", params={"from": day, "to": day}).json()
    assert same["data"] == body["data"]
    yesterday = (nofree.clock.today() - timedelta(days=1)).isoformat()
    month_ago = (nofree.clock.today() - timedelta(days=30)).isoformat()
    earlier = user.get("/api/v1/me/usage", params={"from": month_ago, "to": yesterday})
    assert earlier.status_code == 200, earlier.text
    assert earlier.json()["data"] == []
    assert (earlier.json()["from"], earlier.json()["to"]) == (month_ago, yesterday)

    for params in (
        {"from": "yesterday"},
        {"to": "2026-13-01"},
        {"from": day, "to": "2020-01-01"},
        {"from": "2020-01-01"},
    ):
        bad = user.get("/api/v1/me/usage", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.json()["error"]["code"] == "validation"


def test_usage_is_per_account(nofree: Gateway) -> None:
    _, user = paid_user(nofree, "1")
    assert user.get("/api/v1/me/usage").json()["data"] == []
    assert nofree.client().get("/api/v1/me/usage").status_code == 401


# -- price schedules and quotes ----------------------------------------------------------------
def test_price_schedules_list_every_variant_with_an_etag(gateway: Gateway) -> None:
    anonymous = gateway.client()
    response = anonymous.get("/api/v1/price_schedules")
    assert response.status_code == 200, response.text
    tag = response.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"')
    entries = response.json()["price_schedules"]
    keys = {(e["service"], e["action"], e["model"]) for e in entries}
    for service, model in (
        ("gpt_image", "gpt-image-1.5"),
        ("gpt_image_2", "gpt-image-2"),
        ("gpt_image_2_5", "gpt-image-2.5-flare"),
        ("gpt_image_2_5", "gpt-image-2.5-sunburst"),
        ("gpt_image", "gpt-image-1"),
        ("gpt_image_2_6", "gpt-image-2.6-flare"),
        ("gpt_image_2_6", "gpt-image-2.6-sunburst"),
    ):
        for action in ("text_to_image", "edit_image"):
            assert (service, action, model) in keys
    assert len(entries) == len(keys) == 14
    by_key = {(e["model"], e["action"]): e for e in entries}
    for action in ("text_to_image", "edit_image"):
        one_five = by_key[("gpt-image-1.5", action)]
        assert one_five["unit_price_cents"] == 4
        assert one_five["billing_config"]["key"] == "quality"
        assert one_five["billing_config"]["matrix"] == {"medium": 4, "high": 22}
        two = by_key[("gpt-image-2", action)]
        assert two["unit_price_cents"] == 6
        assert two["billing_config"]["matrix"] == {"1k": 6, "2k": 10, "4k": 16}

    again = anonymous.get("/api/v1/price_schedules", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == tag
    stale = anonymous.get("/api/v1/price_schedules", headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.json()["price_schedules"] == entries


@pytest.mark.parametrize("form", ["weak", "list", "star"])
def test_price_schedules_if_none_match_follows_rfc_9110(gateway: Gateway, form: str) -> None:
    """If-None-Match compares weakly and may list several tags or be ``*`` (RFC 9110 13.1.2):
    a cache behind a proxy that weakens ETags (nginx with gzip) must still get its 304."""
    anonymous = gateway.client()
    tag = anonymous.get("/api/v1/price_schedules").headers["ETag"]
    header = {"weak": f"W/{tag}", "list": f'"not-it", {tag}', "star": "*"}[form]
    again = anonymous.get("/api/v1/price_schedules", headers={"If-None-Match": header})
    assert again.status_code == 304, (header, again.status_code)


def test_price_schedules_filters(gateway: Gateway) -> None:
    anonymous = gateway.client()
    everything = anonymous.get("/api/v1/price_schedules")

    by_service = anonymous.get("/api/v1/price_schedules", params={"service": "gpt_image_2"})
    assert {e["model"] for e in by_service.json()["price_schedules"]} == {"gpt-image-2"}
    assert len(by_service.json()["price_schedules"]) == 2
    assert by_service.headers["ETag"] != everything.headers["ETag"]

    by_model = anonymous.get("/api/v1/price_schedules", params={"model": "gpt-image-1.5"}).json()
    assert {(e["model"], e["action"]) for e in by_model["price_schedules"]} == {
        ("gpt-image-1.5", "text_to_image"),
        ("gpt-image-1.5", "edit_image"),
    }
    by_alias = anonymous.get("/api/v1/price_schedules", params={"model": "gpt-image-1.5-2025-12-16"}).json()
    assert by_alias["price_schedules"] == by_model["price_schedules"]

    by_action = anonymous.get("/api/v1/price_schedules", params={"action": "edit_image"}).json()
    assert {e["action"] for e in by_action["price_schedules"]} == {"edit_image"}
    assert len(by_action["price_schedules"]) == 7

    nothing = anonymous.get("/api/v1/price_schedules", params={"service": "no_such_service"})
    assert nothing.status_code == 200 and nothing.json()["price_schedules"] == []


def quote(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/api/v1/price_quotes", json=body)


def test_price_quotes(gateway: Gateway) -> None:
    client = gateway.client()
    high = quote(
        client,
        {
            "service": "gpt_image",
            "action": "text_to_image",
            "model": "gpt-image-1.5",
            "params": {"quality": "high"},
        },
    )
    assert high.status_code == 200, high.text
    assert high.json()["price_quote"]["reservation_amount_cents"] == 22
    assert high.json()["price_quote"]["reservation_amount_micro"] == 220_000

    medium = quote(
        client,
        {
            "service": "gpt_image",
            "action": "edit_image",
            "model": "gpt-image-1.5",
            "params": {"quality": "medium"},
        },
    )
    assert medium.status_code == 200, medium.text
    assert medium.json()["price_quote"]["reservation_amount_cents"] == 4

    four_k = quote(
        client,
        {
            "service": "gpt_image_2",
            "action": "text_to_image",
            "model": "gpt-image-2",
            "params": {"output_resolution": "4k", "aspect_ratio": "16:9"},
        },
    )
    assert four_k.status_code == 200, four_k.text
    assert four_k.json()["price_quote"]["reservation_amount_cents"] == 16
    assert four_k.json()["price_quote"]["reservation_amount_micro"] == 160_000


def test_a_quote_needs_only_the_field_that_sets_the_price(gateway: Gateway) -> None:
    """The price of gpt-image-2 depends on output_resolution alone: quoting 4k must not fail
    because the unasked-for default aspect_ratio ("auto") only allows 1k."""
    answer = quote(
        gateway.client(),
        {
            "service": "gpt_image_2",
            "action": "text_to_image",
            "model": "gpt-image-2",
            "params": {"output_resolution": "4k"},
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["price_quote"]["reservation_amount_cents"] == 16


@pytest.mark.parametrize(
    "body",
    [
        {"action": "text_to_image", "model": "gpt-image-1.5", "params": {"quality": "high"}},
        {"service": "gpt_image", "action": "paint", "model": "gpt-image-1.5", "params": {}},
        {"service": "gpt_image", "action": "text_to_image", "model": "gpt-image-1.5", "params": ["high"]},
        {
            "service": "gpt_image",
            "action": "text_to_image",
            "model": "gpt-image-1.5",
            "params": {"quality": "ultra"},
        },
        {"service": "gpt_image", "action": "text_to_image", "model": "gpt-image-2", "params": {}},
        {"service": "gpt_image_2", "action": "text_to_image", "params": {"output_resolution": "8k"}},
    ],
)
def test_bad_quotes_are_400(gateway: Gateway, body: dict[str, Any]) -> None:
    answer = quote(gateway.client(), body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "validation"


def test_a_quote_body_must_be_json(gateway: Gateway) -> None:
    answer = gateway.client().post("/api/v1/price_quotes", content=b"{not json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "validation"


# -- admin credits -------------------------------------------------------------------------------
def ledger_notes(data_dir: Path, account_id: str) -> list[tuple[Any, ...]]:
    return sql(
        data_dir,
        "SELECT kind, amount_micro, bonus_micro, note FROM ledger_entries "
        "WHERE account_id = ? AND kind = 'grant' ORDER BY id",
        account_id,
    )


def test_admin_grants_paid_and_bonus_credits_and_bonus_is_spent_first(nofree: Gateway) -> None:
    account_id, key = nofree.new_account(usd=None, tier="tier2")
    user, admin = nofree.client(key), nofree.admin()
    paid = admin.post(f"/admin/accounts/{account_id}/credits", json={"usd": "1", "note": "invoice 7"})
    assert paid.status_code == 201, paid.text
    assert paid.json()["granted_micro"] == 1_000_000
    assert paid.json()["paid_micro"] == 1_000_000 and paid.json()["bonus_micro"] == 0
    bonus = admin.post(
        f"/admin/accounts/{account_id}/credits", json={"usd": "0.10", "note": "welcome", "bonus": True}
    )
    assert bonus.status_code == 201, bonus.text
    assert bonus.json()["bonus_micro"] == 100_000 and bonus.json()["balance_micro"] == 1_100_000
    assert ledger_notes(nofree.settings.data_dir, account_id) == [
        ("grant", 1_000_000, 0, "invoice 7"),
        ("grant", 100_000, 100_000, "welcome"),
    ]

    now = balance(user)
    assert (now["balance_cents"], now["paid_balance_cents"], now["bonus_balance_cents"]) == (110, 100, 10)

    nofree.wait(user, created(user, T2I_15)["id"])  # 4 cents, all from the bonus
    now = balance(user)
    assert (now["paid_balance_cents"], now["bonus_balance_cents"]) == (100, 6)
    assert now["paid_spent_micro_total"] == 0 and now["spent_micro_total"] == 40_000

    nofree.wait(user, created(user, T2I_15_HIGH)["id"])  # 22 cents: 6 bonus, 16 paid
    now = balance(user)
    assert (now["paid_balance_cents"], now["bonus_balance_cents"]) == (84, 0)
    assert now["paid_spent_micro_total"] == 160_000 and now["spent_micro_total"] == 260_000

    shown = admin.get(f"/admin/accounts/{account_id}/credits")
    assert shown.status_code == 200, shown.text
    assert shown.json() == {
        "account_id": account_id,
        "tier_pinned": "tier2",
        "balance_micro": 840_000,
        "paid_micro": 840_000,
        "bonus_micro": 0,
        "held_micro": 0,
        "spent_paid_micro": 160_000,
        "spent_bonus_micro": 100_000,
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"usd": "abc"},
        {"usd": "0"},
        {"usd": "-1"},
        {"usd": "1.0000001"},
        {"usd": None},
        {"usd": "sNaN"},  # Decimal accepts it, arithmetic on it raises
        {"usd": "1e30"},  # more micro-dollars than a 64-bit column holds
    ],
    ids=["missing", "abc", "zero", "negative", "sub-micro", "null", "snan", "huge"],
)
def test_admin_grant_refuses_bad_amounts(gateway: Gateway, body: dict[str, Any]) -> None:
    account_id, _ = gateway.new_account(usd=None, tier=None)
    admin = gateway.admin()
    answer = admin.post(f"/admin/accounts/{account_id}/credits", json=body)
    assert answer.status_code == 400, answer.text
    assert admin.get(f"/admin/accounts/{account_id}/credits").json()["balance_micro"] == 0


@pytest.mark.parametrize("flag", ["false", "no", [True]], ids=["str-false", "str-no", "list"])
def test_admin_grant_bonus_must_be_a_boolean(gateway: Gateway, flag: Any) -> None:
    """``"bonus": "false"`` is not a bonus grant: a non-boolean flag is refused, nothing granted."""
    account_id, _ = gateway.new_account(usd=None, tier=None)
    admin = gateway.admin()
    answer = admin.post(f"/admin/accounts/{account_id}/credits", json={"usd": "1", "bonus": flag})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "bonus"
    assert admin.get(f"/admin/accounts/{account_id}/credits").json()["balance_micro"] == 0


def test_admin_credits_of_an_unknown_account_are_404(gateway: Gateway) -> None:
    admin = gateway.admin()
    assert admin.post("/admin/accounts/nobody-here/credits", json={"usd": "1"}).status_code == 404
    assert admin.get("/admin/accounts/nobody-here/credits").status_code == 404
    assert gateway.client("wrong").get("/admin/accounts/nobody-here/credits").status_code == 401


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_credits_and_ledger_check(tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    gw = start_gateway(tmp_path, free_calls_per_variant=1)
    try:
        account_id, key = gw.new_account(name, usd="1", tier="tier2")
        user = gw.client(key)
        assert gw.wait(user, created(user, T2I_15)["id"])["billing"]["free_call"] is True
        paid = gw.wait(user, created(user, T2I_15)["id"])
        assert paid["status"] == "completed" and paid["billing"]["settlement"]["amount_micro"] == 40_000
        assert gw.wait(user, created(user, with_prompt(T2I_15, "x [fail]"))["id"])["status"] == "failed"
        stalled = created(user, with_prompt(T2I_15, "x [stall:5]"))
        assert user.post(f"/api/v1/tasks/{stalled['id']}/cancel").status_code == 200
        expected = balance(user)["balance_micro"]
        assert expected == 960_000
    finally:
        gw.close()

    granted = cli(tmp_path, "credits", "grant", name, "2.5", "--note", "x")
    assert granted.returncode == 0, granted.stderr
    result = json.loads(granted.stdout)
    assert result["account_id"] == account_id
    assert result["balance_micro"] == expected + 2_500_000
    assert result["paid_micro"] == expected + 2_500_000
    assert result["spent_paid_micro"] == 40_000

    shown = cli(tmp_path, "credits", "show", name)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == result
    assert json.loads(shown.stdout)["balance_usd"] == "$3.46"
    assert ledger_notes(tmp_path, account_id)[-1] == ("grant", 2_500_000, 0, "x")

    clean = cli(tmp_path, "ledger", "check")
    assert clean.returncode == 0, clean.stderr

    # A stored total that no longer matches the ledger.
    sql(tmp_path, "UPDATE balances SET paid_micro = paid_micro + 1 WHERE account_id = ?", account_id)
    drifted = cli(tmp_path, "ledger", "check")
    assert drifted.returncode == 1, drifted.stderr
    assert account_id in drifted.stderr

    repaired = cli(tmp_path, "ledger", "check", "--repair")
    assert account_id in repaired.stderr and "repaired" in repaired.stderr
    assert sql(tmp_path, "SELECT paid_micro FROM balances WHERE account_id = ?", account_id) == [
        (result["paid_micro"],)
    ]

    # A completed task whose hold claims to have been released.
    sql(tmp_path, "UPDATE tasks SET hold_state = 'released' WHERE id = ?", paid["id"])
    broken = cli(tmp_path, "ledger", "check")
    assert broken.returncode == 1, broken.stderr
    assert paid["id"] in broken.stderr
    sql(tmp_path, "UPDATE tasks SET hold_state = 'captured' WHERE id = ?", paid["id"])

    again = cli(tmp_path, "ledger", "check")
    assert again.returncode == 0, again.stderr
