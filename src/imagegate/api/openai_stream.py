"""``stream: true`` on the OpenAI face: a task's partial images and its end as OpenAI's events.

The events are the ones the ``openai`` package parses (``image_generation.partial_image`` and
``.completed``, ``image_edit.*`` for edits), each with all its fields; ``usage`` is split over
the completed events so that their sum is the task's. A failure, or a stop of the server, is
OpenAI's ``error`` event (the SDK raises it as an APIError), never a cut connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette import ServerSentEvent

from imagegate.db.models import Task
from imagegate.errors import GatewayError, ServerError, ServiceUnavailableError
from imagegate.events import BusClosed, Event, EventKind
from imagegate.gateway import Gateway
from imagegate.storage import StorageNotFound
from imagegate.tasks import waiting
from imagegate.tasks.service import Submission
from imagegate.tasks.status import TaskStatus

log = logging.getLogger("imagegate.api")


def _sse(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=name)


def error_event(error: GatewayError) -> ServerSentEvent:
    return _sse("error", {"type": "error", **error.body()})


class _Shape:
    """The fields every event of this request repeats."""

    def __init__(self, gw: Gateway, sub: Submission, prefix: str) -> None:
        self.gw = gw
        self.prefix = prefix  # image_generation | image_edit
        self.background = "transparent" if sub.background == "transparent" else "opaque"
        self.output_format = sub.output_format
        self.quality = sub.quality or "auto"
        self.size = f"{sub.size[0]}x{sub.size[1]}" if sub.size else "auto"
        safety = sub.params.get("safety_identifier")
        self.safety = str(safety) if safety is not None else None

    def common(self, kind: str, b64: str) -> dict[str, Any]:
        return {
            "type": f"{self.prefix}.{kind}",
            "b64_json": b64,
            "background": self.background,
            "created_at": int(self.gw.now().timestamp()),
            "output_format": self.output_format,
            "quality": self.quality,
            "size": self.size,
        }


async def _b64(gw: Gateway, key: str) -> str:
    raw = await gw.storage.get(key)
    return (await asyncio.to_thread(base64.b64encode, raw)).decode("ascii")


def _usages(task: Task) -> list[dict[str, Any]]:
    """One usage per image: input tokens on the first, output tokens shared; they sum to the task's."""
    usage = task.usage or {}
    text = int(usage.get("input_text_tokens", 0))
    image_in = int(usage.get("input_image_tokens", 0))
    output = int(usage.get("output_image_tokens", 0))
    count = max(1, len(task.images))
    shares = [output // count + (1 if i < output % count else 0) for i in range(count)]
    parts = []
    for index, out in enumerate(shares):
        t, i = (text, image_in) if index == 0 else (0, 0)
        parts.append(
            {
                "input_tokens": t + i,
                "input_tokens_details": {"image_tokens": i, "text_tokens": t},
                "output_tokens": out,
                "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
                "total_tokens": t + i + out,
            }
        )
    return parts


async def _partial(shape: _Shape, event: Event) -> ServerSentEvent:
    data = shape.common("partial_image", await _b64(shape.gw, event.data["key"]))
    data["partial_image_index"] = int(event.data["partial_index"])
    return _sse(data["type"], data)


async def _end(shape: _Shape, task: Task, failure: GatewayError) -> AsyncIterator[ServerSentEvent]:
    if task.status != TaskStatus.COMPLETED:
        yield error_event(failure)
        return
    for image, usage in zip(task.images, _usages(task), strict=True):
        data = shape.common("completed", await _b64(shape.gw, image["key"]))
        data["size"] = f"{image['width']}x{image['height']}"
        data["usage"] = usage
        if shape.safety is not None:
            data["safety_identifier"] = shape.safety
        yield _sse(data["type"], data)


async def stream(
    gw: Gateway,
    task_id: str,
    account_id: str,
    sub: Submission,
    prefix: str,
    failure: Callable[[Task], GatewayError],  # the error a failed task answers with
) -> AsyncIterator[ServerSentEvent]:
    shape = _Shape(gw, sub, prefix)
    try:
        async with gw.bus.subscribe(task_id) as events:
            if not events.backlog():  # a replayed request, or history gone: the row says if it ended
                task = await waiting.read(gw, account_id, task_id)
                if TaskStatus(task.status).terminal:
                    async for sse in _end(shape, task, failure(task)):
                        yield sse
                    return
            while True:
                item = await waiting.next_event(gw, events, account_id, task_id)
                if isinstance(item, Event) and not item.kind.terminal:
                    if item.kind is EventKind.PARTIAL_IMAGE:
                        with contextlib.suppress(StorageNotFound):  # a preview already expired
                            yield await _partial(shape, item)
                    continue
                task = item if isinstance(item, Task) else await waiting.read(gw, account_id, task_id)
                async for sse in _end(shape, task, failure(task)):
                    yield sse
                return
    except BusClosed:
        yield error_event(
            ServiceUnavailableError(
                f"The server is restarting; the task goes on. Poll GET /api/v1/tasks/{task_id}.",
                extra={"task_id": task_id},
            )
        )
    except Exception:
        log.exception("streaming task %s failed", task_id)
        yield error_event(ServerError("internal error while streaming", extra={"task_id": task_id}))


__all__ = ["error_event", "stream"]
