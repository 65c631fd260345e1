"""What clients see of a task, and the headers that go with it."""

from __future__ import annotations

from datetime import datetime

from fastapi.responses import Response
from pydantic import BaseModel

from imagegate.api.models import Refund, Reservation, Settlement, TaskBilling, TaskImage, TaskView
from imagegate.billing.money import micro_to_cents
from imagegate.catalog.lifecycle import deprecation_headers
from imagegate.db.models import Task
from imagegate.gateway import Gateway


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def image_url(gw: Gateway, base_url: str, task: Task, key: str) -> str:
    expires = task.outputs_expire_at or gw.now()
    return base_url + gw.signer.path(key, int(expires.timestamp()))


def task_view(gw: Gateway, task: Task, base_url: str) -> TaskView:
    images = [
        TaskImage(
            url=image_url(gw, base_url, task, image["key"]),
            width=image["width"],
            height=image["height"],
            content_type=image["content_type"],
        )
        for image in task.images
    ]
    return TaskView(
        id=task.id,
        status=task.status,
        service=task.service,
        action=task.action,
        model=task.model,
        model_served=task.model_served,
        variant=task.variant,
        provider=task.provider,
        images=images,
        error=task.error,
        error_code=task.error_code,
        client_request_id=task.client_request_id,
        created_at=iso(task.created_at),
        started_at=iso(task.started_at),
        completed_at=iso(task.completed_at),
        outputs_expire_at=iso(task.outputs_expire_at),
        outputs_deleted=task.outputs_deleted_at is not None,
        billing=billing_view(task),
    )


def billing_view(task: Task) -> TaskBilling:
    """RunAPI's billing object: what was reserved, what was charged, what was refunded."""
    return TaskBilling(
        reservation=Reservation(
            amount_cents=micro_to_cents(task.charge_micro), amount_micro=task.charge_micro
        ),
        settlement=(
            Settlement(charged_amount_cents=micro_to_cents(task.charge_micro), amount_micro=task.charge_micro)
            if task.hold_state == "captured"
            else None
        ),
        refund=Refund(refunded_at=iso(task.refunded_at)) if task.hold_state == "released" else None,
        free_call=task.free_call,
        list_price_micro=task.price_micro,
    )


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
