"""Run one task on a worker: claim it, keep its lease alive, call the provider, end it.

A run is fenced by its attempt number: the lease renewal, a retry and the end all check
that this attempt still holds the task, so a second process that took the task over
(after this one's lease ran out) and this one never both end it, and each deletes only
the bytes it wrote (output keys are unique per run).

The run tells the bus its status, its provider's progress and partial images. A client's
cancel ends the task where the request arrived, then asks over the bus that the process
running it stop: the provider call is cancelled (the offline renderer between stages, an
upstream request by closing it), and the run ends without touching the ended task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

from imagegate.billing.upstream_cost import task_cost_micro
from imagegate.catalog import ActionName
from imagegate.db.models import Task
from imagegate.errors import GatewayError
from imagegate.gateway import Gateway
from imagegate.providers import routing
from imagegate.providers.base import Action, GeneratedImage, ImageRequest, ProviderError
from imagegate.providers.routing import Routed
from imagegate.storage.media import EXTENSIONS
from imagegate.tasks import inputs, publish, store
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


async def _generate(gw: Gateway, task: Task, tried: routing.Attempts, on_event: publish.Relay) -> Routed:
    refs = [ref for ref in task.inputs if ref.get("role") not in ("mask", "markup")]
    layers = {ref["role"]: ref for ref in task.inputs if ref.get("role") in ("mask", "markup")}
    sources = await inputs.load_all(gw, refs)
    mask = await inputs.load(gw, layers["mask"], "mask") if "mask" in layers else None
    markup = await inputs.load(gw, layers["markup"], "markup") if "markup" in layers else None
    served = gw.catalog.find(task.model_served)
    upstream = served.upstream_model if served else task.model_served
    request = _request(task, sources, mask, markup, upstream)
    route = gw.route(served) if served else [task.provider]
    return await routing.generate(gw.providers, route, request, tried, on_event)


def _upstream_cost(gw: Gateway, task: Task, routed: Routed) -> int:
    served = gw.catalog.find(task.model_served)
    placeholder = gw.providers.get(routed.provider).placeholder
    usage = routed.usage.__dict__ if routed.usage else None
    return task_cost_micro(served.token_prices if served else None, usage, placeholder=placeholder)


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
                async with gw.db.write() as tx:
                    held = await store.renew(tx, task_id, attempt, gw.now() + timedelta(seconds=lease_s))
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


class _Stop:
    """Cancels a run's provider call when a cancel of its task is requested over the bus.
    Only the call is cancelled: the run then stores nothing and its end finds the task ended."""

    def __init__(self) -> None:
        self.requested = False
        self._call: asyncio.Task[Any] | None = None

    def __call__(self) -> None:
        self.requested = True
        if self._call is not None:
            self._call.cancel()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        self._call = asyncio.current_task()
        if self.requested and self._call is not None:  # asked before the call began
            self._call.cancel()
        try:
            yield
        finally:
            self._call = None


async def _hand_back(gw: Gateway, task_id: str, attempt: int) -> None:
    with contextlib.suppress(Exception):  # if this fails, the lease runs out and recovery takes it
        async with gw.db.transaction() as session:
            await store.hand_back(session, task_id, attempt, gw.now())


async def run(gw: Gateway, task_id: str) -> bool:
    """Run one task to a terminal status. True when it was handed back for another attempt.

    Cancelled from outside (shutdown), the run hands the task back without spending its
    attempt, then lets the CancelledError through. A cancel requested by the task's client
    (over the bus, from any process) stops only the provider call, and the run returns: the
    task has already ended canceled and released its hold.
    """
    stop = _Stop()
    off = gw.bus.on_cancel(task_id, stop)  # before the claim: no request can fall in between
    try:
        return await _run(gw, task_id, stop)
    finally:
        off()


async def _run(gw: Gateway, task_id: str, stop: _Stop) -> bool:
    lease = timedelta(seconds=gw.settings.lease_s)
    async with gw.db.write() as tx:
        task = await store.claim(tx, task_id, gw.now(), lease)
    if task is None:
        return False
    attempt = task.attempts
    await publish.status(gw, task_id, TaskStatus.PROCESSING)
    fence = Fence(attempt=attempt)
    tried: routing.Attempts = list(task.provider_attempts or [])  # earlier runs' calls, then ours
    try:
        async with _leased(gw, task_id, attempt):
            outcome = await _attempt(gw, task, stop, tried)
            if outcome is None:  # retryable: back in the queue, attempt spent
                async with gw.db.transaction() as session:
                    await store.release_lease(session, task_id, attempt, gw.now(), tried)
                return True
            await end_task(gw, task_id, outcome, fence)
    except _LeaseLost:
        log.info("task %s ended elsewhere while running; this run stopped", task_id)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if stop.requested and current is not None and current.uncancel() == 0:
            log.info("task %s was canceled by its client; its provider call stopped", task_id)
            return False
        await _hand_back(gw, task_id, attempt)
        raise
    return False


async def _attempt(gw: Gateway, task: Task, stop: _Stop, tried: routing.Attempts) -> Outcome | None:
    """What one provider call came to; None when it failed in a way worth another attempt.
    Each provider call is appended to ``tried`` as it ends."""
    try:
        with stop.scope():
            async with asyncio.timeout(gw.settings.task_timeout_s):
                routed = await _generate(gw, task, tried, publish.Relay(gw, task))
    except TimeoutError:
        if tried and tried[-1]["error_code"] == routing.CANCELED:
            tried[-1]["error_code"] = "timeout"
        message = f"the task ran past {gw.settings.task_timeout_s:g} s"
        return Outcome.failed("timeout", message, attempts=tried)
    except ProviderError as exc:
        if exc.retryable and task.attempts < gw.settings.max_attempts:
            return None
        provider = exc.provider if isinstance(exc, routing.RouteFailed) else None
        return Outcome.failed(exc.code, exc.message, provider=provider, attempts=tried)
    except GatewayError as exc:
        return Outcome.failed(str(exc.code), exc.message, attempts=tried)
    except Exception:
        log.exception("task %s failed with an unexpected error", task.id)
        return Outcome.failed("server", "internal error while generating", attempts=tried)
    stored = await _store_outputs(gw, task, routed.images)
    if task.face == "openai":
        gw.relay.keep(task.id, stored, routed.images)
    usage = routed.usage.__dict__ if routed.usage else None
    return Outcome(
        TaskStatus.COMPLETED,
        images=stored,
        usage=usage,
        provider=routed.provider,
        attempts=tried,
        upstream_cost_micro=_upstream_cost(gw, task, routed),
    )


__all__ = ["run"]
