"""Run one task on a worker: claim it, keep its lease alive, call the provider, end it.

A run is fenced by its attempt number: the lease renewal, a retry and the end all check
that this attempt still holds the task, so a second process that took the task over
(after this one's lease ran out) and this one never both end it, and each deletes only
the bytes it wrote (output keys are unique per run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from imagegate.catalog import ActionName
from imagegate.db.models import Task
from imagegate.errors import GatewayError
from imagegate.gateway import Gateway
from imagegate.providers import routing
from imagegate.providers.base import Action, GeneratedImage, ImageRequest, ProviderError
from imagegate.providers.routing import Routed
from imagegate.storage.media import EXTENSIONS
from imagegate.tasks import inputs, store
from imagegate.tasks.ending import Fence, Outcome, delete_keys, end_task
from imagegate.tasks.status import TaskStatus

log = logging.getLogger("imagegate.tasks")


def _request(task: Task, sources: list[Any], mask: Any, markup: Any, upstream_model: str) -> ImageRequest:
    render = task.render
    return ImageRequest(
        task_id=task.id,
        model=upstream_model,
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
        markup=markup,
        partial_images=int(render["partial_images"]),
        extra=dict(render["params"]),
        service=task.service,
    )


async def _generate(gw: Gateway, task: Task) -> Routed:
    refs = [ref for ref in task.inputs if ref.get("role") not in ("mask", "markup")]
    layers = {ref["role"]: ref for ref in task.inputs if ref.get("role") in ("mask", "markup")}
    sources = await inputs.load_all(gw, refs)
    mask = await inputs.load(gw, layers["mask"], "mask") if "mask" in layers else None
    markup = await inputs.load(gw, layers["markup"], "markup") if "markup" in layers else None
    served = gw.catalog.find(task.model_served)
    upstream = served.upstream_model if served else task.model_served
    request = _request(task, sources, mask, markup, upstream)
    route = gw.route(served) if served else [task.provider]
    return await routing.generate(gw.providers, route, request)


async def _store_outputs(gw: Gateway, task: Task, images: list[GeneratedImage]) -> list[dict[str, Any]]:
    """Put this run's images under keys no other run uses; on any error, remove what was put."""
    run_id = uuid.uuid4().hex[:12]
    stored: list[dict[str, Any]] = []
    try:
        for index, image in enumerate(images):
            key = f"outputs/{task.id}/{run_id}-{index}.{EXTENSIONS.get(image.content_type, 'bin')}"
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
    except BaseException:
        await delete_keys(gw, [item["key"] for item in stored])
        raise
    return stored


@contextlib.asynccontextmanager
async def _leased(gw: Gateway, task_id: str, attempt: int) -> AsyncIterator[None]:
    """Renew the lease every third of it while the body runs. When the task stops being this
    attempt's (canceled in another process, or taken over), the body is canceled."""
    lease_s = gw.settings.lease_s
    body = asyncio.current_task()
    assert body is not None
    lost = False

    async def renew() -> None:
        nonlocal lost
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                async with gw.db.transaction() as session:
                    held = await store.renew(session, task_id, attempt, gw.now() + timedelta(seconds=lease_s))
            except Exception:
                log.warning("could not renew the lease of task %s; trying again", task_id, exc_info=True)
                continue
            if not held:
                lost = True
                body.cancel()
                return

    renewer = asyncio.create_task(renew(), name=f"lease-{task_id}")
    try:
        yield
    except asyncio.CancelledError:
        if lost and body.uncancel() == 0:
            raise _LeaseLost() from None
        raise
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


class _LeaseLost(Exception):
    """The task ended elsewhere (or another worker took it) while this run was working."""


async def _hand_back(gw: Gateway, task_id: str, attempt: int) -> None:
    with contextlib.suppress(Exception):  # if this fails, the lease runs out and recovery takes it
        async with gw.db.transaction() as session:
            await store.hand_back(session, task_id, attempt, gw.now())


async def run(gw: Gateway, task_id: str) -> bool:
    """Run one task to a terminal status. True when it was handed back for another attempt.

    Cancelled from outside (shutdown), the run hands the task back without spending its
    attempt, then lets the CancelledError through; a task canceled by its client is already
    terminal, so handing back changes nothing.
    """
    lease = timedelta(seconds=gw.settings.lease_s)
    async with gw.db.transaction() as session:
        task = await store.claim(session, task_id, gw.now(), lease)
    if task is None:
        return False
    attempt = task.attempts
    fence = Fence(attempt=attempt)
    try:
        async with _leased(gw, task_id, attempt):
            outcome = await _attempt(gw, task)
            if outcome is None:  # retryable: back in the queue, attempt spent
                async with gw.db.transaction() as session:
                    await store.release_lease(session, task_id, attempt, gw.now())
                return True
            await end_task(gw, task_id, outcome, fence)
    except _LeaseLost:
        log.info("task %s ended elsewhere while running; this run stopped", task_id)
    except asyncio.CancelledError:
        await _hand_back(gw, task_id, attempt)
        raise
    return False


async def _attempt(gw: Gateway, task: Task) -> Outcome | None:
    """What one provider call came to; None when it failed in a way worth another attempt."""
    try:
        async with asyncio.timeout(gw.settings.task_timeout_s):
            routed = await _generate(gw, task)
    except TimeoutError:
        return Outcome.failed("timeout", f"the task ran past {gw.settings.task_timeout_s:g} s")
    except ProviderError as exc:
        if exc.retryable and task.attempts < gw.settings.max_attempts:
            return None
        provider = exc.provider if isinstance(exc, routing.RouteFailed) else None
        return Outcome.failed(exc.code, exc.message, provider=provider)
    except GatewayError as exc:
        return Outcome.failed(str(exc.code), exc.message)
    except Exception:
        log.exception("task %s failed with an unexpected error", task.id)
        return Outcome.failed("server", "internal error while generating")
    stored = await _store_outputs(gw, task, routed.images)
    usage = routed.usage.__dict__ if routed.usage else None
    return Outcome(TaskStatus.COMPLETED, images=stored, usage=usage, provider=routed.provider)


__all__ = ["run"]
