"""The body of a task-end webhook: Standard Webhooks' envelope around the task view."""

from __future__ import annotations

import json

from imagegate.db.models import Task
from imagegate.gateway import Gateway
from imagegate.tasks.outbox import event_type
from imagegate.tasks.views import iso, task_view


def base_url(gw: Gateway) -> str:
    """Where links in a webhook point: ``public_url``, else the address this server listens on."""
    chosen = gw.settings.public_url or gw.listening_url or f"http://{gw.settings.host}:{gw.settings.port}"
    return chosen.rstrip("/")


def body(gw: Gateway, task: Task, base: str) -> bytes:
    """``{"type", "timestamp", "data"}`` with ``data`` exactly as ``GET /api/v1/tasks/{id}``
    shows the task, as compact JSON (ASCII, so it travels unchanged inside an SSE line)."""
    view = task_view(gw, task, base).model_dump(mode="json", by_alias=True)
    envelope = {"type": str(event_type(task.status)), "timestamp": iso(task.completed_at), "data": view}
    return json.dumps(envelope, separators=(",", ":")).encode()


__all__ = ["base_url", "body"]
