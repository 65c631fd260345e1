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
from datetime import timedelta
from typing import Any, Protocol

from imagegate.accounts.store import Principal
from imagegate.catalog import ActionName, ModelSpec
from imagegate.catalog.lifecycle import resolve
from imagegate.db.models import Task
from imagegate.errors import ConflictError, GatewayError
from imagegate.gateway import Gateway
from imagegate.providers.base import (
    CONTENT_TYPES,
    Action,
    FinalImage,
    GeneratedImage,
    ImageRequest,
    ProviderError,
    Usage,
)
from imagegate.storage.media import EXTENSIONS
from imagegate.tasks import inputs, store
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


async def submit(gw: Gateway, who: Principal, sub: Submission, enqueue: Enqueue) -> Task:
    served = resolve(gw.catalog, sub.model, sub.params, gw.today(), gw.settings.retired_models)
    variant = gw.catalog.variant(sub.model, sub.action)
    width, height = sub.size or served.model.render.size_for(served.params)
    task_id = str(uuid.uuid4())
    refs: list[dict[str, Any]] = []
    held: list[Upload] = list(sub.uploads)
    for index, url in enumerate(sub.source_urls):
        ref = await inputs.classify(gw, url, f"source_image_urls[{index}]")
        if isinstance(ref, Upload):
            refs.append({"kind": "held", "index": len(held)})
            held.append(ref)
        else:
            refs.append(ref)
    now = gw.now()
    ttl = timedelta(seconds=gw.settings.task_timeout_s * gw.settings.max_attempts) + INPUT_GRACE
    render = {
        "width": width,
        "height": height,
        "n": sub.n,
        "quality": sub.quality or str(served.params.get("quality", "auto")),
        "background": sub.background,
        "output_format": sub.output_format,
        "output_compression": sub.output_compression,
        "partial_images": sub.partial_images,
        "params": served.params,
    }
    async with gw.db.transaction() as session:
        records = [
            await inputs.hold(gw, session, who.account_id, upload, task_id=task_id, ttl=ttl)
            for upload in held
        ]
        source_refs = [{"kind": "storage", "key": records[i].key} for i in range(len(sub.uploads))]
        for ref in refs:
            source_refs.append(
                {"kind": "storage", "key": records[ref["index"]].key} if ref["kind"] == "held" else ref
            )
        if sub.mask is not None:
            mask_record = await inputs.hold(gw, session, who.account_id, sub.mask, task_id=task_id, ttl=ttl)
            source_refs.append({"kind": "storage", "key": mask_record.key, "role": "mask"})
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
            inputs=source_refs,
            images=[],
            callback_url=sub.callback_url,
            client_request_id=sub.client_request_id,
            attempts=0,
            created_at=now,
        )
        session.add(task)
    enqueue(task.id)
    return task


async def cancel(gw: Gateway, who: Principal, task_id: str) -> Task:
    async with gw.db.transaction() as session:
        task = await store.get_for_account(session, who.account_id, task_id)
        if not await store.cancel(session, task, gw.now()):
            raise ConflictError(
                f"Task {task_id} is already {task.status}; only pending or processing tasks can be canceled."
            )
    async with gw.db.transaction() as session:
        task = await store.get_for_account(session, who.account_id, task_id)
    await _drop_inputs(gw, task_id)
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
    async with gw.db.transaction() as session:
        finished = await store.finish(session, task.id, status, {"completed_at": gw.now(), **values})
    if not finished and status is TaskStatus.COMPLETED:
        # Canceled while running: its outputs must not outlive it.
        for image in values.get("images", []):
            await gw.storage.delete(image["key"])
    await _drop_inputs(gw, task.id)
    gw.notifier.task_ended(task.id)


async def _drop_inputs(gw: Gateway, task_id: str) -> None:
    """Inputs are not cached: a task's held input bytes go when it ends."""
    async with gw.db.transaction() as session:
        files = await store.files_of_task(session, task_id)
        for record in files:
            await gw.storage.delete(record.key)
        await store.forget_files(session, [f.id for f in files])


async def recover(gw: Gateway, *, all_processing: bool) -> list[str]:
    """Ids to enqueue after a crash or a stuck worker; fails tasks out of attempts."""
    now = gw.now()
    to_run: list[str] = []
    failed: list[str] = []
    async with gw.db.transaction() as session:
        for task in await store.orphaned(session, None if all_processing else now):
            if task.attempts < gw.settings.max_attempts:
                await store.release_lease(session, task.id, now)
                to_run.append(task.id)
            else:
                await store.finish(
                    session,
                    task.id,
                    TaskStatus.FAILED,
                    {
                        "completed_at": now,
                        "error": "the worker running this task stopped",
                        "error_code": "worker_lost",
                    },
                )
                failed.append(task.id)
        if all_processing:  # start-up: nothing is queued in this process yet
            to_run.extend(await store.pending_ids(session))
    for task_id in failed:
        await _drop_inputs(gw, task_id)
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


__all__ = ["CONTENT_TYPES", "Submission", "cancel", "recover", "run", "submit", "sweep_expired"]
