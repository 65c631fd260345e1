"""The one way a task ends: completed, failed, canceled, timed out or recovered.

Every terminal transition goes through :func:`end_task`, so each keeps the same promises:
in one transaction the status moves (only from an active status, and for a worker only
while its attempt still holds the task), the hold is settled (completed is charged,
anything else released and its free call returned) and held inputs are forgotten. After
the commit the bytes are deleted and the end is published on the bus (waiters, streams).
A call that loses the race changes nothing and deletes only what its own attempt wrote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from imagegate.billing import free_calls, ledger
from imagegate.db.models import Task
from imagegate.db.writer import Tx
from imagegate.gateway import Gateway
from imagegate.tasks import outbox, publish, store
from imagegate.tasks.status import TaskStatus


@dataclass(frozen=True)
class Outcome:
    status: TaskStatus
    error_code: str | None = None
    error: str | None = None
    images: list[dict[str, Any]] = field(default_factory=list)  # stored outputs (completed only)
    usage: dict[str, Any] | None = None
    provider: str | None = None  # the provider that produced it (or failed last), when one was called
    attempts: list[dict[str, Any]] | None = None  # every provider call; None: none made by this end
    upstream_cost_micro: int = 0  # what the upstream charged for it (completed only)

    @classmethod
    def failed(
        cls,
        code: str,
        message: str,
        *,
        provider: str | None = None,
        attempts: list[dict[str, Any]] | None = None,
    ) -> Outcome:
        return cls(TaskStatus.FAILED, error_code=code, error=message, provider=provider, attempts=attempts)


@dataclass(frozen=True)
class Fence:
    """Which holder may end the task. Default: anyone, from pending or processing."""

    account_id: str | None = None  # the caller's account (cancel)
    attempt: int | None = None  # the worker attempt that must still hold it
    lease_expired_at: datetime | None = None  # only if its lease ran out before this (recovery)


ANYONE = Fence()


async def delete_keys(gw: Gateway, keys: Iterable[str]) -> None:
    for key in keys:
        with contextlib.suppress(Exception):  # the sweeper and retention catch what is left
            await gw.storage.delete(key)


async def settle(tx: Tx, task: Task, status: TaskStatus, now: datetime) -> None:
    """End a task's hold: completed is charged, anything else is not (and its free call returns)."""
    if status is TaskStatus.COMPLETED:
        await ledger.capture(tx, task, now)
    elif await ledger.release(tx, task, now) and task.free_call:
        await free_calls.give_back(tx, task.account_id, task.variant)


def _accounting(outcome: Outcome) -> dict[str, Any]:
    """The provider calls and the upstream cost, written with the end (no extra statement)."""
    values: dict[str, Any] = {}
    if outcome.attempts is not None:
        values["provider_attempts"] = list(outcome.attempts)
    if outcome.status is TaskStatus.COMPLETED:
        values["upstream_cost_micro"] = outcome.upstream_cost_micro
    return values


async def end_task(gw: Gateway, task_id: str, outcome: Outcome, fence: Fence = ANYONE) -> Task | None:
    """End the task with ``outcome``; the ended task, or None when it had already ended
    (or ``fence`` no longer matches), in which case nothing changed."""
    now = gw.now()
    values: dict[str, Any] = {
        "completed_at": now,
        "error": outcome.error,
        "error_code": outcome.error_code,
    }
    if outcome.provider is not None:
        values["provider"] = outcome.provider
    values.update(_accounting(outcome))
    if outcome.status is TaskStatus.COMPLETED:
        values.update(
            images=outcome.images,
            usage=outcome.usage,
            outputs_expire_at=now + timedelta(seconds=gw.settings.output_retention_s),
        )
    ended: Task | None = None
    keys: list[str] = []
    async with gw.db.write() as tx:
        ended = await store.end(
            tx,
            task_id,
            outcome.status,
            values,
            account_id=fence.account_id,
            attempt=fence.attempt,
            lease_expired_at=fence.lease_expired_at,
        )
        if ended is not None:
            await settle(tx, ended, outcome.status, now)  # sets the settlement's columns on it
            if any(ref.get("kind") == "storage" for ref in ended.inputs):  # else none were held
                keys = await store.forget_files_of_task(tx, task_id)
            await outbox.record_end(tx, ended, now)  # webhooks: the event, and a delivery if asked
    if ended is None:
        keys = [image["key"] for image in outcome.images]  # this attempt lost: its outputs go
    await delete_keys(gw, keys)
    if ended is not None:
        gw.relay.ended(ended)  # a face waiting in this process takes it with the images
        await publish.ended(gw, task_id, outcome.status)  # after the commit: listeners read it ended
    if ended is not None and ended.hold_state == ledger.HoldState.CAPTURED:  # the tier may move up
        gw.principals.add_paid_spend(ended.account_id, ended.charge_micro - ended.hold_bonus_micro)
    return ended


__all__ = ["ANYONE", "Fence", "Outcome", "delete_keys", "end_task", "settle"]
