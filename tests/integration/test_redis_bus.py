"""The Redis bus on the suite's Redis server: two buses on two clients stand for two processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from imagegate.events import BusClosed, Event, EventKind
from imagegate.events.redis import HISTORY, KEEP_ENDED_S, RedisBus, stream_key
from tests.services import Services

pytestmark = pytest.mark.one_profile("the Redis bus itself, on the suite's Redis server")


@pytest.fixture
async def buses(services: Services) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    clients = [Redis.from_url(services.redis.url) for _ in range(2)]
    opened = [await RedisBus.open(client) for client in clients]
    yield opened[0], opened[1]
    for bus, client in zip(opened, clients, strict=True):
        await bus.aclose()
        await client.aclose()


def new_task() -> str:
    return f"task-{uuid.uuid4().hex[:12]}"


def status(task_id: str, value: str) -> dict[str, str]:
    return {"task_id": task_id, "status": value}


async def collect(events: Any) -> list[Event]:
    return [event async for event in events]


async def test_a_listener_in_one_process_hears_history_then_live_events_of_another(
    buses: tuple[RedisBus, RedisBus],
) -> None:
    worker, api = buses
    task = new_task()
    first = await worker.publish(task, EventKind.STATUS, status(task, "processing"))
    async with api.subscribe(task) as events:
        assert [e.id for e in events.backlog()] == [first.id]
        listener = asyncio.create_task(collect(events))
        published = [first]
        for fraction in (0.25, 0.5):  # from both processes: ids still increase per task
            published.append(
                await worker.publish(task, EventKind.PROGRESS, {"task_id": task, "progress": fraction})
            )
            published.append(
                await api.publish(task, EventKind.PROGRESS, {"task_id": task, "progress": fraction})
            )
        published.append(await worker.publish(task, EventKind.COMPLETED, status(task, "completed")))
        got = await asyncio.wait_for(listener, 10)
    assert [(e.id, e.kind, e.data) for e in got] == [(e.id, e.kind, e.data) for e in published]
    ids = [e.id for e in got]
    assert ids == sorted(set(ids))
    assert 0 < await api.redis.ttl(stream_key(task)) <= KEEP_ENDED_S


async def test_resuming_after_an_id_gives_exactly_what_follows_and_a_timed_out_wait_loses_nothing(
    buses: tuple[RedisBus, RedisBus],
) -> None:
    worker, api = buses
    task = new_task()
    sent = [
        await worker.publish(task, EventKind.PROGRESS, {"task_id": task, "progress": p}) for p in (0.1, 0.2)
    ]
    async with api.subscribe(task, after=sent[0].id) as events:
        assert [e.id for e in events.backlog()] == [sent[1].id]
        assert (await events.get(1)) == sent[1]
        assert await events.get(0.01) is None
        end = await worker.publish(task, EventKind.FAILED, status(task, "failed"))
        assert await events.get(10) == end
        assert events.last_id >= end.id
    async with api.subscribe(task, after=end.id) as events:  # a reconnect after the end
        assert events.backlog() == []
        assert await events.get(0.01) is None


async def test_history_is_bounded_and_ids_outlive_it(buses: tuple[RedisBus, RedisBus]) -> None:
    worker, api = buses
    task = new_task()
    sent = [
        await worker.publish(task, EventKind.PROGRESS, {"task_id": task, "progress": i / 1000})
        for i in range(HISTORY + 5)
    ]
    async with api.subscribe(task) as events:
        assert [e.id for e in events.backlog()] == [e.id for e in sent[-HISTORY:]]
    await api.redis.delete(stream_key(task))  # expired: the task's history is gone
    async with api.subscribe(task) as events:
        assert events.backlog() == [] and events.last_id > sent[-1].id
        again = await worker.publish(task, EventKind.STATUS, status(task, "processing"))
        assert again.id > events.last_id - 1 and again.id > sent[-1].id
        assert await events.get(10) == again


async def test_a_cancel_reaches_the_process_running_the_task_once(buses: tuple[RedisBus, RedisBus]) -> None:
    worker, api = buses
    task, other = new_task(), new_task()
    stopped: list[str] = []
    heard = asyncio.Event()

    def stop(where: str) -> None:
        stopped.append(where)
        heard.set()

    off = worker.on_cancel(task, lambda: stop("worker"))
    api.on_cancel(other, lambda: stop("api"))
    await api.request_cancel(other)  # the requesting process's own run: at once
    assert stopped == ["api"]
    heard.clear()
    await api.request_cancel(task)
    await asyncio.wait_for(heard.wait(), 10)
    assert stopped == ["api", "worker"]
    off()
    heard.clear()
    await api.request_cancel(task)  # nobody runs it now
    await worker.request_cancel(other)
    await asyncio.wait_for(heard.wait(), 10)
    marker = new_task()  # published after the echoes of api's own requests: heard after them
    api.on_cancel(marker, lambda: stop("marker"))
    heard.clear()
    await worker.request_cancel(marker)
    await asyncio.wait_for(heard.wait(), 10)
    assert stopped.pop() == "marker"
    assert stopped == ["api", "worker", "api"]  # once each: not again through Redis


async def test_close_ends_every_subscription_and_refuses_new_ones(buses: tuple[RedisBus, RedisBus]) -> None:
    worker, api = buses
    task = new_task()
    async with api.subscribe(task) as events:
        waiting = asyncio.create_task(events.get())
        await asyncio.sleep(0)
        api.close()
        with pytest.raises(BusClosed):
            await asyncio.wait_for(waiting, 10)
    with pytest.raises(BusClosed):
        async with api.subscribe(task):
            pass
    assert (
        await worker.publish(task, EventKind.STATUS, status(task, "pending"))
    ).id > 0  # publishing goes on
