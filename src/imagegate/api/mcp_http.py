"""MCP on ``/mcp`` (streamable HTTP): the tools of :mod:`imagegate.mcp_server`, acting as the
caller's Bearer key.

Each HTTP request is authenticated like any API call (a missing or bad key is the usual 401
envelope) and served statelessly, so any gateway process can answer any request and no MCP
session outlives the key that opened it. A tool reaches the gateway through the SDK over an
in-process ASGI transport with the caller's key: every route's checks, limits and prices
apply as to any client, with no network hop. Answers of that transport arrive whole, so the
tools follow a task with long polls rather than its event stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from imagegate import mcp_server
from imagegate.api.deps import MAX_JSON_BYTES_EXTRA, principal
from imagegate.api.errors import error_response
from imagegate.errors import GatewayError
from imagegate.sdk import AsyncClient
from imagegate.settings import Settings

PATH = "/mcp"


@asynccontextmanager
async def _in_process(ctx: Context) -> AsyncIterator[AsyncClient]:
    """An SDK client for one tool call: the caller's key, this app, the caller's base URL (so
    the URLs in answers are the ones the caller can open)."""
    request = ctx.request_context.request
    assert isinstance(request, Request), "the HTTP transport carries the Starlette request"
    header = request.headers.get("authorization", "")
    key = header.partition(" ")[2].strip() or request.headers.get("x-api-key")
    # This app's own URLs stay in process; others go out: on S3 storage an image link answers
    # 307 to a presigned URL on the bucket's endpoint (the operator's, never one a user named).
    own = {f"all://{request.base_url.netloc}": httpx.ASGITransport(app=request.app)}
    async with (
        httpx.AsyncClient(mounts=own) as http,
        AsyncClient(api_key=key, base_url=str(request.base_url), http_client=http) as sdk,
    ):
        sdk.has_events = False  # whole answers only: an event stream would arrive at its end
        yield sdk


class _Endpoint:
    """The ASGI endpoint at ``/mcp``: the key first, then the MCP session manager."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await principal(request, request.app.state.gateway)
        except GatewayError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


def mount(app: FastAPI, settings: Settings) -> StreamableHTTPSessionManager:
    """Add ``/mcp`` to ``app``; the returned manager must run (``async with manager.run()``)
    for as long as the app serves, which the app's lifespan does."""
    server = mcp_server.build(_in_process)
    # The Bearer key is the guard: a page that rebinds DNS to this host cannot send one, so
    # the Host/Origin allow-list (which would refuse every public host name) stays off.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    largest = settings.max_upload_bytes * 2 + MAX_JSON_BYTES_EXTRA  # as a JSON body: data: URLs fit
    server.streamable_http_app(
        stateless_http=True, transport_security=security, max_request_body_size=largest
    )
    manager = server.session_manager
    endpoint = _Endpoint(manager)  # an ASGI app, not a request handler: Starlette passes scope on
    # No GET: a stateless server has nothing to push outside a request's own answer, and an
    # idle stream would hold a connection open for nothing (MCP allows 405 here).
    app.router.routes.append(Route(PATH, endpoint, methods=["POST", "DELETE"], include_in_schema=False))
    return manager
