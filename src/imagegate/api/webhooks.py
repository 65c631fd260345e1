"""Webhook routes: the account's signing secret, a task's deliveries, and the listen stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from imagegate.api.deps import BaseUrlDep, GatewayDep, PrincipalDep, ReaderDep
from imagegate.api.models import error_responses
from imagegate.db.models import WebhookAttempt, WebhookDelivery
from imagegate.schemas import (
    WebhookAttemptView,
    WebhookDeliveryList,
    WebhookDeliveryView,
    WebhookSecretView,
)
from imagegate.tasks.views import iso
from imagegate.webhooks import delivery, listen, secrets
from imagegate.webhooks.secrets import Keys

router = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=error_responses(401, 429))
HEARTBEAT_S = 15


def secret_view(keys: Keys) -> WebhookSecretView:
    return WebhookSecretView(
        secret=keys.secret, created_at=iso(keys.created_at), previous_valid_until=iso(keys.previous_until)
    )


def delivery_view(row: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryView:
    return WebhookDeliveryView(
        id=row.id,
        task_id=row.task_id,
        webhook_id=row.message_id,
        type=row.type,
        url=row.url,
        state=row.state,
        next_attempt_at=iso(row.next_attempt_at),
        created_at=iso(row.created_at),
        finished_at=iso(row.finished_at),
        attempts=[
            WebhookAttemptView(
                number=a.number,
                started_at=iso(a.started_at),
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in attempts
        ],
    )


@router.get("/me/webhook_secret")
async def get_webhook_secret(gw: GatewayDep, who: PrincipalDep) -> WebhookSecretView:
    """The secret that signs this account's webhooks (made on first request)."""
    return secret_view(await secrets.show(gw, who.account_id))


@router.post("/me/webhook_secret/rotate")
async def rotate_webhook_secret(gw: GatewayDep, who: PrincipalDep) -> WebhookSecretView:
    """A new secret; the old one also signs for ``IMAGEGATE_WEBHOOK_SECRET_GRACE_S``."""
    return secret_view(await secrets.renew(gw, who.account_id))


@router.get("/tasks/{task_id}/deliveries", responses=error_responses(404))
async def list_deliveries(task_id: str, gw: GatewayDep, who: ReaderDep) -> WebhookDeliveryList:
    """Every delivery of the task's webhook, with each attempt's status code, latency and error."""
    rows = await delivery.deliveries(gw, who, task_id.lower())
    return WebhookDeliveryList(data=[delivery_view(row, attempts) for row, attempts in rows])


@router.post("/tasks/{task_id}/deliveries", status_code=201, responses=error_responses(404, 409))
async def redeliver(task_id: str, gw: GatewayDep, who: PrincipalDep) -> WebhookDeliveryView:
    """Send the ended task's webhook to its callback_url again (same webhook-id)."""
    return delivery_view(await delivery.redeliver(gw, who, task_id.lower()), [])


@router.get(
    "/webhooks/listen",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."}},
)
async def listen_events(
    request: Request,
    gw: GatewayDep,
    who: PrincipalDep,
    base: BaseUrlDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """The account's task-end events from now on (or after ``Last-Event-ID``), each with the
    body and signed headers a webhook of it carries: what ``imagegate listen`` forwards."""
    after = await listen.start_after(gw, who.account_id, last_event_id)
    state = request.app.state

    async def stream() -> AsyncIterator[ServerSentEvent]:
        state.listen_streams = getattr(state, "listen_streams", 0) + 1  # open streams, in this process
        try:
            async for event in listen.tail(gw, who.account_id, after, base):
                data = {"webhook_id": event.webhook_id, "headers": event.headers, "body": event.body}
                yield ServerSentEvent(json.dumps(data), event=event.type, id=event.event_id)
        finally:
            state.listen_streams -= 1

    return EventSourceResponse(stream(), ping=HEARTBEAT_S)
