"""``imagegate mcp`` over stdio, driven by the mcp package's own client, against a gateway."""

from __future__ import annotations

import json
import os
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import ImageContent

from tests.conftest import Gateway
from tests.serving import IMAGEGATE

TOOLS = {
    "list_models",
    "get_model_info",
    "check_pricing",
    "text_to_image",
    "edit_image",
    "get_task",
    "check_balance",
}


def structured(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return (
            content.get("result", content)
            if isinstance(content, dict) and set(content) == {"result"}
            else content
        )
    return json.loads(result.content[0].text)


async def test_agent_lists_prices_generates_edits_and_checks_the_balance(gateway: Gateway) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update(IMAGEGATE_API_KEY=gateway.new_account()[1], IMAGEGATE_BASE_URL=gateway.base_url)
    params = StdioServerParameters(command=str(IMAGEGATE), args=["mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        models = structured(await session.call_tool("list_models", {}))
        assert "gpt-image-2" in [m["id"] for m in models]
        info = structured(await session.call_tool("get_model_info", {"model": "gpt-image-1.5"}))
        assert info["lifecycle"]["successor"] == "gpt-image-2"
        price = structured(await session.call_tool("check_pricing", {"model": "gpt-image-1.5"}))
        assert price["price"]["matrix_micro"] == {"medium": 40000, "high": 220000}
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        drawn = await session.call_tool(
            "text_to_image", {"prompt": "a red fox", "aspect_ratio": "3:2"}, progress_callback=on_progress
        )
        task = structured(drawn)
        assert task["status"] == "completed" and task["images"][0]["width"] > task["images"][0]["height"]
        assert progress[-1] == (1.0, 1.0, "completed")
        assert any(isinstance(block, ImageContent) for block in drawn.content)
        edited = structured(
            await session.call_tool(
                "edit_image", {"prompt": "night", "image_urls": [task["images"][0]["url"]]}
            )
        )
        assert edited["status"] == "completed"
        again = structured(await session.call_tool("get_task", {"task_id": edited["id"]}))
        assert again["id"] == edited["id"]
        balance = structured(await session.call_tool("check_balance", {}))
        assert balance["balance_micro"] == 100_000_000  # both were free calls
        refused = await session.call_tool("text_to_image", {"prompt": "a fox", "aspect_ratio": "7:1"})
        assert refused.is_error and "aspect_ratio" in refused.content[0].text
