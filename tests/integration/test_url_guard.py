"""User URLs at the HTTP edge: refused addresses and unparsable URLs are a 400 at creation,
before any hold or task exists; redirects to what we do not fetch fail the task cleanly."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import T2I_15, Gateway, ImageHost, png_bytes

T2I_URL = "/api/v1/gpt_image/text_to_image"
EDIT_URL = "/api/v1/gpt_image/edit_image"

REFUSED_LITERALS = [
    "http://10.0.0.1/x.png",
    "http://[::1]/",
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:10.0.0.1]/x.png",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the metadata address
    "http://[2002:a00:1::]/x.png",  # 6to4 of 10.0.0.1
    "http://[fec0::1]/",
    "http://0xa.0.0.1/x.png",  # 10.0.0.1 spelled the way resolvers still accept
]

UNPARSABLE = [
    "http://[::1/x.png",
    "http://images.example:99999/x.png",
    "http://images.example:abc/x.png",
    "http:///x.png",
    "gopher://images.example/x.png",
    "file:///etc/passwd",
]


def edit_body(urls: list[str]) -> dict[str, Any]:
    return {**T2I_15, "prompt": "make it a postcard", "source_image_urls": urls}


def state(client: httpx.Client) -> tuple[list[str], int, int]:
    """What a refused creation must leave untouched: the task list, the balance, the holds."""
    tasks = [t["id"] for t in client.get("/api/v1/tasks", params={"limit": 100}).json()["data"]]
    balance = client.get("/api/v1/me/balance").json()
    return tasks, balance["balance_micro"], balance["held_micro"]


def assert_400(response: httpx.Response, param: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation"
    assert error["param"] == param
    return str(error["message"])


@pytest.mark.parametrize("url", REFUSED_LITERALS)
def test_refused_source_address_is_a_400_before_anything_exists(
    gateway: Gateway, image_host: ImageHost, url: str
) -> None:
    client = gateway.user()
    good = image_host.serve(f"/{uuid.uuid4().hex}.png", png_bytes(16, 16))
    before = state(client)
    message = assert_400(client.post(EDIT_URL, json=edit_body([good, url])), "source_image_urls[1]")
    assert "private or reserved address" in message
    assert state(client) == before


@pytest.mark.parametrize("url", UNPARSABLE)
def test_unparsable_source_url_is_a_400(gateway: Gateway, url: str) -> None:
    client = gateway.user()
    before = state(client)
    response = client.post(EDIT_URL, json=edit_body([url]))
    assert_400(response, "source_image_urls")  # the contract names the field
    assert "source_image_urls[0]" in response.json()["error"]["message"]
    assert state(client) == before


@pytest.mark.parametrize("url", [*REFUSED_LITERALS, *UNPARSABLE])
def test_callback_url_is_checked_at_creation(gateway: Gateway, url: str) -> None:
    client = gateway.user()
    before = state(client)
    assert_400(client.post(T2I_URL, json={**T2I_15, "callback_url": url}), "callback_url")
    assert state(client) == before


def test_allowed_and_public_callback_urls_are_taken(gateway: Gateway) -> None:
    client = gateway.user()
    for url in ("http://127.0.0.1:9/hook", "https://hooks.example.com/imagegate?k=1"):  # 127.0.0.1 allowed
        response = client.post(T2I_URL, json={**T2I_15, "callback_url": url})
        assert response.status_code == 200, response.text
        assert gateway.wait(client, response.json()["id"])["status"] == "completed"


@pytest.mark.parametrize("url", [*REFUSED_LITERALS, *UNPARSABLE])
def test_files_source_url_is_checked(gateway: Gateway, url: str) -> None:
    response = gateway.user().post("/api/v1/files", json={"source": {"type": "url", "url": url}})
    assert_400(response, "source.url")


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "gopher://127.0.0.1:70/_stats", "http://[::1", "http://127.0.0.1:99999/"],
)
def test_redirect_to_what_we_do_not_fetch_fails_the_task_cleanly(
    gateway: Gateway, image_host: ImageHost, location: str
) -> None:
    client = gateway.user()
    start = image_host.redirect(f"/{uuid.uuid4().hex}", location)
    created = client.post(EDIT_URL, json=edit_body([start]))
    assert created.status_code == 200, created.text
    task = gateway.wait(client, created.json()["id"])
    assert task["status"] == "failed"
    assert task["error_code"] == "validation"
    assert "source_image_urls[0]" in task["error"]
    assert "redirect" in task["error"]
    files = client.post("/api/v1/files", json={"source": {"type": "url", "url": start}})
    assert "redirect" in assert_400(files, "source.url")
