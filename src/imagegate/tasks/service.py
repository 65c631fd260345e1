"""Submit and cancel tasks: the HTTP side of the gateway's guarantees.

The HTTP layer calls ``submit``/``cancel``; workers call ``runner.run``; every end goes
through ``ending.end_task``. A task row is committed before its id is handed to the
queue, so a crash between the two leaves a pending row that recovery enqueues, never
lost work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import String, bindparam

from imagegate.accounts.store import Principal
from imagegate.billing import free_calls, ledger
from imagegate.billing.pricing import call_price_micro
from imagegate.catalog import ActionName, ModelSpec
from imagegate.catalog.lifecycle import resolve
from imagegate.db.models import StoredFile, Task
from imagegate.db.writer import Tx
from imagegate.errors import ConflictError, RateLimitError
from imagegate.gateway import Gateway
from imagegate.limits import Tier
from imagegate.tasks import idempotency, inputs, publish, store
from imagegate.tasks.ending import Fence, Outcome, end_task
from imagegate.tasks.inputs import Upload
from imagegate.tasks.recovery import INPUT_GRACE
from imagegate.tasks.status import TaskStatus

# The balance lock of a creation: it reads the active tasks and the free calls used as well.
_LOCK_FOR_CREATE = ledger.lock_statement(
    store.active_of(ledger.locked_account()),
    free_calls.used_of(ledger.locked_account(), bindparam("variant", type_=String)),
)


class Enqueue(Protocol):
    def __call__(self, task_id: str) -> None: ...


@dataclass
class Submission:
    """A validated request, in either face's terms, ready to become a task."""

    face: str  # "runapi" | "openai"
    model: ModelSpec
    action: ActionName
    params: dict[str, Any]  # contract parameters (validated)
    source_urls: list[str] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    mask: Upload | None = None
    markup: Upload | None = None  # OpenAI edits' drawn layer: where to edit
    n: int = 1
    size: tuple[int, int] | None = None  # explicit pixels (OpenAI face); else from the catalog
    quality: str | None = None
    background: str = "auto"
    output_format: str = "png"
    output_compression: int = 100
    partial_images: int = 0
    callback_url: str | None = None
    client_request_id: str | None = None
    idempotency_key: str | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what "the same body" means for replays


@dataclass(frozen=True)
class Submitted:
    task: Task
    replayed: bool  # an Idempotency-Key matched: the original task, nothing charged again


async def _prepare_inputs(
    gw: Gateway, who: Principal, sub: Submission, task_id: str
) -> tuple[list[dict[str, Any]], list[StoredFile]]:
    """Source references for the task, and the records of bytes stored on its behalf.

    The records are committed before their bytes are written (inputs.hold), so bytes left by
    a crash before the task's own commit are still deleted by the sweeper when they expire.
    """
    ttl = timedelta(seconds=gw.settings.task_timeout_s * gw.settings.max_attempts) + INPUT_GRACE
    refs: list[dict[str, Any] | Upload] = list(sub.uploads)
    layers = [(role, up) for role, up in (("mask", sub.mask), ("markup", sub.markup)) if up is not None]
    held = [*sub.uploads, *(up for _, up in layers)]
    for index, url in enumerate(sub.source_urls):
        ref = await inputs.classify(gw, url, f"source_image_urls[{index}]")
        if isinstance(ref, Upload):  # a data: URL, decoded: counts against the pixel budget now
            held.append(ref)
            inputs.check_pixel_budget(gw, held, "source_image_urls")
        refs.append(ref)
    held = [ref for ref in refs if isinstance(ref, Upload)] + [up for _, up in layers]
    records = await inputs.hold(gw, who.account_id, held, task_id=task_id, ttl=ttl)
    keys = iter(record.key for record in records)
    sources = [{"kind": "storage", "key": next(keys)} if isinstance(r, Upload) else r for r in refs]
    sources.extend({"kind": "storage", "key": next(keys), "role": role} for role, _ in layers)
    return sources, records


async def submit(gw: Gateway, who: Principal, sub: Submission, enqueue: Enqueue) -> Submitted:
    """Validate lifecycle, check limits, hold the price (or a free call) and store the task.

    Everything that decides whether the task exists happens in one transaction that holds
    the account's balance row: idempotency, the concurrency limit, the free call or the
    hold, the row itself. A refusal (402, 409, 429) leaves no task, no hold, no files.
    """
    settings = gw.settings
    served = resolve(gw.catalog, sub.model, sub.params, gw.lifecycle_date(), settings.retired_models)
    variant = gw.catalog.variant(sub.model, sub.action)
    width, height = sub.size or served.size  # the requested model's contract sets the pixels
    tier = gw.tier(who)
    task_id = str(uuid.uuid4())
    refs, records = await _prepare_inputs(gw, who, sub, task_id)
    now = gw.now()
    # The requested variant's price, even when a successor serves it.
    price = call_price_micro(sub.model, sub.params, sub.n)
    # The row as a plain dict (an ORM object would only be read back into one for the INSERT).
    row: dict[str, Any] = dict(
        id=task_id,
        account_id=who.account_id,
        api_key_id=who.key_id,
        face=sub.face,
        service=gw.catalog.line_of(sub.model).service,
        action=sub.action.value,
        model=sub.model.id,
        model_served=served.model.id,
        variant=variant.name,
        provider=gw.provider_name(served.model),
        status=TaskStatus.PENDING,
        params=sub.params,
        render={
            "width": width,
            "height": height,
            "n": sub.n,
            "quality": sub.quality or served.quality or "auto",
            "background": sub.background,
            "output_format": sub.output_format,
            "output_compression": sub.output_compression,
            "partial_images": sub.partial_images,
            "params": served.params,
        },
        inputs=refs,
        images=[],
        callback_url=sub.callback_url,
        client_request_id=sub.client_request_id,
        idempotency_key=sub.idempotency_key,
        price_micro=price,
        charge_micro=price if settings.billing_enabled else 0,
        free_call=False,
        hold_bonus_micro=0,
        attempts=0,
        created_at=now,
    )
    replay: Task | None = None
    try:
        async with gw.db.write() as tx:
            locked = await _lock(gw, tx, who, variant.name)
            if sub.idempotency_key is not None:
                digest = idempotency.request_hash(sub.fingerprint)
                original = await idempotency.claim(
                    tx, who.account_id, sub.idempotency_key, digest, task_id, now
                )
                if original is not None:
                    replay = await store.read_in(tx, who.account_id, original)
            if replay is None:
                await _admit(gw, tx, tier, locked, row, now)
                if gw.defer_in_transaction is not None:  # its job commits or rolls back with it
                    assert tx.session is not None  # procrastinate runs on PostgreSQL: a session's
                    await gw.defer_in_transaction(tx.session, task_id, row["provider"])
    except BaseException:
        await inputs.drop(gw, records)
        raise
    if replay is not None:
        await inputs.drop(gw, records)  # the original task keeps its own inputs
        return Submitted(task=replay, replayed=True)
    await publish.status(gw, task_id, TaskStatus.PENDING)  # before the worker can say processing
    enqueue(task_id)
    return Submitted(task=store.detached(row), replayed=False)


async def _lock(gw: Gateway, tx: Tx, who: Principal, variant: str) -> ledger.Locked | None:
    """The balance row lock, which serializes one account's creations (holds and the concurrency
    count), read in the same statement as the active tasks and the free calls used."""
    settings = gw.settings
    if not (settings.billing_enabled or settings.rate_limits_enabled):
        return None
    return await ledger.lock(tx, who.account_id, _LOCK_FOR_CREATE, variant=variant)


async def _admit(
    gw: Gateway, tx: Tx, tier: Tier, locked: ledger.Locked | None, task: dict[str, Any], now: datetime
) -> None:
    """The concurrency limit, then the free call or the hold, then the row."""
    settings = gw.settings
    active, free_used = locked.also if locked is not None else (0, None)
    if settings.rate_limits_enabled and active >= tier.max_concurrent:
        raise RateLimitError(
            f"{active} tasks are already pending or processing; the {tier.name} tier allows "
            f"{tier.max_concurrent} at a time. Retry when one ends.",
            headers={"Retry-After": "1"},
            extra={"limit": "concurrency", "tier": tier.name},
        )
    allowance = settings.free_calls_per_variant
    if (
        settings.billing_enabled
        and free_calls.left(free_used, allowance)
        and await free_calls.claim(tx, task["account_id"], task["variant"], allowance)
    ):
        task["free_call"], task["charge_micro"] = True, 0
    if locked is not None and settings.billing_enabled:
        task["hold_bonus_micro"] = await ledger.hold(tx, locked, task["id"], task["charge_micro"], now)
        task["hold_state"] = ledger.HoldState.HELD
    else:
        task["hold_state"] = ledger.HoldState.NONE
    await store.add(tx, task)


async def cancel(gw: Gateway, who: Principal, task_id: str) -> Task:
    """Cancel a pending or processing task of the caller's: ended and released at once, then
    the process running it (any, over the bus) is asked to stop; 409 if it had ended."""
    outcome = Outcome(TaskStatus.CANCELED)
    ended = await end_task(gw, task_id, outcome, Fence(account_id=who.account_id))
    if ended is not None:
        await gw.bus.request_cancel(task_id)
    else:
        async with gw.db.sessions() as session:
            task = await store.get_for_account(session, who.account_id, task_id)  # 404 if not ours
        raise ConflictError(
            f"Task {task_id} is already {task.status}; only pending or processing tasks can be canceled."
        )
    return ended


__all__ = ["Enqueue", "Submission", "Submitted", "cancel", "submit"]
