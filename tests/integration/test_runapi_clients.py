"""What RunAPI's clients rely on, over raw HTTP: account e-mail, canceled tasks on the
service routes, task usage, and the prepare/PUT/confirm upload flow's refusals."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import T2I_15, Gateway, png_bytes, start_gateway
from tests.integration.test_admin_cli import cli_json
from tests.profiles import Profile


@pytest.fixture(scope="module")
def gw(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("runapi-clients"), free_calls_per_variant=0)
    yield gateway
    gateway.close()


def test_email_set_by_admin_shows_on_me(gw: Gateway) -> None:
    admin = gw.admin()
    made = admin.post("/admin/accounts", json={"name": "mailed", "email": " ops@example.test "})
    assert made.status_code == 201 and made.json()["email"] == "ops@example.test"
    key = admin.post("/admin/accounts/mailed/keys", json={}).json()["key"]
    assert gw.client(key).get("/api/v1/me").json()["email"] == "ops@example.test"
    assert admin.patch("/admin/accounts/mailed", json={"email": None}).json()["email"] is None
    assert gw.client(key).get("/api/v1/me").json()["email"] is None
    bad = admin.patch("/admin/accounts/mailed", json={"email": "not an address"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "email"
    assert admin.patch("/admin/accounts/mailed", json={}).status_code == 400


def test_cli_sets_and_changes_email(tmp_path: Path) -> None:
    made = cli_json(tmp_path, "accounts", "create", "cli-mail", "--email", "a@example.test", "--json")
    assert made["email"] == "a@example.test"
    changed = cli_json(tmp_path, "accounts", "update", "cli-mail", "--email", "b@example.test")
    assert changed["email"] == "b@example.test"
    assert cli_json(tmp_path, "accounts", "update", "cli-mail", "--email", "")["email"] is None


def _wait_until(client: httpx.Client, task_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (body := client.get(f"/api/v1/tasks/{task_id}").json())["status"] != status:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def test_canceled_reads_failed_on_service_routes_only(gw: Gateway) -> None:
    user = gw.user()
    headers = {"Idempotency-Key": "cancel-me"}
    body = {**T2I_15, "prompt": "[stall:60] waiting"}
    task_id = user.post("/api/v1/gpt_image/text_to_image", json=body, headers=headers).json()["id"]
    _wait_until(user, task_id, "processing")
    assert user.post(f"/api/v1/tasks/{task_id}/cancel").json()["status"] == "canceled"
    own = user.get(f"/api/v1/tasks/{task_id}").json()
    assert (own["status"], own["error_code"]) == ("canceled", None)
    for path in (f"/api/v1/gpt_image/text_to_image/{task_id}", f"/api/v1/gpt_image/{task_id}"):
        seen = user.get(path).json()
        assert (seen["status"], seen["error_code"]) == ("failed", "canceled"), path
        assert seen["error"] == "The task was canceled." and seen["billing"]["refund"] is not None
    replay = user.post("/api/v1/gpt_image/text_to_image", json=body, headers=headers).json()
    assert (replay["id"], replay["status"], replay["task_replayed"]) == (task_id, "failed", True)
    assert [t["status"] for t in user.get("/api/v1/tasks").json()["data"]] == ["canceled"]


def test_usage_on_completed_tasks_only(gw: Gateway) -> None:
    user = gw.user()
    done = gw.wait(user, user.post("/api/v1/gpt_image/text_to_image", json=T2I_15).json()["id"])
    assert done["usage"]["cost_micro"] == done["billing"]["settlement"]["amount_micro"] > 0
    assert done["usage"]["cost"] == done["usage"]["cost_micro"] / 1_000_000
    assert done["usage"]["generated_images"] == len(done["images"]) == 1
    failed = gw.wait(
        user, user.post("/api/v1/gpt_image/text_to_image", json={**T2I_15, "prompt": "[fail]"}).json()["id"]
    )
    assert failed["status"] == "failed" and failed["usage"] is None


def _prepare(client: httpx.Client, data: bytes, **over: Any) -> dict[str, Any]:
    checksum = base64.b64encode(hashlib.md5(data).digest()).decode()
    body = {"filename": "in.png", "byte_size": len(data), "checksum": checksum, **over}
    answer = client.post("/api/v1/files/prepare", json=body)
    assert answer.status_code == 200, answer.text
    prepared: dict[str, Any] = answer.json()
    return prepared


def test_direct_upload_refusals(gw: Gateway) -> None:
    user, other = gw.user(), gw.user()
    data = png_bytes(20, 20)
    prepared = _prepare(user, data)
    put = lambda body, url=prepared["upload_url"]: httpx.put(url, content=body, headers=prepared["headers"])  # noqa: E731
    early = user.post("/api/v1/files/confirm", json={"signed_id": prepared["signed_id"]})
    assert early.status_code == 409
    assert put(data[:-1]).status_code == 400  # fewer bytes than prepared
    assert put(data + b"x").status_code == 413
    assert put(bytes(reversed(data))).json()["error"]["param"] == "checksum"
    tampered = prepared["upload_url"][:-3] + "abc"
    assert put(data, tampered).status_code == 404
    assert put(data).status_code == 204
    assert put(data).status_code == 409  # single use
    assert other.post("/api/v1/files/confirm", json={"signed_id": prepared["signed_id"]}).status_code == 404
    confirmed = user.post("/api/v1/files/confirm", json={"signed_id": prepared["signed_id"]}).json()
    assert httpx.get(confirmed["url"], follow_redirects=True).content == data
    assert confirmed["id"] not in [f["id"] for f in other.get("/v1/files").json()["data"]]
    assert confirmed["id"] in [f["id"] for f in user.get("/v1/files").json()["data"]]
    too_big = user.post("/api/v1/files/prepare", json={"filename": "a", "byte_size": 10**9, "checksum": "x"})
    assert too_big.status_code == 413
    late = _prepare(user, data)
    gw.clock.advance(901)
    assert httpx.put(late["upload_url"], content=data, headers=late["headers"]).status_code == 410
