"""The RunAPI face over real HTTP: create, read, list, cancel, edit sources, headers."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat

from tests.conftest import T2I_15, Gateway, ImageHost, png_bytes, start_gateway
from tests.profiles import Profile

T2I_2 = {"model": "gpt-image-2", "prompt": "a red fox"}
# The test gateway judges lifecycles as of 2026-11-25 (conftest), before gpt-image-1.5 retires.
SERVED_15 = "gpt-image-1.5"
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)


def create(client: httpx.Client, service: str, body: dict[str, Any], action: str = "text_to_image") -> str:
    response = client.post(f"/api/v1/{service}/{action}", json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["status"] == "pending"
    return str(created["id"])


def download(gateway: Gateway, url: str) -> bytes:
    """Fetch a signed link with a client that carries no key at all."""
    response = httpx.get(url, timeout=30, follow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def assert_downloads_as_reported(gateway: Gateway, task: dict[str, Any]) -> None:
    assert task["status"] == "completed", task
    assert len(task["images"]) == 1
    image = task["images"][0]
    assert image["content_type"] == "image/png"
    assert png_size(download(gateway, image["url"])) == (image["width"], image["height"])


# ---------------------------------------------------------------- creating on each service


@pytest.mark.parametrize(
    ("service", "body", "size"),
    [
        ("gpt_image", T2I_15, (1024, 1024)),
        (
            "gpt_image",
            {**T2I_15, "model": "gpt-image-1.5-text-to-image", "aspect_ratio": "3:2"},
            (1536, 1024),
        ),
        (
            "gpt_image_2",
            {**T2I_2, "aspect_ratio": "16:9", "output_resolution": "2k"},
            (2048, 1152),
        ),
        ("gpt_image_2_5", {"model": "gpt-image-2.5-flare", "prompt": "a lighthouse"}, (1024, 1024)),
    ],
    ids=["gpt-image-1.5", "seed-alias", "gpt-image-2-16x9-2k", "gpt-image-2.5-flare"],
)
def test_text_to_image_on_each_service(
    gateway: Gateway, service: str, body: dict[str, Any], size: tuple[int, int]
) -> None:
    client = gateway.user()
    task = gateway.wait(client, create(client, service, body))
    assert task["service"] == service
    assert task["action"] == "text_to_image"
    assert (task["images"][0]["width"], task["images"][0]["height"]) == size
    assert_downloads_as_reported(gateway, task)


def test_alias_is_recorded_under_the_canonical_model(gateway: Gateway) -> None:
    client = gateway.user()
    response = client.post(
        "/api/v1/gpt_image/text_to_image", json={**T2I_15, "model": "gpt-image-1.5-text-to-image"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gpt-image-1.5"
    assert response.json()["model_served"] == SERVED_15


def test_task_fields_and_three_read_routes_agree(gateway: Gateway) -> None:
    client = gateway.user()
    task_id = create(client, "gpt_image_2", {**T2I_2, "aspect_ratio": "1:1"})
    task = gateway.wait(client, task_id)
    assert task["id"] == task_id
    assert task["object"] == "task"
    assert task["model"] == task["model_served"] == "gpt-image-2"
    assert task["variant"] == "gpt-image-2-text-to-image"
    assert task["provider"] == "fake"
    assert task["error"] is None and task["error_code"] is None
    created, started, completed = (parse_time(task[k]) for k in ("created_at", "started_at", "completed_at"))
    assert created <= started <= completed
    assert parse_time(task["outputs_expire_at"]) > completed
    assert task["outputs_deleted"] is False

    routes = [
        f"/api/v1/gpt_image_2/text_to_image/{task_id}",
        f"/api/v1/gpt_image_2/{task_id}",
        f"/api/v1/tasks/{task_id}",
    ]
    for route in routes:
        response = client.get(route)
        assert response.status_code == 200, (route, response.text)
        assert response.headers["X-Imagegate-Task-Id"] == task_id
        assert response.headers["X-RunAPI-Task-Id"] == task_id
        body = response.json()
        # links are re-signed per response but point at the same file
        for image in body["images"]:
            image["url"] = image["url"].split("?")[0]
        expected = {**task, "images": [{**i, "url": i["url"].split("?")[0]} for i in task["images"]]}
        assert body == expected, route


@pytest.mark.parametrize(
    "route",
    [
        "/api/v1/gpt_image/text_to_image/{id}",
        "/api/v1/gpt_image/{id}",
        "/api/v1/gpt_image_2/nonsense_action/{id}",
    ],
)
def test_read_under_the_wrong_service_or_action_is_404(gateway: Gateway, route: str) -> None:
    client = gateway.user()
    task_id = create(client, "gpt_image_2", T2I_2)
    response = client.get(route.format(id=task_id))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


# ---------------------------------------------------------------- failures and cancel


def test_failing_provider_marks_the_task_failed(gateway: Gateway) -> None:
    client = gateway.user()
    task = gateway.wait(client, create(client, "gpt_image", {**T2I_15, "prompt": "a cat [fail]"}))
    assert task["status"] == "failed"
    assert task["error"]
    assert task["error_code"] == "upstream_error"
    assert task["images"] == []
    assert task["completed_at"] is not None


def test_fail_marker_code_is_reported(gateway: Gateway) -> None:
    client = gateway.user()
    body = {**T2I_15, "prompt": "a cat [fail:moderation_blocked]"}
    task = gateway.wait(client, create(client, "gpt_image", body))
    assert task["status"] == "failed"
    assert task["error_code"] == "moderation_blocked"


def test_cancel_a_running_task(tmp_path: Path) -> None:
    # A gateway of its own: drain() waits for every task queued, the shared one holds others' stalls.
    gateway = start_gateway(tmp_path)
    try:
        _cancel_a_running_task(gateway)
    finally:
        gateway.close()


def _cancel_a_running_task(gateway: Gateway) -> None:
    client = gateway.user()
    task_id = create(client, "gpt_image", {**T2I_15, "prompt": "a slow cat [stall:60]"})
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/tasks/{task_id}").json()["status"] != "processing":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)

    canceled = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["images"] == []
    assert canceled.json()["billing"]["refund"] is not None

    # The worker stops the provider call and has nothing left to run: it must not revive it.
    gateway.drain()
    task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "canceled"
    assert task["images"] == []
    assert task["completed_at"] is not None

    again = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "conflict"


def test_cancel_of_a_completed_task_conflicts(gateway: Gateway) -> None:
    client = gateway.user()
    task = gateway.wait(client, create(client, "gpt_image_2", T2I_2))
    assert task["status"] == "completed"
    response = client.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "completed"


# ---------------------------------------------------------------- listing


def test_list_pages_newest_first_and_filters(gateway: Gateway) -> None:
    client = gateway.user()
    other = gateway.user()
    other_id = create(other, "gpt_image_2", {**T2I_2, "prompt": "x [fail]"})
    bodies = [
        {**T2I_2, "prompt": "one [fail]"},
        {**T2I_2, "prompt": "two"},
        {**T2I_2, "prompt": "three [fail]"},
        {**T2I_2, "prompt": "four [fail]"},
        {**T2I_2, "prompt": "five"},
    ]
    ids = [create(client, "gpt_image_2", body) for body in bodies]
    for task_id in ids:
        gateway.wait(client, task_id)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["after"] = cursor
        response = client.get("/api/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 2
        seen.extend(t["id"] for t in page["data"])
        pages += 1
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
        assert cursor
        assert pages < 10
    assert seen == list(reversed(ids))  # newest first, each exactly once
    assert pages == 3
    assert other_id not in seen

    failed = client.get("/api/v1/tasks", params={"status": "failed"}).json()
    assert [t["id"] for t in failed["data"]] == [ids[3], ids[2], ids[0]]
    assert all(t["status"] == "failed" for t in failed["data"])
    completed = client.get("/api/v1/tasks", params={"status": "completed"}).json()
    assert [t["id"] for t in completed["data"]] == [ids[4], ids[1]]

    theirs = other.get("/api/v1/tasks").json()
    assert [t["id"] for t in theirs["data"]] == [other_id]


# ---------------------------------------------------------------- isolation between accounts


def test_another_accounts_task_is_not_found(gateway: Gateway) -> None:
    owner = gateway.user()
    stranger = gateway.user()
    task_id = create(owner, "gpt_image", {**T2I_15, "prompt": "private [stall:0.3]"})
    for route in (
        f"/api/v1/gpt_image/text_to_image/{task_id}",
        f"/api/v1/gpt_image/{task_id}",
        f"/api/v1/tasks/{task_id}",
    ):
        response = stranger.get(route)
        assert response.status_code == 404, route
        assert response.json()["error"]["code"] == "not_found"
    cancel = stranger.post(f"/api/v1/tasks/{task_id}/cancel")
    assert cancel.status_code == 404
    assert cancel.json()["error"]["code"] == "not_found"
    # the stranger's cancel did nothing to the owner's task
    assert gateway.wait(owner, task_id)["status"] == "completed"


# ---------------------------------------------------------------- edits and their sources


def edit_body(urls: list[str], prompt: str = "make it look like an old postcard") -> dict[str, Any]:
    return {
        "model": "gpt-image-1.5",
        "prompt": prompt,
        "aspect_ratio": "1:1",
        "quality": "medium",
        "source_image_urls": urls,
    }


def mean_rgb(data: bytes) -> tuple[float, float, float]:
    r, g, b = ImageStat.Stat(Image.open(io.BytesIO(data)).convert("RGB")).mean[:3]
    return r, g, b


def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5)


def test_edit_output_derives_from_the_source(gateway: Gateway) -> None:
    client = gateway.user()
    blue_id = create(client, "gpt_image", edit_body([data_url(png_bytes(64, 64, BLUE))]), "edit_image")
    yellow_id = create(client, "gpt_image", edit_body([data_url(png_bytes(64, 64, YELLOW))]), "edit_image")
    blue, yellow = gateway.wait(client, blue_id), gateway.wait(client, yellow_id)
    assert blue["action"] == yellow["action"] == "edit_image"
    assert blue["variant"] == "gpt-image-1.5-image-to-image"
    assert_downloads_as_reported(gateway, blue)
    assert_downloads_as_reported(gateway, yellow)
    blue_mean = mean_rgb(download(gateway, blue["images"][0]["url"]))
    yellow_mean = mean_rgb(download(gateway, yellow["images"][0]["url"]))
    assert distance(blue_mean, BLUE) < distance(yellow_mean, BLUE)
    assert distance(yellow_mean, YELLOW) < distance(blue_mean, YELLOW)


def test_edit_from_an_image_host_url_and_two_sources(gateway: Gateway, image_host: ImageHost) -> None:
    client = gateway.user()
    name = uuid.uuid4().hex
    first = image_host.serve(f"/{name}-a.png", png_bytes(48, 48, BLUE))
    second = data_url(png_bytes(32, 32, YELLOW))
    one = gateway.wait(client, create(client, "gpt_image", edit_body([first]), "edit_image"))
    assert_downloads_as_reported(gateway, one)
    two = gateway.wait(client, create(client, "gpt_image", edit_body([first, second]), "edit_image"))
    assert_downloads_as_reported(gateway, two)


@pytest.fixture(scope="module")
def closed_gateway(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose fetcher may reach no private address at all (no allow-list)."""
    gw = start_gateway(tmp_path_factory.mktemp("closed-gateway"), fetch_allow_hosts=[])
    yield gw
    gw.close()


def test_own_links_are_read_from_storage_not_fetched(closed_gateway: Gateway, image_host: ImageHost) -> None:
    gw = closed_gateway
    client = gw.user()

    # a loopback URL is refused by this gateway's guard (at creation: the address is literal)...
    foreign = image_host.serve(f"/{uuid.uuid4().hex}.png", png_bytes(32, 32, BLUE))
    refused = client.post("/api/v1/gpt_image/edit_image", json=edit_body([foreign]))
    assert refused.status_code == 400
    assert "private or reserved address" in refused.json()["error"]["message"]

    # ...yet its own output link (also on 127.0.0.1) works, because it is read from storage
    output = gw.wait(client, create(client, "gpt_image", T2I_15))
    assert output["status"] == "completed"
    own_url = output["images"][0]["url"]
    assert own_url.startswith("http://127.0.0.1:")
    edited = gw.wait(client, create(client, "gpt_image", edit_body([own_url]), "edit_image"))
    assert_downloads_as_reported(gw, edited)

    # ...and so does a /api/v1/files upload link
    upload = client.post(
        "/api/v1/files",
        json={"source": {"type": "base64", "data": base64.b64encode(png_bytes(40, 40, YELLOW)).decode()}},
    )
    assert upload.status_code == 200, upload.text
    upload_url = upload.json()["url"]
    assert upload_url.startswith("http://127.0.0.1:")
    edited = gw.wait(client, create(client, "gpt_image", edit_body([upload_url]), "edit_image"))
    assert_downloads_as_reported(gw, edited)
    # the upload outlives the task that used it (it lives for its hour)
    assert download(gw, upload_url) == png_bytes(40, 40, YELLOW)


# ---------------------------------------------------------------- headers


def test_client_request_id_is_echoed_and_stored(gateway: Gateway) -> None:
    client = gateway.user()
    crid = f"order-{uuid.uuid4().hex}"
    response = client.post(
        "/api/v1/gpt_image/text_to_image", json=T2I_15, headers={"X-Client-Request-Id": crid}
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Client-Request-Id"] == crid
    task_id = response.json()["id"]
    read = client.get(f"/api/v1/tasks/{task_id}")
    assert read.json()["client_request_id"] == crid
    assert read.headers["X-Client-Request-Id"] == crid


@pytest.mark.parametrize(
    "value", ["bad\tid", "x" * 513, b"caf\xc3\xa9"], ids=["tab", "513-chars", "non-ascii"]
)
def test_bad_client_request_id_is_refused(gateway: Gateway, value: str | bytes) -> None:
    client = gateway.user()
    response = client.post(
        "/api/v1/gpt_image/text_to_image", json=T2I_15, headers={"X-Client-Request-Id": value}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation"
    assert error["param"] == "X-Client-Request-Id"
    assert client.get("/api/v1/tasks").json()["data"] == []  # no task was made


def test_client_request_id_of_512_chars_is_accepted(gateway: Gateway) -> None:
    client = gateway.user()
    crid = "y" * 512
    response = client.post(
        "/api/v1/gpt_image/text_to_image", json=T2I_15, headers={"X-Client-Request-Id": crid}
    )
    assert response.status_code == 200, response.text
    assert client.get(f"/api/v1/tasks/{response.json()['id']}").json()["client_request_id"] == crid


def test_deprecated_model_carries_deprecation_headers(gateway: Gateway) -> None:
    client = gateway.user()
    created = client.post("/api/v1/gpt_image/text_to_image", json=T2I_15)
    read = client.get(f"/api/v1/tasks/{created.json()['id']}")
    for response in (created, read):
        assert response.status_code == 200
        assert response.headers.get("Deprecation")
        assert response.headers["Sunset"] == "Tue, 01 Dec 2026 00:00:00 GMT"
        link = response.headers["Link"]
        assert "/models/gpt-image-2.md>" in link
        assert 'rel="successor-version"' in link


def test_current_model_has_no_deprecation_headers(gateway: Gateway) -> None:
    client = gateway.user()
    created = client.post("/api/v1/gpt_image_2/text_to_image", json=T2I_2)
    read = client.get(f"/api/v1/tasks/{created.json()['id']}")
    for response in (created, read):
        assert response.status_code == 200
        for header in ("Deprecation", "Sunset", "Link"):
            assert header not in response.headers


def test_me_describes_the_account_and_key(gateway: Gateway) -> None:
    name = f"me-{uuid.uuid4().hex[:8]}"
    account_id, key = gateway.new_account(name)
    response = gateway.client(key).get("/api/v1/me")
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == account_id
    assert me["name"] == name
    prefix = me["api_key"]["prefix"]
    assert 3 < len(prefix) < len(key)
    assert key.startswith(prefix)
    assert key not in response.text  # the secret itself is never shown again


def test_x_api_key_header_also_authenticates(gateway: Gateway) -> None:
    account_id, key = gateway.new_account()
    response = gateway.client().get("/api/v1/me", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == account_id


def test_request_id_on_every_response_and_unique(gateway: Gateway) -> None:
    client = gateway.user()
    ok_one = client.get("/api/v1/me")
    ok_two = client.get("/api/v1/me")
    error = client.get(f"/api/v1/tasks/{uuid.uuid4()}")
    anonymous = gateway.client().get("/api/v1/me")
    assert (ok_one.status_code, ok_two.status_code, error.status_code, anonymous.status_code) == (
        200,
        200,
        404,
        401,
    )
    ids = [r.headers.get("X-Request-Id") for r in (ok_one, ok_two, error, anonymous)]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)
