"""The poll and the creates, answered before FastAPI: ``GET /api/v1/tasks/{id}``,
``POST /api/v1/{service}/text_to_image`` and ``POST /v1/images/generations`` in their plain forms.

Pollers call this route more than all the others together, and FastAPI's routing, dependency
solving and middleware (its own error, telemetry and body-limit layers included) cost several
times the read itself. This ASGI layer sits outside all of them (``GatewayApp.__call__``): it
answers the plain form with the route's own code (``runapi._read``: the same body, headers,
ETag, 404s), under the same request-id layer (``X-Request-Id``, the 500 envelope), and hands
every other request to FastAPI untouched.

The plain form: GET, exactly ``/api/v1/tasks/<id>``, no query string (no ``?wait=``), no
``If-None-Match``, and a key the principal cache already holds. Whatever is decided before
the rate-limit hit falls through, so FastAPI never counts a request twice; after the hit this
layer answers everything itself, errors included, in the usual envelope.

The plain create: POST, exactly ``/api/v1/<service>/text_to_image``, no query string. The
route's own function runs every check (it takes no FastAPI-solved parameter but its two
headers, read here the same way), so this layer only saves FastAPI's routing and middleware.
The OpenAI face's generations (no query string) the same way: its route's dependencies (the
caller, rate limit included, and the base URL) called in their declared order, then the route.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from imagegate.accounts.keys import hash_key
from imagegate.accounts.store import Principal
from imagegate.api import deps, openai, runapi
from imagegate.api.errors import RequestIdMiddleware, error_response
from imagegate.errors import GatewayError
from imagegate.gateway import Gateway

_PATH = re.compile(r"^/api/v1/tasks/([^/]+)$")
_CREATE = re.compile(r"^/api/v1/([^/]+)/text_to_image$")
_GENERATIONS = "/v1/images/generations"
_CLAIMED = "imagegate.polled"  # scope key: (gateway, principal, task id) of a claimed poll


class PolledTask:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.answer = RequestIdMiddleware(self._answer)
        self.create = RequestIdMiddleware(self._create)
        self.generations = RequestIdMiddleware(self._generations)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = scope["type"] == "http" and not scope.get("query_string") and not scope.get("root_path")
        if plain and scope["method"] == "POST":
            if scope["path"] == _GENERATIONS:
                await self.generations(scope, receive, send)
                return
            if _CREATE.match(scope["path"]):
                await self.create(scope, receive, send)
                return
        match = _PATH.match(scope["path"]) if plain and scope["method"] == "GET" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        authorization: bytes | None = None
        api_key: bytes | None = None
        conditional = False
        for name, value in scope["headers"]:  # first of each, as Starlette's Headers.get
            if name == b"authorization" and authorization is None:
                authorization = value
            elif name == b"x-api-key" and api_key is None:
                api_key = value
            elif name == b"if-none-match":
                conditional = True
        token = _token(authorization, api_key)
        gw: Gateway | None = getattr(scope["app"].state, "gateway", None)
        who = gw.principals.get(hash_key(token)) if token is not None and gw is not None else None
        if who is None or conditional:
            await self.app(scope, receive, send)
            return
        scope[_CLAIMED] = (gw, who, match.group(1))
        await self.answer(scope, receive, send)

    @staticmethod
    async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
        gw: Gateway
        who: Principal
        gw, who, task_id = scope[_CLAIMED]
        request = Request(scope, receive)
        response: Response
        try:
            if gw.settings.rate_limits_enabled:
                await deps.check_rate(request, gw, who, create=False)
            base = await deps.base_url(request)
            response = await runapi.read_task(request, gw, who, base, task_id)
        except GatewayError as exc:
            response = _refused(request, exc)
        await response(scope, receive, send)

    @staticmethod
    async def _create(scope: Scope, receive: Receive, send: Send) -> None:
        """The hot create (``runapi.text_to_image``, which runs every check itself: key, rate
        limit, body, validation, idempotency, billing), without FastAPI's routing."""
        match = _CREATE.match(scope["path"])
        assert match is not None
        request = Request(scope, receive)
        response: Response
        try:
            response = await runapi.text_to_image(
                request,
                match.group(1),
                request.headers.get("x-client-request-id"),
                request.headers.get("idempotency-key"),
            )
        except GatewayError as exc:
            response = _refused(request, exc)
        await response(scope, receive, send)

    @staticmethod
    async def _generations(scope: Scope, receive: Receive, send: Send) -> None:
        """``openai.generations`` with its dependencies solved here, in their declared order."""
        request = Request(scope, receive)
        response: Response
        try:
            gw: Gateway = request.app.state.gateway
            who = await deps.limit_create(request)
            base = await deps.base_url(request)
            response = await openai.generations(request, gw, who, base)
        except GatewayError as exc:
            response = _refused(request, exc)
        await response(scope, receive, send)


def _refused(request: Request, exc: GatewayError) -> Response:
    """The error as FastAPI's handler answers it, with the rate-limit headers the checks set."""
    response = error_response(exc)
    for name, value in deps.rate_headers(request).items():
        response.headers.setdefault(name, value)
    return response


def _token(authorization: bytes | None, api_key: bytes | None) -> str | None:
    """``deps.bearer`` on the raw headers (a non-empty Authorization wins, as there)."""
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return api_key.decode("latin-1") if api_key is not None else None
