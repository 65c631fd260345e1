"""The MCP server that lets agents use the gateway: one set of tools, two transports.

``imagegate mcp`` serves it on stdio with the key and URL the CLI resolved (options,
environment, profile); the gateway mounts it at ``/mcp`` (streamable HTTP, see
``imagegate.api.mcp_http``), where each call acts as the caller's own Bearer key. Either way a
tool calls the gateway through the SDK (``AsyncClient``), which a :data:`Connector` opens for
the call at hand, so the same routes, checks, limits and prices apply as to any client.

Errors reach the agent as tool errors carrying the gateway's message and code, so it can
correct its call. The image tools follow the task for at most ``max_wait_s`` seconds,
reporting progress notifications when the client sent a progress token, and return the task
with its image URLs, the image itself as MCP image content when it is small enough.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent

from imagegate import __version__
from imagegate.sdk import AsyncClient, AsyncTask, ImagegateError, Model, TaskTimeoutError
from imagegate.sdk.events import PartialImageEvent, ProgressEvent, StatusEvent, TaskEndEvent

INSTRUCTIONS = (
    "Generate and edit images through an imagegate gateway. Call list_models first; "
    "get_model_info shows a model's parameters, check_pricing its price. text_to_image and "
    "edit_image wait for the task (up to max_wait_s) and return image URLs; get_task reads a "
    "task again, for instance one still running when the wait ended."
)
DEFAULT_WAIT_S = 120.0  # how long an image tool follows its task unless told otherwise
MAX_WAIT_S = 600.0  # and at most
MAX_INLINE_BYTES = 1024 * 1024  # images up to this size also come back as MCP image content
_STAGES = {"pending": 0.0, "processing": 0.1}  # progress reported for a status alone

# Opens the SDK client a tool call uses (with the key it acts as), given the call's context.
Connector = Callable[[Context], AbstractAsyncContextManager[AsyncClient]]


def _summary(model: Model) -> dict[str, Any]:
    return {
        "id": model.id,
        "display_name": model.display_name,
        "actions": [a.get("action") for a in model.actions],
        "lifecycle": model.lifecycle.get("status"),
        "served_by": model.served_by,
    }


def _task(task: AsyncTask) -> dict[str, Any]:
    keep = ("id", "status", "model", "model_served", "images", "error", "error_code", "billing")
    dumped: dict[str, Any] = task.model_dump(mode="json")
    return {k: dumped[k] for k in keep}


def _params(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


async def _follow(sdk: AsyncClient, ctx: Context, task: AsyncTask, max_wait_s: float) -> AsyncTask:
    """The task once ended, or as it stands when the wait runs out, reporting progress (0..1)
    on the way; a no-op for the progress when the client sent no progress token."""
    partials = 0
    events = sdk.tasks.stream(task.id, timeout=min(max(max_wait_s, 0.0), MAX_WAIT_S))
    try:
        async for event in events:
            if isinstance(event, StatusEvent):
                await ctx.report_progress(_STAGES.get(event.status, 0.0), 1.0, event.status)
            elif isinstance(event, ProgressEvent):
                await ctx.report_progress(event.progress, 1.0, "processing")
            elif isinstance(event, PartialImageEvent):
                partials += 1
                await ctx.report_progress(0.5, 1.0, f"partial image {partials}")
            elif isinstance(event, TaskEndEvent):
                await ctx.report_progress(1.0, 1.0, event.status)
                ended: AsyncTask = event.task
                return ended
    except TaskTimeoutError as exc:
        still: AsyncTask = exc.task  # type: ignore[assignment]
        return still
    finally:
        await events.aclose()  # the stream's connection, when it returned before the end
    return await sdk.tasks.get(task.id)


async def _answer(sdk: AsyncClient, task: AsyncTask, *, end_is_error: bool = True) -> CallToolResult:
    """The task as structured content and JSON text, plus its first image inline when small;
    a failed or canceled task is a tool error with the gateway's words (unless only read)."""
    view = _task(task)
    if end_is_error and task.status in ("failed", "canceled"):
        message = f"task {task.id} {task.status}: {task.error or task.status} ({task.error_code})"
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
    content: list[ContentBlock] = [TextContent(type="text", text=json.dumps(view))]
    if task.status != "completed":
        note = f"task {task.id} is still {task.status}: call get_task with its id later"
        content.append(TextContent(type="text", text=note))
    elif task.images:
        data = await sdk.download(task.images[0].url)
        if len(data) <= MAX_INLINE_BYTES:
            encoded = base64.b64encode(data).decode()
            content.append(ImageContent(type="image", data=encoded, mime_type=task.images[0].content_type))
    return CallToolResult(content=content, structured_content=view)


def build(connect: Connector) -> MCPServer[Any]:
    """The server with its tools; each call opens its client through ``connect``."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server: MCPServer[Any] = MCPServer("imagegate", instructions=INSTRUCTIONS, version=__version__)
    # MCPServer configures the root logger (basicConfig: INFO, rich, stderr). How the gateway
    # logs is the operator's choice (IMAGEGATE_LOG_LEVEL), so what it changed is put back.
    root.handlers[:] = handlers
    root.setLevel(level)

    @asynccontextmanager
    async def client(ctx: Context) -> AsyncIterator[AsyncClient]:
        """An SDK client whose errors reach the agent as tool errors with the gateway's words
        (anything else stays a crash, whose text the mcp package keeps on the server)."""
        try:
            async with connect(ctx) as sdk:
                yield sdk
        except ImagegateError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    async def list_models(ctx: Context) -> list[dict[str, Any]]:
        """The models this gateway serves: id, actions, lifecycle status."""
        async with client(ctx) as sdk:
            return [_summary(m) for m in await sdk.models.list()]

    @server.tool()
    async def get_model_info(model: str, ctx: Context) -> dict[str, Any]:
        """One model (id or alias): its actions with parameters (input_contract), prices, lifecycle."""
        async with client(ctx) as sdk:
            return (await sdk.models.retrieve(model)).model_dump(mode="json")

    @server.tool()
    async def check_pricing(model: str, ctx: Context, action: str = "text_to_image") -> dict[str, Any]:
        """The price of one image of a model's action, in micro-dollars (1 USD = 1,000,000)."""
        async with client(ctx) as sdk:
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
        ctx: Context,
        model: str | None = None,
        aspect_ratio: str | None = None,
        quality: str | None = None,
        output_resolution: str | None = None,
        wait: bool = True,
        max_wait_s: float = DEFAULT_WAIT_S,
    ) -> CallToolResult:
        """Draw an image. Returns the task with its image URLs (and the image when small);
        a task still running after max_wait_s seconds (or with wait=false) comes back as it
        stands, to read again with get_task."""
        async with client(ctx) as sdk:
            extra = _params(aspect_ratio=aspect_ratio, quality=quality, output_resolution=output_resolution)
            task = await sdk.images.generate(prompt, model=model, extra=extra, wait=False)
            if wait:
                task = await _follow(sdk, ctx, task, max_wait_s)
            return await _answer(sdk, task)

    @server.tool()
    async def edit_image(
        prompt: str,
        image_urls: list[str],
        ctx: Context,
        model: str | None = None,
        aspect_ratio: str | None = None,
        quality: str | None = None,
        output_resolution: str | None = None,
        wait: bool = True,
        max_wait_s: float = DEFAULT_WAIT_S,
    ) -> CallToolResult:
        """Edit images given by URL (http(s) or data:) as the prompt says; returns the task
        as text_to_image does."""
        async with client(ctx) as sdk:
            extra = _params(aspect_ratio=aspect_ratio, quality=quality, output_resolution=output_resolution)
            task = await sdk.images.edit(prompt, images=image_urls, model=model, extra=extra, wait=False)
            if wait:
                task = await _follow(sdk, ctx, task, max_wait_s)
            return await _answer(sdk, task)

    @server.tool()
    async def get_task(task_id: str, ctx: Context) -> CallToolResult:
        """A task's status, images and error."""
        async with client(ctx) as sdk:
            return await _answer(sdk, await sdk.tasks.get(task_id), end_is_error=False)

    @server.tool()
    async def check_balance(ctx: Context) -> dict[str, Any]:
        """Credits left, held and spent (micro-dollars), the tier and free calls left."""
        async with client(ctx) as sdk:
            return (await sdk.account.balance()).model_dump(mode="json")

    return server


def for_stdio(api_key: str | None, base_url: str | None) -> MCPServer[Any]:
    """The server ``imagegate mcp`` runs: every call acts as the one configured key."""

    @asynccontextmanager
    async def connect(ctx: Context) -> AsyncIterator[AsyncClient]:
        async with AsyncClient(api_key=api_key, base_url=base_url) as sdk:
            yield sdk

    return build(connect)
