"""MCP on the gateway's ``/mcp`` (streamable HTTP), driven by the mcp package's own client:
the caller's Bearer key is required and every tool acts as that key."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ImageContent
from PIL import Image

from imagegate.mcp_server import for_stdio
from tests.acceptance.test_mcp import TOOLS, structured
from tests.conftest import Gateway, png_bytes


@asynccontextmanager
async def mcp_session(gateway: Gateway, key: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{gateway.base_url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def test_mcp_needs_a_valid_key(gateway: Gateway) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer ig_wrong"}):
        refused = httpx.post(f"{gateway.base_url}/mcp", json=hello, headers={**accept, **headers})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "authentication"
    key = gateway.new_account()[1]
    listen = httpx.get(f"{gateway.base_url}/mcp", headers={**accept, "Authorization": f"Bearer {key}"})
    assert listen.status_code == 405  # stateless: no standalone stream to hold open


async def test_tools_act_as_the_callers_key_and_report_progress(gateway: Gateway) -> None:
    _, key = gateway.new_account(usd=None, tier=None)  # free calls only: the balance shows who paid
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with mcp_session(gateway, key) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        assert "gpt-image-2" in [m["id"] for m in structured(await session.call_tool("list_models", {}))]
        info = structured(await session.call_tool("get_model_info", {"model": "gpt-image-1.5"}))
        assert info["lifecycle"]["successor"] == "gpt-image-2"
        price = structured(await session.call_tool("check_pricing", {"model": "gpt-image-1.5"}))
        assert price["price"]["matrix_micro"] == {"medium": 40000, "high": 220000}

        result = await session.call_tool(
            "text_to_image",
            {"prompt": "a red fox", "model": "gpt-image-1.5", "aspect_ratio": "3:2", "quality": "medium"},
            progress_callback=on_progress,
        )
        task = structured(result)
        assert task["status"] == "completed"
        assert task["images"][0]["url"].startswith(gateway.base_url)  # URLs the caller can open
        (image,) = [block for block in result.content if isinstance(block, ImageContent)]
        with Image.open(io.BytesIO(base64.b64decode(image.data))) as drawn:
            assert drawn.size == (1536, 1024) and image.mime_type == "image/png"
        assert progress and progress[-1] == (1.0, 1.0, "completed")
        assert [p[0] for p in progress] == sorted(p[0] for p in progress)

        edited = structured(
            await session.call_tool(
                "edit_image", {"prompt": "night", "image_urls": [task["images"][0]["url"]]}
            )
        )
        assert edited["status"] == "completed"
        assert (
            structured(await session.call_tool("get_task", {"task_id": edited["id"]}))["id"] == edited["id"]
        )
        balance = structured(await session.call_tool("check_balance", {}))
        assert balance["free_calls"]["left"]["gpt-image-1.5-text-to-image"] == 2  # this key's free call

    with gateway.client(key) as owner, gateway.user() as stranger:
        assert owner.get(f"/api/v1/tasks/{task['id']}").status_code == 200
        assert stranger.get(f"/api/v1/tasks/{task['id']}").status_code == 404


async def test_image_tools_wait_a_bounded_time_and_report_failures(gateway: Gateway) -> None:
    key = gateway.new_account()[1]
    async with mcp_session(gateway, key) as session:
        running = await session.call_tool("text_to_image", {"prompt": "[stall:60] a fox", "max_wait_s": 0.3})
        task = structured(running)
        assert task["status"] in ("pending", "processing")
        assert "get_task" in running.content[-1].text
        failed = await session.call_tool("text_to_image", {"prompt": "[fail] a fox"})
        assert failed.is_error and "failed" in failed.content[0].text
        refused = await session.call_tool("text_to_image", {"prompt": "a fox", "aspect_ratio": "7:1"})
        assert refused.is_error and "aspect_ratio" in refused.content[0].text
        inline = "data:image/png;base64," + base64.b64encode(png_bytes(600, 600)).decode()
        edited = structured(
            await session.call_tool("edit_image", {"prompt": "night", "image_urls": [inline]})
        )
        assert edited["status"] == "completed"
        read: Any = structured(await session.call_tool("get_task", {"task_id": task["id"]}))
        assert read["id"] == task["id"]
    assert gateway.client(key).post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 200


def test_building_the_mcp_server_leaves_logging_alone() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    root.handlers[:] = []  # as in a fresh process, where basicConfig would take effect
    try:
        for_stdio("ig_x", "http://127.0.0.1:9")
        assert (root.handlers, root.level) == ([], saved[1])
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
