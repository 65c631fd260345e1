"""Outputs past retention are deleted; the task stays completed and its links answer 410.

The gateway's clock is moved past the retention and one sweep is run, instead of waiting.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx_sse import connect_sse
from openai import OpenAI

from imagegate.tasks import recovery
from tests.conftest import T2I_15, Gateway, png_bytes, start_gateway
from tests.profiles import Profile, stored_keys

HOUR = 3600


@pytest.fixture
def gw(tmp_path: Path, profile: Profile) -> Iterator[Gateway]:
    # A sweeper interval far beyond the test: only the test's own sweeps run.
    gateway = start_gateway(
        tmp_path,
        output_retention_s=24 * HOUR,
        upload_retention_s=HOUR,
        partial_retention_s=2 * HOUR,
        sweep_interval_s=HOUR,
    )
    yield gateway
    gateway.close()


def test_expired_outputs_are_deleted_and_answer_410(gw: Gateway) -> None:
    client = gw.user()
    task = gw.wait(client, client.post("/api/v1/gpt_image/text_to_image", json=T2I_15).json()["id"])
    url = task["images"][0]["url"]
    assert gw.client().get(url).status_code == 200
    outputs = f"outputs/{task['id']}"
    stored = stored_keys(gw.settings.data_dir, outputs)
    assert stored, "the output was stored"

    gw.clock.advance(23 * HOUR)
    assert gw.sweep() == 0
    assert stored_keys(gw.settings.data_dir, outputs) == stored, "kept within its retention"
    assert gw.client().get(url).status_code == 200

    gw.clock.advance(HOUR + 1)
    assert gw.sweep() == 1
    assert not stored_keys(gw.settings.data_dir, outputs), "the sweeper deleted the expired output"
    gone = gw.client().get(url)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "expired"
    after = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert after["status"] == "completed"  # terminal statuses never change
    assert after["outputs_deleted"] is True


def test_expired_uploads_are_deleted(gw: Gateway) -> None:
    client = gw.user()
    data = base64.b64encode(png_bytes()).decode()
    upload = client.post("/api/v1/files", json={"source": {"type": "base64", "data": data}})
    assert upload.status_code == 200, upload.text
    assert stored_keys(gw.settings.data_dir, "inputs")
    gw.clock.advance(HOUR - 60)
    assert gw.sweep() == 0 and stored_keys(gw.settings.data_dir, "inputs")
    gw.clock.advance(61)
    assert gw.sweep() == 1
    assert not stored_keys(gw.settings.data_dir, "inputs"), "the expired upload's bytes are gone"
    assert gw.client().get(upload.json()["url"]).status_code == 410


def test_partial_images_expire_after_their_own_retention(gw: Gateway) -> None:
    key = gw.new_account()[1]
    with OpenAI(base_url=f"{gw.base_url}/v1", api_key=key) as sdk:
        stream = sdk.images.generate(
            model="gpt-image-2.6-flare", prompt="a kite", size="256x256", stream=True, partial_images=2
        )
        with stream:
            assert len(list(stream)) == 3
            task_id = stream.response.headers["X-Imagegate-Task-Id"]
    client = gw.client(key)
    with connect_sse(client, "GET", f"/api/v1/tasks/{task_id}/events") as source:
        partials = [json.loads(e.data) for e in source.iter_sse() if e.event == "partial_image"]
    assert [(p["index"], p["partial_index"]) for p in partials] == [(0, 0), (0, 1)]
    assert all(gw.client().get(p["url"]).status_code == 200 for p in partials)
    assert client.get("/v1/files").json()["data"] == [], "previews are not the account's uploads"
    output = client.get(f"/api/v1/tasks/{task_id}").json()["images"][0]["url"]

    gw.clock.advance(2 * HOUR + 1)
    assert gw.sweep() == 2, "the two previews, not the output"
    for partial in partials:
        gone = gw.client().get(partial["url"])
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "expired"
    assert gw.client().get(output).status_code == 200


def test_sweepers_racing_delete_each_thing_once(gw: Gateway) -> None:
    client = gw.user()
    ids = [client.post("/api/v1/gpt_image/text_to_image", json=T2I_15).json()["id"] for _ in range(3)]
    gw.drain()
    urls = [client.get(f"/api/v1/tasks/{i}").json()["images"][0]["url"] for i in ids]
    gw.clock.advance(24 * HOUR + 1)

    async def race(core: Any, _: Any) -> list[int]:
        return list(await asyncio.gather(*(recovery.sweep_expired(core) for _ in range(3))))

    counts = gw.thread.call(race)
    assert sum(counts) == 3, counts  # each output counted by exactly one sweeper
    assert all(gw.client().get(url).status_code == 410 for url in urls)
    assert all(client.get(f"/api/v1/tasks/{i}").json()["outputs_deleted"] for i in ids)
