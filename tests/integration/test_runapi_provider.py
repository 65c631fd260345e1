"""The `runapi` provider: a front gateway whose upstream is a second imagegate on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Gateway, png_bytes, start_gateway
from tests.profiles import Profile

KEY_ENV = "IMAGEGATE_TEST_RUNAPI_KEY"
T2I = {"model": "gpt-image-2", "prompt": "a red fox", "aspect_ratio": "1:1"}


@pytest.fixture(scope="module")
def pair(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Gateway]]:
    upstream = start_gateway(tmp_path_factory.mktemp("upstream"), default_provider="fake")
    os.environ[KEY_ENV] = upstream.new_account()[1]  # a key made on the upstream, named by the front
    front = start_gateway(
        tmp_path_factory.mktemp("front"),
        providers=[
            {
                "name": "upstream",
                "kind": "runapi",
                "api_key_env": KEY_ENV,
                "base_url": upstream.base_url,
                "poll_interval_s": 0.05,
                "retry_base_s": 0.01,
                "retry_cap_s": 0.2,
            }
        ],
        default_provider="upstream",
        max_attempts=1,
        free_calls_per_variant=0,
    )
    yield front, upstream
    front.close()
    upstream.close()
    del os.environ[KEY_ENV]


def run(front: Gateway, body: dict[str, Any], action: str = "text_to_image") -> dict[str, Any]:
    client = front.user()
    before = client.get("/api/v1/me/balance").json()["balance_micro"]
    response = client.post(f"/api/v1/gpt_image_2/{action}", json=body)
    assert response.status_code == 200, response.text
    task = front.wait(client, response.json()["id"])
    after = client.get("/api/v1/me/balance").json()
    assert after["held_micro"] == 0
    task["charged"] = before - after["balance_micro"]
    task["stored"] = [client.get(image["url"]).content for image in task["images"]]
    return task


def upstream_outputs(upstream: Gateway) -> list[bytes]:
    client = upstream.client(os.environ[KEY_ENV])
    latest = client.get("/api/v1/tasks", params={"limit": 1}).json()["data"][0]
    return [client.get(image["url"]).content for image in latest["images"]]


def test_generate_through_the_upstream_gateway(pair: tuple[Gateway, Gateway]) -> None:
    front, upstream = pair
    task = run(front, T2I)
    assert task["status"] == "completed", task
    assert task["provider"] == "upstream"
    assert task["charged"] > 0
    assert task["stored"] == upstream_outputs(upstream)  # the upstream's bytes, exactly
    assert task["stored"][0].startswith(b"\x89PNG")


def test_edit_sends_the_sources(pair: tuple[Gateway, Gateway], image_host: Any) -> None:
    front, upstream = pair
    url = image_host.serve("/runapi-source.png", png_bytes(48, 48, (200, 10, 10)))
    task = run(front, {**T2I, "prompt": "make it blue", "source_image_urls": [url]}, "edit_image")
    assert task["status"] == "completed", task
    assert task["stored"] == upstream_outputs(upstream)


@pytest.mark.parametrize(
    ("marker", "code"), [("[fail:content_policy]", "content_policy"), ("[fail]", "upstream_error")]
)
def test_upstream_failures_are_mapped_and_free(pair: tuple[Gateway, Gateway], marker: str, code: str) -> None:
    front, _ = pair
    task = run(front, {**T2I, "prompt": f"a fox {marker}"})
    assert task["status"] == "failed"
    assert task["error_code"] == code
    assert task["error"] == "fake provider failed on request"  # the upstream's message
    assert task["charged"] == 0  # the hold was released


def test_a_bad_key_is_upstream_auth(pair: tuple[Gateway, Gateway], tmp_path: Any) -> None:
    os.environ["IMAGEGATE_TEST_RUNAPI_BAD"] = "ig_not_a_key"
    front = start_gateway(
        tmp_path,
        providers=[
            {
                "name": "up",
                "kind": "runapi",
                "api_key_env": "IMAGEGATE_TEST_RUNAPI_BAD",
                "base_url": pair[1].base_url,
            }
        ],
        default_provider="up",
        free_calls_per_variant=0,
    )
    try:
        task = run(front, T2I)
    finally:
        front.close()
        del os.environ["IMAGEGATE_TEST_RUNAPI_BAD"]
    assert task["status"] == "failed"
    assert task["error_code"] == "upstream_auth"
    assert "ig_not_a_key" not in task["error"]
    assert task["charged"] == 0
