"""A loopback OpenAI Images upstream for benchmarks: one fixed 1024x1024 PNG, answered at once.

The answer (``{created, data: [{b64_json}], usage, ...}``, about 2 MB of JSON) is built once at
start, so the upstream costs almost nothing per request. A prompt containing ``[delay:MS]``
is answered after MS milliseconds (all three paths of a benchmark pass the prompt on as is).

    python bench/_image_upstream.py   # prints "listening on http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from PIL import Image

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
DELAY = re.compile(rb"\[delay:(\d+)\]")
USAGE = {
    "input_tokens": 60,
    "input_tokens_details": {"text_tokens": 50, "image_tokens": 10},
    "output_tokens": 1056,
    "output_tokens_details": {"text_tokens": 0, "image_tokens": 1056},
    "total_tokens": 1116,
}


def fixed_png(size: int = 1024) -> bytes:
    """A PNG of about 1.56 MB (noise of 4 bits per channel over 5/6 of the rows, like a detailed
    picture; compressed, it is about 2.1 MB of JSON)."""
    noisy = size * size * 3 * 5 // 6
    noise = os.urandom(noisy).translate(bytes(b & 0x0F for b in range(256))) + bytes(size * size * 3 - noisy)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), noise).save(buffer, "PNG")
    return buffer.getvalue()


def answer_body(png: bytes) -> bytes:
    body = {
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(png).decode()}],
        "background": "opaque",
        "output_format": "png",
        "quality": "medium",
        "size": "1024x1024",
        "usage": USAGE,
    }
    return json.dumps(body).encode()


class Upstream:
    def __init__(self) -> None:
        self.png = fixed_png()
        self.body = answer_body(self.png)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = b""
        while True:
            message = await receive()
            request += message.get("body", b"")
            if not message.get("more_body"):
                break
        if not scope["path"].endswith("/images/generations"):
            await self._send(
                send, 404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}'
            )
            return
        delay = DELAY.search(request)
        if delay:
            await asyncio.sleep(int(delay.group(1)) / 1000)
        await self._send(send, 200, self.body)

    @staticmethod
    async def _send(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = Upstream()
    print(f"png {len(app.png)} bytes, answer {len(app.body)} bytes", flush=True)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
