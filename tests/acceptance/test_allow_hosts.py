"""``IMAGEGATE_FETCH_ALLOW_HOSTS`` in its documented comma-separated form, on a real ``imagegate serve``."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import T2I_15, ImageHost, png_bytes
from tests.serving import IMAGEGATE, Server, Start

EDIT = "/api/v1/gpt_image/edit_image"


def edit_body(url: str) -> dict[str, Any]:
    return {**T2I_15, "prompt": "frame it", "source_image_urls": [url]}


def edit(server: Server, url: str) -> dict[str, Any]:
    """Create an edit from ``url`` with the demo key and wait for its end."""
    headers = {"Authorization": f"Bearer {server.demo_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        created = client.post(EDIT, json=edit_body(url))
        assert created.status_code == 200, created.text
        deadline = time.monotonic() + 60
        while True:
            task: dict[str, Any] = client.get(f"/api/v1/tasks/{created.json()['id']}").json()
            if task["status"] in ("completed", "failed", "canceled") or time.monotonic() > deadline:
                return task
            time.sleep(0.05)


@pytest.mark.parametrize("allow", ["127.0.0.1", "[::1]:8080, 127.0.0.1 ,images.internal"])
def test_serve_starts_with_a_comma_separated_allow_list_and_uses_it(
    serve: Start, tmp_path: Path, image_host: ImageHost, allow: str
) -> None:
    server = serve(tmp_path, IMAGEGATE_FETCH_ALLOW_HOSTS=allow)
    url = image_host.serve(f"/{uuid.uuid4().hex}.png", png_bytes(24, 24))
    task = edit(server, url)
    assert task["status"] == "completed", task


def test_serve_without_the_allow_list_refuses_loopback(
    serve: Start, tmp_path: Path, image_host: ImageHost
) -> None:
    server = serve(tmp_path)
    url = image_host.serve(f"/{uuid.uuid4().hex}.png", png_bytes(24, 24))
    headers = {"Authorization": f"Bearer {server.demo_key}"}
    refused = httpx.post(server.base_url + EDIT, json=edit_body(url), headers=headers, timeout=30)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "source_image_urls[0]"


def test_a_malformed_entry_stops_serve_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env["IMAGEGATE_FETCH_ALLOW_HOSTS"] = "127.0.0.1,images.internal:abc"
    result = subprocess.run(
        [str(IMAGEGATE), "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "images.internal:abc" in result.stderr
