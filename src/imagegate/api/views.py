"""The HTTP side of a task's view: serialized answers and the headers that go with them.
The view itself is :mod:`imagegate.tasks.views` (event streams and webhooks show it too)."""

from __future__ import annotations

from fastapi.responses import Response
from pydantic import BaseModel

from imagegate.catalog.lifecycle import deprecation_headers
from imagegate.db.models import Task
from imagegate.gateway import Gateway


def model_response(
    model: BaseModel, headers: dict[str, str] | None = None, *, exclude_unset: bool = False
) -> Response:
    """A model serialized once, straight to JSON bytes, for routes that also set headers
    (FastAPI documents the route's ``response_model`` but does not validate a Response again)."""
    body = model.model_dump_json(by_alias=True, exclude_unset=exclude_unset)
    return Response(body, media_type="application/json", headers=headers)


def task_headers(gw: Gateway, task: Task, base_url: str) -> dict[str, str]:
    # RunAPI clients read X-RunAPI-Task-Id; ours is the same value under our name.
    headers = {"X-Imagegate-Task-Id": task.id, "X-RunAPI-Task-Id": task.id}
    if task.client_request_id:
        headers["X-Client-Request-Id"] = task.client_request_id
    model = gw.catalog.find(task.model)
    if model is not None:
        headers.update(deprecation_headers(model, base_url))
    return headers


def if_none_match(header: str | None, tag: str) -> bool:
    """If-None-Match by weak comparison (RFC 9110 13.1.2): a list, W/ prefixes, or *."""
    if header is None:
        return False
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or tag.removeprefix("W/") in candidates
