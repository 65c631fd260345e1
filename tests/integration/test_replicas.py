"""Two gateway replicas on one database: the engines each profile runs on, and the guarantees
that must hold when replicas race (one hold per task, exactly the credits there are, shared
rate limits and signing key), plus downloads that never pass through the gateway on S3."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from imagegate.gateway import Gateway as Core
from imagegate.queue import Queue
from tests.conftest import T2I_15, Gateway, start_gateway
from tests.profiles import SCALE, Profile, gateway_env
from tests.serving import IMAGEGATE

CREATE = "/api/v1/gpt_image/text_to_image"
PRICE_MICRO = 40_000  # gpt-image-1.5 medium, 1:1


@pytest.fixture
def replicas(tmp_path: Path, profile: Profile) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways on one data directory: one database, one bucket prefix, one Redis."""
    tiers = [
        {
            "name": "tier2",
            "creates_per_minute": 1000,
            "reads_per_minute": 10_000,
            "max_concurrent": 1000,
            "paid_spend_threshold_micro": 0,
        }
    ]
    first = start_gateway(tmp_path, free_calls_per_variant=0, tiers=tiers)
    second = start_gateway(tmp_path, free_calls_per_variant=0, tiers=tiers)
    for gw in (first, second):
        # FastAPI builds a route on its first request; racing first requests made it emit a
        # pydantic warning that this suite turns into an error (a 500). The races are the point.
        assert gw.client().post(CREATE, json={}).status_code == 401
    yield first, second
    second.close()
    first.close()


def engines(gw: Gateway) -> dict[str, Any]:
    async def look(core: Core, _: Queue) -> dict[str, Any]:
        return {
            "database": core.db.engine.dialect.name,
            "driver": core.db.engine.dialect.driver,
            "redis": core.redis is not None,
            "storage": type(core.storage).__name__,
        }

    return gw.thread.call(look)


def test_each_profile_runs_on_its_engines(gateway: Gateway, profile: Profile) -> None:
    if profile.name == SCALE:
        assert profile.services is not None
        assert profile.services.s3.unavailable is None, profile.services.s3.unavailable
        expected = {"database": "postgresql", "driver": "psycopg", "redis": True, "storage": "S3Storage"}
    else:
        expected = {"database": "sqlite", "driver": "inline", "redis": False, "storage": "LocalStorage"}
    assert engines(gateway) == expected


def test_racing_replicas_spend_exactly_the_credits_there_are(replicas: tuple[Gateway, Gateway]) -> None:
    first, second = replicas
    affordable = 5
    account_id, key = first.new_account(usd=None, tier="tier2")
    granted = first.admin().post(
        f"/admin/accounts/{account_id}/credits", json={"usd": str(affordable * PRICE_MICRO / 1_000_000)}
    )
    assert granted.status_code == 201, granted.text
    clients = [first.client(key), second.client(key)]

    def create(index: int) -> httpx.Response:
        return clients[index % 2].post(CREATE, json=T2I_15)

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(create, range(24)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * affordable + [402] * (24 - affordable), [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 200:
            first.wait(clients[0], answer.json()["id"])
    balance = clients[1].get("/api/v1/me/balance").json()
    assert (balance["balance_micro"], balance["held_micro"]) == (0, 0)
    check = subprocess.run(
        [str(IMAGEGATE), "ledger", "check"],
        env=gateway_env(first.settings.data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0 and "ledger clean" in check.stderr, check.stderr


def test_a_new_account_funded_on_two_replicas_at_once_gets_both_grants(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """The balance row is made by whichever replica comes first; the other waits and adds."""
    first, second = replicas
    account_id, _ = first.new_account(usd=None, tier=None)
    admins = [first.admin(), second.admin()]

    def grant(index: int) -> int:
        url = f"/admin/accounts/{account_id}/credits"
        return admins[index % 2].post(url, json={"usd": "1"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(grant, range(8))) == [201] * 8
    listed = first.admin().get(f"/admin/accounts/{account_id}/credits").json()
    assert listed["paid_micro"] == 8_000_000, listed


def test_an_idempotency_key_sent_to_both_replicas_makes_one_task(replicas: tuple[Gateway, Gateway]) -> None:
    first, second = replicas
    _, key = first.new_account(usd="1", tier="tier2")
    clients = [first.client(key), second.client(key)]
    headers = {"Idempotency-Key": "same-key"}

    def create(index: int) -> httpx.Response:
        return clients[index % 2].post(CREATE, json=T2I_15, headers=headers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(create, range(8)))
    assert {answer.status_code for answer in answers} == {200}, [a.text for a in answers]
    (task_id,) = {answer.json()["id"] for answer in answers}
    first.wait(clients[0], task_id)
    balance = clients[0].get("/api/v1/me/balance").json()
    assert (balance["balance_micro"], balance["held_micro"]) == (1_000_000 - PRICE_MICRO, 0)


def test_links_signed_by_one_replica_open_on_the_other(replicas: tuple[Gateway, Gateway]) -> None:
    first, second = replicas
    client = first.user()
    task = first.wait(client, client.post(CREATE, json=T2I_15).json()["id"])
    path = urlsplit(task["images"][0]["url"])
    other = second.client().get(f"{path.path}?{path.query}")
    assert other.status_code == 200 and other.content.startswith(b"\x89PNG")


def test_rate_limits_count_across_replicas_on_redis(tmp_path: Path, profile: Profile) -> None:
    tiers = [
        {
            "name": "tier2",
            "creates_per_minute": 4,
            "reads_per_minute": 10_000,
            "max_concurrent": 100,
            "paid_spend_threshold_micro": 0,
        }
    ]
    first = start_gateway(tmp_path, tiers=tiers, rate_window_s=3600)
    second = start_gateway(tmp_path, tiers=tiers, rate_window_s=3600, clock=first.clock)
    try:
        _, key = first.new_account(usd="10", tier="tier2")
        clients = [first.client(key), second.client(key)]
        codes = [clients[i % 2].post(CREATE, json=T2I_15).status_code for i in range(6)]
        if profile.name == SCALE:  # one count in Redis for every replica
            assert codes == [200, 200, 200, 200, 429, 429]
        else:  # memory:// counts per process: each replica allows 4
            assert codes == [200] * 6
    finally:
        second.close()
        first.close()


def test_outputs_download_from_the_store(gateway: Gateway, profile: Profile) -> None:
    if profile.services is not None:
        assert profile.services.s3.unavailable is None, profile.services.s3.unavailable
    client = gateway.user()
    task = gateway.wait(client, client.post(CREATE, json=T2I_15).json()["id"])
    link = task["images"][0]["url"]
    answer = gateway.client(follow_redirects=False).get(link)
    if profile.name != SCALE:
        assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
        return
    # The gateway checks its own signature and expiry, then hands over a presigned GET.
    assert answer.status_code == 307, answer.text
    presigned = answer.headers["location"]
    assert urlsplit(presigned).netloc != urlsplit(gateway.base_url).netloc
    assert "X-Amz-Signature=" in presigned
    fetched = httpx.get(presigned)
    assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")
    tampered = presigned.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered).status_code == 403  # the store checks signatures for real


def test_a_configured_signing_key_is_shared_without_a_common_database(tmp_path: Path) -> None:
    """IMAGEGATE_SIGNING_KEY: replicas agree on links even with nothing else in common."""
    first = start_gateway(tmp_path / "a", signing_key="one key for every replica")
    second = start_gateway(tmp_path / "b", signing_key="one key for every replica")
    other = start_gateway(tmp_path / "c")
    try:
        link = first.core.signer.path("outputs/x/0.png", 4_000_000_000)
        assert second.core.signer.parse(second.base_url + link) is not None
        assert other.core.signer.parse(other.base_url + link) is None
    finally:
        for gw in (other, second, first):
            gw.close()
