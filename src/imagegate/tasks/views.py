"""What clients see of a task: the view both faces, event streams and webhooks show.

Pure functions of a task row (and the gateway's signer for image links); the HTTP layer adds
headers around them. The shapes are :mod:`imagegate.schemas`, shared with the SDK.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from imagegate.billing.money import MICRO_PER_USD, micro_to_cents
from imagegate.db.models import Task
from imagegate.gateway import Gateway
from imagegate.schemas import (
    ProviderAttempt,
    Refund,
    Reservation,
    Settlement,
    TaskBilling,
    TaskCreated,
    TaskImage,
    TaskUsage,
    TaskView,
)
from imagegate.tasks.status import TaskStatus

_V = TypeVar("_V", TaskView, TaskCreated)
CANCELED_CODE = "canceled"  # error_code a canceled task carries on RunAPI's service routes
CANCELED_MESSAGE = "The task was canceled."


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
        usage=usage_view(task),
        attempts=[ProviderAttempt(**attempt) for attempt in task.provider_attempts or ()],
    )


def usage_view(task: Task) -> TaskUsage | None:
    """RunAPI's ``usage`` of a completed task: what it was charged and how many images it made."""
    if task.status != TaskStatus.COMPLETED:
        return None
    charged = task.charge_micro if task.hold_state == "captured" else 0
    tokens = task.usage or {}
    return TaskUsage(
        cost=charged / MICRO_PER_USD,
        cost_micro=charged,
        generated_images=len(task.images),
        input_text_tokens=tokens.get("input_text_tokens"),
        input_image_tokens=tokens.get("input_image_tokens"),
        output_image_tokens=tokens.get("output_image_tokens"),
    )


def as_runapi(view: _V) -> _V:
    """A task as RunAPI's service-scoped routes show it: their clients know only pending,
    processing, completed and failed (the Python SDK raises on any other status and the JS SDK
    polls until its timeout), so a canceled task reads as failed with error_code ``canceled``.
    imagegate's own ``/api/v1/tasks`` routes keep ``canceled``."""
    if view.status != TaskStatus.CANCELED:
        return view
    if isinstance(view, TaskView):
        return view.model_copy(
            update={"status": TaskStatus.FAILED.value, "error": CANCELED_MESSAGE, "error_code": CANCELED_CODE}
        )
    return view.model_copy(update={"status": TaskStatus.FAILED.value})


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
