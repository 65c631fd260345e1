"""Submit, run, cancel and recover tasks: the one place the gateway's guarantees live.

The HTTP layer calls ``submit``/``cancel``; workers call ``run``. A task row is
committed before its id is handed to the queue, so a crash between the two
leaves a pending row that start-up recovery enqueues, never lost work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.accounts.store import Principal
from imagegate.billing import free_calls, ledger
from imagegate.billing.pricing import call_price_micro
from imagegate.catalog import ActionName, ModelSpec
from imagegate.catalog.lifecycle import resolve
from imagegate.db.models import StoredFile, Task
from imagegate.errors import ConflictError, GatewayError, RateLimitError
from imagegate.gateway import Gateway
from imagegate.providers.base import (
    Action,
    FinalImage,
    GeneratedImage,
    ImageRequest,
    ProviderError,
    Usage,
)
from imagegate.storage.media import EXTENSIONS
from imagegate.tasks import idempotency, inputs, store
from imagegate.tasks.inputs import Upload
from imagegate.tasks.status import TaskStatus

log = logging.getLogger("imagegate.tasks")

INPUT_GRACE = timedelta(minutes=10)  # transient inputs outlive their task's deadline by this much


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
    """Source references for the task, and rows for the bytes stored on its behalf."""
    ttl = timedelta(seconds=gw.settings.task_timeout_s * gw.settings.max_attempts) + INPUT_GRACE
    records: list[StoredFile] = []

    async def keep(upload: Upload) -> str:
        key = await inputs.put_bytes(gw, upload)
        records.append(inputs.file_record(gw, who.account_id, upload, key, task_id=task_id, ttl=ttl))
        return key

    refs: list[dict[str, Any]] = []
    try:
        for upload in sub.uploads:
            refs.append({"kind": "storage", "key": await keep(upload)})
        for index, url in enumerate(sub.source_urls):
            ref = await inputs.classify(gw, url, f"source_image_urls[{index}]")
            refs.append({"kind": "storage", "key": await keep(ref)} if isinstance(ref, Upload) else ref)
        if sub.mask is not None:
            refs.append({"kind": "storage", "key": await keep(sub.mask), "role": "mask"})
    except BaseException:
        await _delete_keys(gw, [r.key for r in records])
        raise
    return refs, records


async def _delete_keys(gw: Gateway, keys: list[str]) -> None:
    for key in keys:
        with contextlib.suppress(Exception):
            await gw.storage.delete(key)


async def submit(gw: Gateway, who: Principal, sub: Submission, enqueue: Enqueue) -> Submitted:
    """Validate lifecycle, check limits, hold the price (or a free call) and store the task.

    Everything that decides whether the task exists happens in one transaction that holds
    the account's balance row: idempotency, the concurrency limit, the free call or the
    hold, the row itself. A refusal (402, 409, 429) leaves no task, no hold, no files.
    """
    served = resolve(gw.catalog, sub.model, sub.params, gw.lifecycle_date(), gw.settings.retired_models)
    variant = gw.catalog.variant(sub.model, sub.action)
    width, height = sub.size or served.size  # the requested model's contract sets the pixels
    tier = gw.tier(who)
    task_id = str(uuid.uuid4())
    refs, records = await _prepare_inputs(gw, who, sub, task_id)
    now = gw.now()
    render = {
        "width": width,
        "height": height,
        "n": sub.n,
        "quality": sub.quality or served.quality or "auto",
        "background": sub.background,
        "output_format": sub.output_format,
        "output_compression": sub.output_compression,
        "partial_images": sub.partial_images,
        "params": served.params,
    }
    # The requested variant's price, even when a successor serves it.
    price = call_price_micro(sub.model, sub.params, sub.n)
    try:
        async with gw.db.transaction() as session:
            settings = gw.settings
            # The balance row lock serializes one account's creations: holds and the concurrency count.
            balance = (
                await ledger.lock(session, who.account_id)
                if settings.billing_enabled or settings.rate_limits_enabled
                else None
            )
            if sub.idempotency_key is not None:
                digest = idempotency.request_hash(sub.fingerprint)
                original = await idempotency.claim(
                    session, who.account_id, sub.idempotency_key, digest, task_id, now
                )
                if original is not None:
                    replay = await store.get_for_account(session, who.account_id, original)
                    await _delete_keys(gw, [r.key for r in records])
                    return Submitted(task=replay, replayed=True)
            if settings.rate_limits_enabled:
                active = await store.count_active(session, who.account_id)
                if active >= tier.max_concurrent:
                    raise RateLimitError(
                        f"{active} tasks are already pending or processing; the {tier.name} tier allows "
                        f"{tier.max_concurrent} at a time. Retry when one ends.",
                        headers={"Retry-After": "1"},
                        extra={"limit": "concurrency", "tier": tier.name},
                    )
            free = settings.billing_enabled and await free_calls.claim(
                session, who.account_id, variant.name, settings.free_calls_per_variant
            )
            task = Task(
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
                render=render,
                inputs=refs,
                images=[],
                callback_url=sub.callback_url,
                client_request_id=sub.client_request_id,
                idempotency_key=sub.idempotency_key,
                price_micro=price,
                charge_micro=price if settings.billing_enabled and not free else 0,
                free_call=free,
                attempts=0,
                created_at=now,
            )
            if balance is not None and settings.billing_enabled:
                await ledger.hold(session, balance, task, now)
            else:
                task.hold_state = ledger.HoldState.NONE
            session.add(task)
            session.add_all(records)
    except BaseException:
        await _delete_keys(gw, [r.key for r in records])
        raise
    enqueue(task.id)
    return Submitted(task=task, replayed=False)


async def _settle(session: AsyncSession, task: Task, status: TaskStatus, now: datetime) -> None:
    """End a task's hold: completed is charged, anything else is not (and its free call returns)."""
    if status is TaskStatus.COMPLETED:
        await ledger.capture(session, task, now)
    elif await ledger.release(session, task, now) and task.free_call:
        await free_calls.give_back(session, task.account_id, task.variant)


async def _ended(session: AsyncSession, task: Task, status: TaskStatus, now: datetime) -> list[str]:
    """In the transaction that ended a task: settle its hold and forget its held inputs.

    Returns the storage keys to delete once the transaction has committed (inputs are not cached).
    """
    await _settle(session, task, status, now)
    files = await store.files_of_task(session, task.id)
    await store.forget_files(session, [f.id for f in files])
    return [f.key for f in files]


async def cancel(gw: Gateway, who: Principal, task_id: str) -> Task:
    async with gw.db.transaction() as session:
        task = await store.get_for_account(session, who.account_id, task_id)
        now = gw.now()
        if not await store.cancel(session, task, now):
            raise ConflictError(
                f"Task {task_id} is already {task.status}; only pending or processing tasks can be canceled."
            )
        keys = await _ended(session, task, TaskStatus.CANCELED, now)
        await session.refresh(task)
    await _delete_keys(gw, keys)
    gw.notifier.task_ended(task_id)
    return task


def _request(task: Task, sources: list[Any], mask: Any) -> ImageRequest:
    render = task.render
    return ImageRequest(
        task_id=task.id,
        model=task.model_served,
        action=Action.EDIT if task.action == ActionName.EDIT_IMAGE else Action.GENERATE,
        prompt=str(render["params"].get("prompt", "")),
        width=int(render["width"]),
        height=int(render["height"]),
        n=int(render["n"]),
        quality=str(render["quality"]),
        background=render["background"],
        output_format=render["output_format"],
        output_compression=int(render["output_compression"]),
        sources=tuple(sources),
        mask=mask,
        partial_images=int(render["partial_images"]),
        extra=dict(render["params"]),
    )


async def _generate(gw: Gateway, task: Task) -> tuple[list[GeneratedImage], Usage | None]:
    refs = [ref for ref in task.inputs if ref.get("role") != "mask"]
    mask_refs = [ref for ref in task.inputs if ref.get("role") == "mask"]
    sources = await inputs.load_all(gw, refs)
    mask = await inputs.load(gw, mask_refs[0], "mask") if mask_refs else None
    request = _request(task, sources, mask)
    provider = gw.providers.get(task.provider)
    finals: dict[int, GeneratedImage] = {}
    usage: Usage | None = None
    async for event in provider.run(request):
        if isinstance(event, FinalImage):
            finals[event.index] = event.image
        elif isinstance(event, Usage):
            usage = event
    if len(finals) != request.n:
        raise ProviderError(f"provider returned {len(finals)} of {request.n} images", code="upstream_error")
    return [finals[i] for i in sorted(finals)], usage


async def _store_outputs(gw: Gateway, task: Task, images: list[GeneratedImage]) -> list[dict[str, Any]]:
    stored = []
    for index, image in enumerate(images):
        ext = EXTENSIONS.get(image.content_type, "bin")
        key = f"outputs/{task.id}/{index}.{ext}"
        await gw.storage.put(key, image.data, image.content_type)
        stored.append(
            {
                "key": key,
                "width": image.width,
                "height": image.height,
                "content_type": image.content_type,
                "bytes": len(image.data),
            }
        )
    return stored


async def run(gw: Gateway, task_id: str) -> bool:
    """Run one task to a terminal status. True when it was handed back for another attempt.

    A CancelledError (shutdown, or a client's cancel) propagates and records nothing:
    a canceled task is already terminal, and a task cut off by shutdown is re-queued
    by recovery on the next start.
    """
    lease = timedelta(seconds=gw.settings.task_timeout_s + 30)
    async with gw.db.transaction() as session:
        if not await store.claim(session, task_id, gw.now(), lease):
            return False
        task = await session.get(Task, task_id)
    assert task is not None
    status, values = TaskStatus.FAILED, dict[str, Any]()
    try:
        async with asyncio.timeout(gw.settings.task_timeout_s):
            images, usage = await _generate(gw, task)
        stored = await _store_outputs(gw, task, images)
        status = TaskStatus.COMPLETED
        values = {
            "images": stored,
            "usage": usage.__dict__ if usage else None,
            "outputs_expire_at": gw.now() + timedelta(seconds=gw.settings.output_retention_s),
        }
    except TimeoutError:
        values = {"error": f"the task ran past {gw.settings.task_timeout_s:g} s", "error_code": "timeout"}
    except ProviderError as exc:
        if exc.retryable and task.attempts < gw.settings.max_attempts:
            async with gw.db.transaction() as session:
                await store.release_lease(session, task_id, gw.now())
            return True
        values = {"error": exc.message, "error_code": exc.code}
    except GatewayError as exc:
        values = {"error": exc.message, "error_code": str(exc.code)}
    except Exception:
        log.exception("task %s failed with an unexpected error", task_id)
        values = {"error": "internal error while generating", "error_code": "server"}
    await _conclude(gw, task, status, values)
    return False


async def _conclude(gw: Gateway, task: Task, status: TaskStatus, values: dict[str, Any]) -> None:
    now = gw.now()
    keys: list[str] = []
    async with gw.db.transaction() as session:
        finished = await store.finish(session, task.id, status, {"completed_at": now, **values})
        if finished:
            keys = await _ended(session, task, status, now)
    if not finished and status is TaskStatus.COMPLETED:
        # Canceled while running: its outputs must not outlive it (the cancel dropped the inputs).
        keys = [image["key"] for image in values.get("images", [])]
    await _delete_keys(gw, keys)
    gw.notifier.task_ended(task.id)


async def recover(gw: Gateway, *, all_processing: bool) -> list[str]:
    """Ids to enqueue after a crash or a stuck worker; fails tasks out of attempts."""
    now = gw.now()
    to_run: list[str] = []
    failed: list[str] = []
    keys: list[str] = []
    async with gw.db.transaction() as session:
        for task in await store.orphaned(session, None if all_processing else now):
            if task.attempts < gw.settings.max_attempts:
                await store.release_lease(session, task.id, now)
                to_run.append(task.id)
            else:
                values = {
                    "completed_at": now,
                    "error": "the worker running this task stopped",
                    "error_code": "worker_lost",
                }
                if await store.finish(session, task.id, TaskStatus.FAILED, values):
                    keys += await _ended(session, task, TaskStatus.FAILED, now)
                    failed.append(task.id)
        # Holds older than any task may live: the task is failed and the hold released.
        deadline = (
            now - timedelta(seconds=gw.settings.task_timeout_s * gw.settings.max_attempts) - INPUT_GRACE
        )
        for task in await store.active_before(session, deadline):
            values = {
                "completed_at": now,
                "error": "the task did not finish in time",
                "error_code": "timeout",
            }
            if await store.fail_active(session, task.id, values):
                keys += await _ended(session, task, TaskStatus.FAILED, now)
                failed.append(task.id)
        if all_processing:  # start-up: nothing is queued in this process yet
            to_run.extend(await store.pending_ids(session))
    await _delete_keys(gw, keys)
    for task_id in failed:
        gw.notifier.task_ended(task_id)
    return to_run


async def sweep_expired(gw: Gateway) -> int:
    """Delete outputs past retention and input files past their time; the rows stay."""
    now = gw.now()
    removed = 0
    async with gw.db.transaction() as session:
        for task in await store.expired_outputs(session, now):
            for image in task.images:
                with contextlib.suppress(Exception):
                    await gw.storage.delete(image["key"])
                removed += 1
            task.outputs_deleted_at = now
        files = await store.expired_files(session, now)
        for record in files:
            await gw.storage.delete(record.key)
            removed += 1
        await store.forget_files(session, [f.id for f in files])
    return removed


__all__ = ["Submission", "Submitted", "cancel", "recover", "run", "submit", "sweep_expired"]
