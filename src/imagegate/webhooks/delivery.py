"""The sender: claim due deliveries, POST them signed, record each attempt, schedule the next.

``deliver_due`` is safe in several processes at once: a delivery's attempt is taken by a
conditional UPDATE that bumps its attempt count and sets a lease, so one sender holds it;
the result is written only while that count still matches (a sender whose lease ran out
while it waited loses the write, never doubles the schedule). A process that dies mid-send
leaves the lease to expire, and the attempt is made again: webhooks are at least once, and
``webhook-id`` lets receivers drop repeats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imagegate.accounts.store import Principal
from imagegate.db.models import Task, WebhookAttempt, WebhookDelivery
from imagegate.errors import ConflictError, GatewayError
from imagegate.gateway import Gateway
from imagegate.retry import backoff
from imagegate.storage import guard
from imagegate.storage.urls import parse_http_url
from imagegate.tasks import outbox
from imagegate.tasks import store as tasks_store
from imagegate.tasks.outbox import DeliveryState
from imagegate.tasks.status import TaskStatus
from imagegate.webhooks import payload, secrets, signing, store

log = logging.getLogger("imagegate.webhooks")

BATCH = 50  # deliveries one pass takes at most; they are sent concurrently
LEASE_MARGIN_S = 30.0  # a lease outlasts the attempt's own time limit by this much
LOST = "no result: the sender stopped before recording one (its lease ran out)"
JITTER = 0.25  # a retry comes up to this fraction of its wait early, so receivers are not hit in step


@dataclass(frozen=True)
class Result:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def policy(gw: Gateway) -> guard.Policy:
    """Webhooks reach what source-image fetches may reach, within the webhook time limit."""
    return guard.Policy.from_hosts(
        gw.settings.fetch_allow_hosts, timeout_s=gw.settings.webhook_timeout_s, max_bytes=guard.POST_BODY_CAP
    )


def retry_wait(gw: Gateway, number: int) -> timedelta:
    """The wait after failed attempt ``number`` (1 for the first): doubling, capped, jittered."""
    settings = gw.settings
    seconds = backoff(
        number - 1, initial=settings.webhook_retry_base_s, cap=settings.webhook_retry_max_s, jitter=JITTER
    )
    return timedelta(seconds=seconds)


async def deliver_due(gw: Gateway, limit: int = BATCH) -> int:
    """One pass: send every due attempt (up to ``limit``); the number taken."""
    now = gw.now()
    async with gw.db.sessions() as session:  # a read first: an idle pass takes no write lock
        found = await store.due(session, now, limit)
    if not found:
        return 0
    lease_until = now + timedelta(seconds=gw.settings.webhook_timeout_s + LEASE_MARGIN_S)
    claimed: list[tuple[str, int]] = []
    window = timedelta(seconds=gw.settings.webhook_retry_window_s)
    async with gw.db.transaction() as session:
        for delivery_id, lost, created_at in found:
            number = await store.claim(session, delivery_id, now, lease_until)
            if number is None:
                continue
            if lost and number > 1:  # the attempt before this one: its sender stopped mid-way
                session.add(
                    WebhookAttempt(
                        delivery_id=delivery_id, number=number - 1, started_at=now, status_code=None,
                        latency_ms=0, error=LOST,
                    )
                )  # fmt: skip
            if lost and now > created_at + window:  # senders keep dying on it: stop, as for any failure
                ended = {"state": DeliveryState.FAILED, "finished_at": now, "next_attempt_at": None}
                await store.finish(session, delivery_id, number, ended)
                continue
            claimed.append((delivery_id, number))
    outcomes = await asyncio.gather(*(_attempt(gw, d, n) for d, n in claimed), return_exceptions=True)
    for (delivery_id, _), outcome in zip(claimed, outcomes, strict=True):
        if isinstance(outcome, BaseException):  # its lease runs out and the attempt is made again
            log.error("webhook delivery %s crashed", delivery_id, exc_info=outcome)
    return len(claimed)


async def _attempt(gw: Gateway, delivery_id: str, number: int) -> None:
    async with gw.db.sessions() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        task = await session.get(Task, delivery.task_id)
        assert task is not None
    keys = await secrets.signing_keys(gw, delivery.account_id)
    content = payload.body(gw, task, payload.base_url(gw))
    started = gw.now()
    result = await send(gw, delivery.url, delivery.message_id, content, keys)
    await _record(gw, delivery, number, started, result)
    host = parse_http_url(delivery.url, "url").host  # logged instead of the URL: queries may hold tokens
    log.info(
        "webhook %s attempt %d to %s: %s",
        delivery.message_id,
        number,
        host,
        result.status_code or result.error,
    )


async def send(gw: Gateway, url: str, message_id: str, content: bytes, keys: list[str]) -> Result:
    """POST ``content`` signed with ``keys`` through the URL guard; what came of it."""
    clock = time.monotonic()
    try:
        answer = await guard.post(
            url, content, signing.headers(keys, message_id, content), policy(gw), param="callback_url"
        )
    except GatewayError as exc:  # refused target, unresolvable, timeout, connection failure
        return Result(None, _ms(clock), exc.message)
    except Exception as exc:  # anything else the transport raises is this attempt's failure
        return Result(None, _ms(clock), f"request failed ({type(exc).__name__})")
    status = answer.status_code
    error = None if 200 <= status < 300 else f"the receiver answered {status}"
    return Result(status, _ms(clock), error)


def _ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


async def _record(
    gw: Gateway, delivery: WebhookDelivery, number: int, started: datetime, result: Result
) -> None:
    now = gw.now()
    values: dict[str, Any]
    if result.ok:
        values = {"state": DeliveryState.SUCCEEDED, "finished_at": now, "next_attempt_at": None}
    else:
        retry_at = now + retry_wait(gw, number)
        if retry_at > delivery.created_at + timedelta(seconds=gw.settings.webhook_retry_window_s):
            values = {"state": DeliveryState.FAILED, "finished_at": now, "next_attempt_at": None}
        else:
            values = {"next_attempt_at": retry_at}
    async with gw.db.transaction() as session:
        await store.finish(session, delivery.id, number, values)
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                number=number,
                started_at=started,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=result.error,
            )
        )


async def redeliver(gw: Gateway, who: Principal, task_id: str) -> WebhookDelivery:
    """A new delivery of the caller's ended task to its ``callback_url``, due now."""
    now = gw.now()
    async with gw.db.transaction() as session:
        task = await tasks_store.get_for_account(session, who.account_id, task_id)  # 404 if not ours
        if not TaskStatus(task.status).terminal:
            raise ConflictError(f"Task {task_id} is still {task.status}; its webhook is sent when it ends.")
        if not task.callback_url:
            raise ConflictError(f"Task {task_id} has no callback_url to deliver to.", param="callback_url")
        waiting = await store.pending_for_task(session, task.id)
        if waiting is not None:  # one at a time: a redelivery never multiplies requests to a target
            when = waiting.next_attempt_at.isoformat() if waiting.next_attempt_at else "now"
            raise ConflictError(f"A delivery of task {task_id} is already pending (next attempt: {when}).")
        delivery_id = await outbox.enqueue(session, task, task.callback_url, now)
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
    return delivery


async def deliveries(
    gw: Gateway, who: Principal, task_id: str
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """The caller's task's deliveries and their attempts (404 for another account's task)."""
    async with gw.db.sessions() as session:
        await tasks_store.get_for_account(session, who.account_id, task_id)
        return await store.for_task(session, task_id)


async def sweep(gw: Gateway) -> int:
    """Forget finished deliveries (and their attempts) past ``webhook_retention_s``."""
    before = gw.now() - timedelta(seconds=gw.settings.webhook_retention_s)
    async with gw.db.transaction() as session:
        return await store.sweep(session, before)


__all__ = [
    "BATCH",
    "Result",
    "deliver_due",
    "deliveries",
    "policy",
    "redeliver",
    "retry_wait",
    "send",
    "sweep",
]
