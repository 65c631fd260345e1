"""A gateway whose default provider is ``instant``: tasks complete with the shared PNG, billed as usual."""

from __future__ import annotations

from pathlib import Path

import httpx

from imagegate.providers.testing import make_instant_png
from tests.conftest import T2I_15, start_gateway


def test_a_task_completes_with_the_instant_png(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, default_provider="instant")
    try:
        client = gateway.user()
        created = client.post("/api/v1/gpt_image/text_to_image", json=T2I_15)
        assert created.status_code == 200, created.text
        task = gateway.wait(client, created.json()["id"])
        assert task["status"] == "completed", task
        assert task["provider"] == "instant"
        [image] = task["images"]
        assert (image["width"], image["height"], image["content_type"]) == (1024, 1024, "image/png")
        downloaded = httpx.get(image["url"], timeout=30, follow_redirects=True)
        assert downloaded.status_code == 200
        assert downloaded.content == make_instant_png()  # stored exactly as produced
    finally:
        gateway.close()
