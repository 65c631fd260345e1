"""Outputs past retention are deleted; the task stays completed and its links answer 410.

The gateway's clock is moved past the retention and one sweep is run, instead of waiting.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import T2I_15, Gateway, png_bytes, start_gateway
from tests.profiles import Profile, stored_keys

pytestmark = pytest.mark.scale  # both profiles: tests/profiles.py

HOUR = 3600


@pytest.fixture
def gw(tmp_path: Path, profile: Profile) -> Iterator[Gateway]:
    # A sweeper interval far beyond the test: only the test's own sweeps run.
    gateway = start_gateway(
        tmp_path, output_retention_s=24 * HOUR, upload_retention_s=HOUR, sweep_interval_s=HOUR
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
    assert gone.json()["error"]["code"] == "gone"
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
