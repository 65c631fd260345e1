"""One error envelope for every route, and a request id on every response."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.errors import (
    GatewayError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    ValidationError,
)

log = logging.getLogger("imagegate.api")


def error_response(exc: GatewayError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): adds X-Request-Id without buffering bodies.

    It is also where an unexpected exception ends. Starlette's own ``Exception`` handler
    re-raises after answering, so uvicorn logs the traceback a second time and drops the
    connection under a client that was told to keep it. Here the traceback is logged once,
    the answer is the usual envelope with ``Connection: close`` (the server's state for
    that connection is unknown), and nothing propagates.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s (%s)", scope.get("method"), scope.get("path"), request_id)
            if started:  # too late for an error body: the server ends the half-sent response
                return
            response = error_response(
                ServerError(f"Internal error; quote request id {request_id} when reporting it.")
            )
            response.headers["Connection"] = "close"
            await response(scope, receive, send_with_id)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    if first.get("type") == "missing":
        return f"{param} is required", param
    return f"{param or 'request'}: {first.get('msg', 'invalid value')}", param


def install(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(request: Request, exc: GatewayError) -> JSONResponse:
        response = error_response(exc)
        for name, value in getattr(request.state, "rate_headers", {}).items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(ValidationError(message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFoundError("No such route."))
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            error = ValidationError(
                f"Method not allowed on this route; allowed: {allow}.", headers=dict(exc.headers or {})
            )
            error.status_code = 405
            return error_response(error)
        if exc.status_code == 413:
            return error_response(PayloadTooLargeError(str(exc.detail)))
        if 400 <= exc.status_code < 500:
            # Starlette's own 4xx (a malformed multipart body, too many files...).
            error = ValidationError(str(exc.detail))
            error.status_code = exc.status_code
            return error_response(error)
        return error_response(ServerError(str(exc.detail)))
