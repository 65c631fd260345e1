"""``GET /api/v1/tasks/{id}/events``: a task's events as Server-Sent Events.

Every event has an increasing ``id``; ``Last-Event-ID`` resumes after it with nothing lost or
repeated while the bus holds the task's history. ``status``, ``progress`` and ``partial_image``
come as they happen; the stream ends with ``completed``, ``failed`` or ``canceled`` carrying the
task view that ``GET /api/v1/tasks/{id}`` answers. A stream opened after the end replays what
the bus holds and the end, then closes; with the history gone (a restart), the end and the
current status are made from the task row. A comment line every ``sse_heartbeat_s`` keeps
proxies from closing a quiet stream. RunAPI's service-scoped paths serve the same stream, with
a canceled task shown as they show it (``failed``, error code ``canceled``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from imagegate.api.deps import BaseUrlDep, GatewayDep, ReaderDep
from imagegate.api.runapi import task_id_of
from imagegate.catalog import ActionName
from imagegate.db.models import Task
from imagegate.errors import NotFoundError, ValidationError
from imagegate.events import BusClosed, Event, EventKind
from imagegate.gateway import Gateway
from imagegate.schemas import error_responses
from imagegate.tasks import waiting
from imagegate.tasks.status import TaskStatus
from imagegate.tasks.views import as_runapi, task_view

router = APIRouter(prefix="/api/v1", tags=["runapi"], responses=error_responses(400, 401, 404, 429))

SEND_TIMEOUT_S = 60.0  # a client that reads nothing for this long is let go (it can resume)
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "Server-Sent Events. `event:` is status | progress | partial_image | completed | failed | "
            "canceled, `id:` an integer increasing per task, `data:` JSON: status "
            '{"task_id", "status"}; progress {"task_id", "progress" (0..1)}; partial_image '
            '{"task_id", "index", "partial_index", "url"}; the terminal events carry the task view '
            "and end the stream. A comment line is sent every 15 s."
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _after(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        after = int(value.strip())
    except ValueError:
        raise ValidationError(
            "Last-Event-ID must be an event id (an integer)", param="Last-Event-ID"
        ) from None
    if after < 0:
        raise ValidationError("Last-Event-ID must be an event id (an integer)", param="Last-Event-ID")
    return after


def _sse(event_id: int, kind: str, data: dict[str, Any] | str) -> ServerSentEvent:
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return ServerSentEvent(body, event=kind, id=str(event_id))


def _live(gw: Gateway, base: str, event: Event) -> ServerSentEvent:
    data = event.data
    if event.kind is EventKind.PARTIAL_IMAGE:
        url = base + gw.signer.path(data["key"], int(data["expires"]))
        shown: dict[str, Any] = {
            "task_id": event.task_id,
            "index": data["index"],
            "partial_index": data["partial_index"],
            "url": url,
        }
    elif event.kind is EventKind.PROGRESS:
        shown = {"task_id": event.task_id, "progress": data["progress"]}
    else:
        shown = {"task_id": event.task_id, "status": data["status"]}
    return _sse(event.id, event.kind.value, shown)


def _end(gw: Gateway, base: str, task: Task, event_id: int, runapi: bool) -> ServerSentEvent:
    view = task_view(gw, task, base)
    if runapi:
        view = as_runapi(view)
    return _sse(event_id, view.status, view.model_dump_json(by_alias=True))


async def _stream(
    gw: Gateway, base: str, task: Task, account_id: str, after: int | None, runapi: bool
) -> AsyncIterator[ServerSentEvent]:
    try:
        async with gw.bus.subscribe(task.id, after) as events:
            backlog = events.backlog()
            if TaskStatus(task.status).terminal:  # opened after the end: replay, then close
                for event in backlog:
                    if event.kind.terminal:
                        yield _end(gw, base, task, event.id, runapi)
                        return
                    yield _live(gw, base, event)
                yield _end(gw, base, task, max(events.last_id, after or 0) + 1, runapi)
                return
            if after is None and not backlog:  # no history here (a restart): say where it stands
                yield _sse(events.last_id, EventKind.STATUS, {"task_id": task.id, "status": task.status})
            while True:
                item = await waiting.next_event(gw, events, account_id, task.id)
                if isinstance(item, Task):  # ended where this bus could not hear it
                    yield _end(gw, base, item, max(events.last_id, after or 0) + 1, runapi)
                    return
                if item.kind.terminal:
                    ended = await waiting.read(gw, account_id, task.id)
                    yield _end(gw, base, ended, item.id, runapi)
                    return
                yield _live(gw, base, item)
    except BusClosed:
        return  # the server is stopping: the client reconnects with its Last-Event-ID


async def _respond(
    gw: Gateway,
    who: Any,
    base: str,
    task_id: str,
    last_event_id: str | None,
    service_slug: str | None = None,
    action: str | None = None,
) -> EventSourceResponse:
    after = _after(last_event_id)
    task = await waiting.read(gw, who.account_id, task_id_of(task_id))
    if (service_slug is not None and task.service != service_slug) or (
        action is not None and task.action != action
    ):
        where = "/".join(part for part in (service_slug, action) if part)
        raise NotFoundError(f"No task {task_id!r} under {where}.", param="id")
    stream = _stream(gw, base, task, who.account_id, after, runapi=service_slug is not None)
    return EventSourceResponse(
        stream,
        ping=gw.settings.sse_heartbeat_s,
        send_timeout=SEND_TIMEOUT_S,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # no proxy buffering
    )


@router.get("/tasks/{task_id}/events", response_class=EventSourceResponse, responses=_STREAM)
async def task_events(
    task_id: str, gw: GatewayDep, who: ReaderDep, base: BaseUrlDep, last_event_id: LastEventId = None
) -> EventSourceResponse:
    return await _respond(gw, who, base, task_id, last_event_id)


@router.get("/{service_slug}/{task_id}/events", response_class=EventSourceResponse, responses=_STREAM)
async def service_task_events(
    service_slug: str,
    task_id: str,
    gw: GatewayDep,
    who: ReaderDep,
    base: BaseUrlDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    return await _respond(gw, who, base, task_id, last_event_id, service_slug)


@router.get(
    "/{service_slug}/{action}/{task_id}/events", response_class=EventSourceResponse, responses=_STREAM
)
async def action_task_events(
    service_slug: str,
    action: str,
    task_id: str,
    gw: GatewayDep,
    who: ReaderDep,
    base: BaseUrlDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    if action not in set(ActionName):
        raise NotFoundError(f"No action {action!r}.", param="action")
    return await _respond(gw, who, base, task_id, last_event_id, service_slug, action)
