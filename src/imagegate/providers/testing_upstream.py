"""A loopback stand-in for OpenAI's Images API, for tests and for trying a deployment offline.

It speaks the wire format the SDK does: ``POST /v1/images/generations`` (JSON) and
``POST /v1/images/edits`` (multipart, ``image[]`` and ``mask``), JSON answers with base64
images and usage, SSE events when ``stream`` is true, and OpenAI's error bodies. Each request
takes the next scripted :class:`Behaviour` (default: succeed) and is recorded in ``received``,
and every image it sent is kept in ``sent`` so a test can compare bytes exactly. A client that
hangs up during a stall is counted in ``hung_up``.

    with OpenAIUpstream() as upstream:
        upstream.script(fail(500), rate_limit(retry_after=0))
        ...  # point an ``openai`` provider at upstream.base_url
"""

from __future__ import annotations

import asyncio
import base64
import collections
import io
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

USAGE = {
    "input_tokens": 60,
    "input_tokens_details": {"text_tokens": 50, "image_tokens": 10},
    "output_tokens": 1100,
    "output_tokens_details": {"text_tokens": 44, "image_tokens": 1056},
    "total_tokens": 1160,
}


@dataclass(frozen=True)
class Behaviour:
    """What the next request gets: an error (``status``), a stall, garbage, or success."""

    status: int = 200
    message: str = ""
    code: str | None = None
    type: str = "invalid_request_error"
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0  # wait this long before answering
    garbage: bool = False  # answer 200 with a body that is not the API's
    in_stream: bool = False  # a streamed call: start the stream, then fail with an error event


def fail(status: int = 500, message: str = "The server had an error", code: str | None = None) -> Behaviour:
    return Behaviour(
        status=status,
        message=message,
        code=code,
        type="server_error" if status >= 500 else "invalid_request_error",
    )


def rate_limit(retry_after: float = 0) -> Behaviour:
    return Behaviour(
        429, "Rate limit reached", "rate_limit_exceeded", "requests", {"Retry-After": f"{retry_after:g}"}
    )


def moderation(message: str = "Your request was rejected by the safety system.") -> Behaviour:
    return Behaviour(400, message, "moderation_blocked", "image_generation_user_error")


def stall(seconds: float) -> Behaviour:
    return Behaviour(stall_s=seconds)


def stream_moderation(message: str = "The generated image was rejected by the safety system.") -> Behaviour:
    """A streamed call refused midway (an output-stage block): one partial image, then an error event."""
    return Behaviour(400, message, "moderation_blocked", "image_generation_user_error", in_stream=True)


GARBAGE = Behaviour(garbage=True)
SUCCEED = Behaviour()


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    fields: dict[str, Any]  # JSON body, or the multipart form's text fields
    files: list[tuple[str, str, bytes]]  # (field name, content type, bytes) of multipart files


class OpenAIUpstream:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.sent: list[bytes] = []  # every final image's bytes, in order
        self.hung_up: list[str] = []  # paths of requests whose client closed them during a stall
        self._script: collections.deque[Behaviour] = collections.deque()
        self._lock = threading.Lock()
        app = Starlette(
            routes=[
                Route("/v1/images/generations", self._endpoint, methods=["POST"]),
                Route("/v1/images/edits", self._endpoint, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.base_url = ""

    # -- control -------------------------------------------------------------------------------
    def script(self, *behaviours: Behaviour) -> None:
        """Queue what the next requests get, in order; after them, requests succeed."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.received.clear()
            self.sent.clear()
            self.hung_up.clear()

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the upstream did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> OpenAIUpstream:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    # -- the API -------------------------------------------------------------------------------
    async def _read(self, request: Request) -> Received:
        files: list[tuple[str, str, bytes]] = []
        if request.headers.get("content-type", "").startswith("multipart/"):
            fields: dict[str, Any] = {}
            async with request.form(max_files=64) as form:
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        files.append((name, value.content_type or "", await value.read()))
                    else:
                        fields[name] = value
        else:
            fields = json.loads(await request.body())
        return Received(request.url.path, dict(request.headers), fields, files)

    def _picture(self, fields: dict[str, Any], index: int, partial: int | None = None) -> str:
        width, _, height = str(fields.get("size", "64x64")).partition("x")
        fmt = {"jpeg": "JPEG", "webp": "WEBP"}.get(str(fields.get("output_format")), "PNG")
        shade = (len(self.sent) * 40 + index * 90) % 256
        colour = (shade, 255 - shade, 128 if partial is None else 20 * partial)
        buffer = io.BytesIO()
        Image.new("RGB", (int(width or 64), int(height or 64)), colour).save(buffer, fmt)
        data = buffer.getvalue()
        if partial is None:
            self.sent.append(data)
        return base64.b64encode(data).decode()

    async def _endpoint(self, request: Request) -> Response:
        received = await self._read(request)
        with self._lock:
            self.received.append(received)
            behaviour = self._script.popleft() if self._script else SUCCEED
        if behaviour.stall_s and await self._stall(request, behaviour.stall_s):
            return Response(status_code=499)  # nobody reads it
        if behaviour.garbage:
            return Response("<html>upstream proxy error</html>", 200, media_type="application/json")
        if behaviour.status != 200 and not behaviour.in_stream:
            error = {
                "message": behaviour.message,
                "type": behaviour.type,
                "param": None,
                "code": behaviour.code,
            }
            return JSONResponse({"error": error}, behaviour.status, headers=behaviour.headers)
        fields = received.fields
        n = int(fields.get("n", 1))
        if str(fields.get("stream", "")).lower() == "true":
            events = self._events(received, n, behaviour if behaviour.in_stream else None)
            return StreamingResponse(events, media_type="text/event-stream")
        data = [{"b64_json": self._picture(fields, i)} for i in range(n)]
        return JSONResponse(
            {
                "created": int(time.time()),
                "data": data,
                "usage": USAGE,
                "output_format": fields.get("output_format", "png"),
            }
        )

    async def _stall(self, request: Request, seconds: float) -> bool:
        """Wait, watching the connection: True (and recorded) when the client hangs up first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            if await request.is_disconnected():
                with self._lock:
                    self.hung_up.append(request.url.path)
                return True
            await asyncio.sleep(min(0.05, left))
        return False

    async def _events(
        self, received: Received, n: int, failing: Behaviour | None = None
    ) -> AsyncIterator[bytes]:
        prefix = "image_edit" if received.path.endswith("/edits") else "image_generation"
        fields = received.fields
        common = {
            "background": fields.get("background", "auto"),
            "created_at": int(time.time()),
            "output_format": fields.get("output_format", "png"),
            "quality": fields.get("quality", "auto"),
            "size": fields.get("size", "1024x1024"),
        }
        for index in range(n):
            for partial in range(int(fields.get("partial_images", 0))):
                event = {
                    **common,
                    "type": f"{prefix}.partial_image",
                    "partial_image_index": partial,
                    "b64_json": self._picture(fields, index, partial),
                }
                yield f"event: {prefix}.partial_image\ndata: {json.dumps(event)}\n\n".encode()
                if failing is not None:
                    error = {
                        "message": failing.message,
                        "type": failing.type,
                        "param": None,
                        "code": failing.code,
                    }
                    yield f"event: error\ndata: {json.dumps({'type': 'error', 'error': error})}\n\n".encode()
                    return
            event = {
                **common,
                "type": f"{prefix}.completed",
                "b64_json": self._picture(fields, index),
                "usage": USAGE,
            }
            yield f"event: {prefix}.completed\ndata: {json.dumps(event)}\n\n".encode()


__all__ = [
    "GARBAGE",
    "Behaviour",
    "OpenAIUpstream",
    "Received",
    "fail",
    "moderation",
    "rate_limit",
    "stall",
    "stream_moderation",
]
