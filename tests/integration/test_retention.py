"""Outputs past retention are deleted; the task stays completed and its links answer 410."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import T2I_15, Gateway, png_bytes, start_gateway


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path, output_retention_s=1, upload_retention_s=1, sweep_interval_s=0.2)
    yield gw
    gw.close()


def test_expired_outputs_are_deleted_and_answer_410(short_lived: Gateway) -> None:
    client = short_lived.user()
    task = short_lived.wait(client, client.post("/api/v1/gpt_image/text_to_image", json=T2I_15).json()["id"])
    url = task["images"][0]["url"]
    assert short_lived.client().get(url).status_code == 200
    stored = list((short_lived.settings.data_dir / "files" / "outputs" / task["id"]).iterdir())
    assert stored, "the output was stored on disk"

    deadline = time.monotonic() + 10
    while any(path.exists() for path in stored) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(path.exists() for path in stored), "the sweeper deleted the expired output"

    gone = short_lived.client().get(url)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "gone"
    after = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert after["status"] == "completed"  # terminal statuses never change
    assert after["outputs_deleted"] is True


def test_expired_uploads_are_deleted(short_lived: Gateway) -> None:
    client = short_lived.user()

    data = base64.b64encode(png_bytes()).decode()
    upload = client.post("/api/v1/files", json={"source": {"type": "base64", "data": data}})
    assert upload.status_code == 200, upload.text
    inputs = short_lived.settings.data_dir / "files" / "inputs"
    assert any(inputs.iterdir())
    deadline = time.monotonic() + 10
    while any(inputs.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(inputs.iterdir()), "the expired upload's bytes are gone"
    assert short_lived.client().get(upload.json()["url"]).status_code == 410
