from __future__ import annotations

import io

from PIL import Image

from tests.conftest import T2I_15, Gateway


def test_text_to_image_completes_and_downloads(gateway: Gateway) -> None:
    client = gateway.user()
    created = client.post("/api/v1/gpt_image/text_to_image", json=T2I_15)
    assert created.status_code == 200, created.text
    task = gateway.wait(client, created.json()["id"])
    assert task["status"] == "completed"
    image = httpx_get(gateway, task["images"][0]["url"])
    assert Image.open(io.BytesIO(image)).size == (1024, 1024)


def httpx_get(gateway: Gateway, url: str) -> bytes:
    response = gateway.client().get(url)
    assert response.status_code == 200
    return response.content
