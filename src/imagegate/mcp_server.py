"""An MCP server (stdio) that lets agents use the gateway: ``imagegate mcp``.

Every tool calls the gateway through the SDK (``AsyncClient``), with the key and URL the CLI
resolved (options, environment, profile). Errors reach the agent as tool errors carrying the
gateway's message and code, so it can correct its call. Needs the ``mcp`` package
(``pip install 'imagegate[mcp]'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from imagegate import __version__
from imagegate.sdk import AsyncClient, ImagegateError, Model

INSTRUCTIONS = (
    "Generate and edit images through an imagegate gateway. Call list_models first; "
    "get_model_info shows a model's parameters, check_pricing its price. text_to_image and "
    "edit_image wait for the task and return image URLs; get_task reads a task again."
)


def _summary(model: Model) -> dict[str, Any]:
    return {
        "id": model.id,
        "display_name": model.display_name,
        "actions": [a.get("action") for a in model.actions],
        "lifecycle": model.lifecycle.get("status"),
        "served_by": model.served_by,
    }


def _task(task: Any) -> dict[str, Any]:
    keep = ("id", "status", "model", "model_served", "images", "error", "error_code", "billing")
    dumped: dict[str, Any] = task.model_dump(mode="json")
    return {k: dumped[k] for k in keep}


def _params(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


def build(api_key: str | None, base_url: str | None) -> MCPServer[Any]:
    """The server with its tools, each opening a short-lived client (stdio serves one agent)."""
    server: MCPServer[Any] = MCPServer("imagegate", instructions=INSTRUCTIONS, version=__version__)

    @asynccontextmanager
    async def client() -> AsyncIterator[AsyncClient]:
        """An SDK client whose errors reach the agent as tool errors with the gateway's words
        (anything else stays a crash, whose text the mcp package keeps on the server)."""
        try:
            async with AsyncClient(api_key=api_key, base_url=base_url) as sdk:
                yield sdk
        except ImagegateError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    async def list_models() -> list[dict[str, Any]]:
        """The models this gateway serves: id, actions, lifecycle status."""
        async with client() as sdk:
            return [_summary(m) for m in await sdk.models.list()]

    @server.tool()
    async def get_model_info(model: str) -> dict[str, Any]:
        """One model (id or alias): its actions with parameters (input_contract), prices, lifecycle."""
        async with client() as sdk:
            return (await sdk.models.retrieve(model)).model_dump(mode="json")

    @server.tool()
    async def check_pricing(model: str, action: str = "text_to_image") -> dict[str, Any]:
        """The price of one image of a model's action, in micro-dollars (1 USD = 1,000,000)."""
        async with client() as sdk:
            found = await sdk.models.retrieve(model)
        entry = found.action(action)
        if entry is None:
            raise ToolError(
                f"{found.id} has no {action} action; it has {[a.get('action') for a in found.actions]}"
            )
        return {"model": found.id, "action": action, "price": entry.get("price")}

    @server.tool()
    async def text_to_image(
        prompt: str,
        model: str | None = None,
        aspect_ratio: str | None = None,
        quality: str | None = None,
        output_resolution: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Draw an image; returns the task with its image URLs (wait=false: the pending task)."""
        async with client() as sdk:
            extra = _params(aspect_ratio=aspect_ratio, quality=quality, output_resolution=output_resolution)
            return _task(await sdk.images.generate(prompt, model=model, extra=extra, wait=wait))

    @server.tool()
    async def edit_image(
        prompt: str,
        image_urls: list[str],
        model: str | None = None,
        aspect_ratio: str | None = None,
        quality: str | None = None,
        output_resolution: str | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Edit images given by URL (http(s) or data:) as the prompt says; returns the task."""
        async with client() as sdk:
            extra = _params(aspect_ratio=aspect_ratio, quality=quality, output_resolution=output_resolution)
            task = await sdk.images.edit(prompt, images=image_urls, model=model, extra=extra, wait=wait)
            return _task(task)

    @server.tool()
    async def get_task(task_id: str) -> dict[str, Any]:
        """A task's status, images and error."""
        async with client() as sdk:
            return _task(await sdk.tasks.get(task_id))

    @server.tool()
    async def check_balance() -> dict[str, Any]:
        """Credits left, held and spent (micro-dollars), the tier and free calls left."""
        async with client() as sdk:
            return (await sdk.account.balance()).model_dump(mode="json")

    return server
