"""Every SDK operation, written once as a generator of :class:`Call` / :class:`Sleep` steps.

The sync and async clients drive these (see ``_base``); nothing here does I/O itself except
reading the local image files a caller names, which are small.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from imagegate.retry import retry_delay, should_retry
from imagegate.schemas import Balance, FileObject, Me, TaskList, TaskView, UsageReport
from imagegate.sdk import events
from imagegate.sdk._base import (
    DROPPED,
    ENDED,
    BaseClient,
    Call,
    Connect,
    Emit,
    Op,
    Receive,
    Sleep,
    Transient,
    new_idempotency_key,
)
from imagegate.sdk.errors import NotFoundError, TaskTimeoutError, ValidationError
from imagegate.sdk.tasks import Model, TaskBase

TaskT = TypeVar("TaskT", bound=TaskBase)
Wrap = Callable[[dict[str, Any]], TaskT]

# An image to edit: a local path, raw bytes, an http(s) or data: URL, or a PIL image.
ImageInput = str | os.PathLike[str] | bytes | Any

DEFAULT_MODEL = "gpt-image-2"
DEFAULT_WAIT_S = 300.0
POLL_FIRST_S = 0.2  # polling a gateway without long polls starts quick
POLL_MAX_S = 2.0  # and slows to this
LONG_POLL_S = 25.0  # one long poll holds at most this long (the gateway allows 60)
PENDING_POLL_S = 2.0  # and this long while the task is still pending
LONG_POLL_MARGIN_S = 10.0  # a long poll's read timeout exceeds its wait by this much
STREAM_SILENCE_S = 45.0  # heartbeats come every 15 s: a stream silent this long is reopened
_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


class Omit:
    """Marks a parameter the caller did not give (distinct from an explicit None)."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = Omit()


def given(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not isinstance(v, Omit)}


# --- models ---------------------------------------------------------------------------


def list_models(client: BaseClient) -> Op[list[Model]]:
    document = yield Call("GET", "/api/v1/models", auth=False)
    models = [Model.model_validate(entry) for entry in document.get("data", [])]
    client.models_cache = models
    return models


def retrieve_model(client: BaseClient, name: str, *, cached: bool = False) -> Op[Model]:
    models = client.models_cache if cached and client.models_cache is not None else None
    if models is None:
        models = yield from list_models(client)
    for model in models:
        if model.matches(name):
            return model
    choices = ", ".join(m.id for m in models)
    raise NotFoundError(
        f"No model {name!r}; models are: {choices}", status_code=404, code="not_found", param="model"
    )


# --- files ----------------------------------------------------------------------------


def _sniff(data: bytes, name: str | None) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"


def _read_image(image: ImageInput, name: str | None) -> tuple[bytes, str]:
    """Bytes and a file name for anything :data:`ImageInput` allows, except URLs."""
    if isinstance(image, bytes | bytearray):
        return bytes(image), name or "image"
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"no such image file: {path}")
        return path.read_bytes(), name or path.name
    if callable(getattr(image, "save", None)):  # a PIL image; Pillow itself is not needed here
        import io

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue(), name or "image.png"
    raise TypeError(f"an image is a path, bytes, a URL or a PIL image, not {type(image).__name__}")


def upload(image: ImageInput, file_name: str | None = None) -> Op[FileObject]:
    data, name = _read_image(image, file_name)
    files = {"file": (name, data, _sniff(data, name))}
    body = yield Call("POST", "/api/v1/files", files=files)
    return FileObject.model_validate(body)


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://", "data:"))


def image_url(image: ImageInput) -> Op[str]:
    """A URL the gateway can fetch: given URLs as they are, anything else uploaded first."""
    if isinstance(image, str) and _is_url(image):
        return image
    uploaded = yield from upload(image)
    return uploaded.url


# --- tasks ----------------------------------------------------------------------------


def create_task(
    client: BaseClient,
    action: str,
    body: dict[str, Any],
    wrap: Wrap[TaskT],
    *,
    idempotency_key: str | None,
    client_request_id: str | None,
    wait: bool,
    timeout: float,
) -> Op[TaskT]:
    name = body.get("model") or DEFAULT_MODEL
    model = yield from retrieve_model(client, name, cached=True)
    if model.action(action) is None:
        raise ValidationError(
            f"{model.id} has no {action} action", status_code=400, code="validation", param="model"
        )
    headers = {"X-Client-Request-Id": client_request_id} if client_request_id else {}
    created = yield Call(
        "POST",
        f"/api/v1/{model.service}/{action}",
        json={**body, "model": name},
        headers=headers,
        idempotency_key=idempotency_key or new_idempotency_key(),
    )
    if not wait:
        return (yield from get_task(created["id"], wrap))
    task = yield from wait_task(client, created["id"], wrap, timeout=timeout)
    task.raise_for_status()
    return task


def edit_body(
    prompt: str, urls: list[str], mask_url: str | None, model: str | None, params: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt, "source_image_urls": urls, **params}
    if model is not None:
        body["model"] = model
    if mask_url is not None:
        body["mask_url"] = mask_url  # passed on; the gateway says if the model takes no mask
    return body


def image_urls(images: Iterable[ImageInput], mask: ImageInput | None) -> Op[tuple[list[str], str | None]]:
    urls: list[str] = []
    for image in images if not isinstance(images, str | bytes) else [images]:
        urls.append((yield from image_url(image)))
    mask_url = (yield from image_url(mask)) if mask is not None else None
    return urls, mask_url


def get_task(task_id: str, wrap: Wrap[TaskT], *, wait: float = 0.0) -> Op[TaskT]:
    """The task; with ``wait``, the gateway holds the answer until it ends or that many
    seconds pass (a long poll)."""
    params = {"wait": round(wait, 3)} if wait > 0 else None
    read_timeout = wait + LONG_POLL_MARGIN_S if wait > 0 else None
    body = yield Call("GET", f"/api/v1/tasks/{task_id}", params=params, timeout=read_timeout)
    return wrap(body)


def cancel_task(task_id: str, wrap: Wrap[TaskT]) -> Op[TaskT]:
    body = yield Call("POST", f"/api/v1/tasks/{task_id}/cancel")
    return wrap(body)


def stream_task(
    client: BaseClient, task_id: str, wrap: Wrap[TaskT], *, timeout: float = DEFAULT_WAIT_S
) -> Op[TaskT]:
    """Emit the task's events until it ends; return it ended (TaskTimeoutError after ``timeout``).

    Reads the gateway's event stream, reconnecting with ``Last-Event-ID`` when the
    connection drops, so no event is lost or repeated; a gateway without the stream (404)
    is long-polled instead, which reports status changes and the end.
    """
    deadline = time.monotonic() + timeout
    if client.has_events is not False:
        task = yield from _follow_events(client, task_id, wrap, deadline, timeout)
        if task is not None:
            return task
    return (yield from _follow_polls(client, task_id, wrap, deadline, timeout))


def _follow_events(
    client: BaseClient, task_id: str, wrap: Wrap[TaskT], deadline: float, timeout: float
) -> Op[TaskT | None]:
    """The event stream's part of :func:`stream_task`; None when the gateway has no stream."""
    last_id: str | None = None
    attempt = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TaskTimeoutError((yield from get_task(task_id, wrap)), timeout)
        headers = {"Last-Event-ID": last_id} if last_id else {}
        path = f"/api/v1/tasks/{task_id}/events"
        opened = yield Connect(Call("GET", path, headers=headers), read_timeout=min(left, STREAM_SILENCE_S))
        if opened == "missing":
            if client.has_events is None:
                yield from get_task(task_id, wrap)  # NotFoundError for a task that is not there
                client.has_events = False  # the task is there, so the gateway has no streams
            return None
        if isinstance(opened, Transient):
            if not should_retry(opened.status, attempt=attempt, max_retries=client.max_retries):
                raise opened.error
            yield Sleep(min(retry_delay(attempt, opened.headers), max(left, 0.0)))
            attempt += 1
            continue
        client.has_events = True
        received = 0
        while True:
            sse = yield Receive()
            if sse in (ENDED, DROPPED):
                break  # reconnect from the last event seen
            received += 1
            if sse.id:
                last_id = sse.id
            event = events.parse(sse.event, sse.data, sse.id, wrap)
            if event is None and sse.event in events.END_EVENTS:  # an end we could not read: ask
                ended = yield from get_task(task_id, wrap)
                if ended.done:
                    event = events.TaskEndEvent(task_id=task_id, event_id=None, task=ended)
            if event is None:
                continue
            yield Emit(event)
            if isinstance(event, events.TaskEndEvent):
                task: TaskT = event.task
                return task
        if received:
            attempt = 0
        else:  # closed before a single event: back off rather than spin
            yield Sleep(min(retry_delay(attempt), max(deadline - time.monotonic(), 0.0)))
            attempt += 1


def _follow_polls(
    client: BaseClient, task_id: str, wrap: Wrap[TaskT], deadline: float, timeout: float
) -> Op[TaskT]:
    """Long-poll the task, emitting a status event on each change and the end."""
    seen: str | None = None
    pause = POLL_FIRST_S
    while True:
        left = deadline - time.monotonic()
        # The gateway's long poll wakes at the end only: a pending task is asked again sooner,
        # so the move to processing shows.
        hold = {None: 0.0, "pending": PENDING_POLL_S}.get(seen, LONG_POLL_S)
        wait = min(max(left, 0.0), hold)
        asked = time.monotonic()
        task = yield from get_task(task_id, wrap, wait=wait)
        if task.done:
            yield Emit(events.TaskEndEvent(task_id=task.id, task=task))
            return task
        if task.status != seen:
            yield Emit(events.StatusEvent(task_id=task.id, status=task.status))
            seen = task.status
        left = deadline - time.monotonic()
        if left <= 0:
            raise TaskTimeoutError(task, timeout)
        if wait > 0 and time.monotonic() - asked < wait / 2:
            # an answer long before the wait ran out: a gateway without long polls
            yield Sleep(min(pause, left))
            pause = min(POLL_MAX_S, pause * 1.5)


def wait_task(
    client: BaseClient, task_id: str, wrap: Wrap[TaskT], *, timeout: float = DEFAULT_WAIT_S
) -> Op[TaskT]:
    """The task once completed, failed or canceled; TaskTimeoutError after ``timeout``."""
    return (yield from stream_task(client, task_id, wrap, timeout=timeout))


def task_page(status: str | None, limit: int, after: str | None) -> Op[TaskList]:
    body = yield Call("GET", "/api/v1/tasks", params={"status": status, "limit": limit, "after": after})
    return TaskList.model_validate(body)


def to_task(wrap: Wrap[TaskT], view: TaskView) -> TaskT:
    return wrap(view.model_dump())


# --- account --------------------------------------------------------------------------


def me() -> Op[Me]:
    return Me.model_validate((yield Call("GET", "/api/v1/me")))


def balance() -> Op[Balance]:
    return Balance.model_validate((yield Call("GET", "/api/v1/me/balance")))


def usage(start: date | str | None, end: date | str | None) -> Op[UsageReport]:
    params = {"from": str(start) if start else None, "to": str(end) if end else None}
    return UsageReport.model_validate((yield Call("GET", "/api/v1/me/usage", params=params)))


def download(url: str) -> Op[bytes]:
    data: bytes = yield Call("GET", url, raw=True, auth=False)
    return data
