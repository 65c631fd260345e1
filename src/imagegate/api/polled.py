"""The poll, answered before FastAPI: ``GET /api/v1/tasks/{id}`` in its plain form.

Pollers call this route more than all the others together, and FastAPI's routing, dependency
solving and middleware cost several times the read itself. This ASGI layer (inside the
request-id middleware, so answers still carry ``X-Request-Id``) answers the plain form with
the route's own code (``runapi._read``: the same body, headers, ETag, 404s) and hands every
other request to FastAPI untouched.

The plain form: GET, exactly ``/api/v1/tasks/<id>``, no query string (no ``?wait=``), no
``If-None-Match``, and a key the principal cache already holds. Whatever is decided before
the rate-limit hit falls through, so FastAPI never counts a request twice; after the hit this
layer answers everything itself, errors included, in the usual envelope.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from imagegate.accounts.keys import hash_key
from imagegate.api import deps, runapi
from imagegate.api.errors import error_response
from imagegate.errors import GatewayError
from imagegate.gateway import Gateway

_PATH = re.compile(r"^/api/v1/tasks/([^/]+)$")


class PolledTask:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("query_string")
            and not scope.get("root_path")
        )
        match = _PATH.match(scope["path"]) if plain else None
        if match is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        gw: Gateway = request.app.state.gateway
        token = deps.bearer(request)
        who = gw.principals.get(hash_key(token)) if token is not None else None
        if who is None or "if-none-match" in request.headers:
            await self.app(scope, receive, send)
            return
        response: Response
        try:
            if gw.settings.rate_limits_enabled:
                await deps.check_rate(request, gw, who, create=False)
            base = await deps.base_url(request)
            response = await runapi.read_task(request, gw, who, base, match.group(1))
        except GatewayError as exc:
            response = error_response(exc)
            for name, value in deps.rate_headers(request).items():
                response.headers.setdefault(name, value)
        await response(scope, receive, send)
