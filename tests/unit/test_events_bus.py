"""The in-process bus: ordered ids, resume, bounded history, cancel requests, a graceful stop."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.events import BusClosed, EventKind, LocalBus
from imagegate.events.local import HISTORY


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def status(task_id: str, value: str) -> dict[str, str]:
    return {"task_id": task_id, "status": value}


async def test_a_subscriber_gets_history_then_live_events_up_to_the_end() -> None:
    bus = LocalBus(id_floor=1000)
    first = await bus.publish("t", EventKind.STATUS, status("t", "pending"))
    assert first.id == 1001
    async with bus.subscribe("t") as events:
        assert [e.id for e in events.backlog()] == [1001]
        listener = asyncio.create_task(_collect(events))
        await bus.publish("t", EventKind.PROGRESS, {"task_id": "t", "progress": 0.5})
        await bus.publish("t", EventKind.COMPLETED, status("t", "completed"))
        got = await listener
    assert [(e.id, e.kind) for e in got] == [
        (1001, EventKind.STATUS),
        (1002, EventKind.PROGRESS),
        (1003, EventKind.COMPLETED),
    ]


async def _collect(events: object) -> list[object]:
    return [event async for event in events]  # type: ignore[attr-defined]


async def test_resuming_after_an_id_gives_exactly_what_follows() -> None:
    bus = LocalBus(id_floor=0)
    for fraction in (0.1, 0.2, 0.3):
        await bus.publish("t", EventKind.PROGRESS, {"task_id": "t", "progress": fraction})
    await bus.publish("t", EventKind.FAILED, status("t", "failed"))
    async with bus.subscribe("t", after=2) as events:
        assert [e.id for e in events.backlog()] == [3, 4]
        assert [e.id async for e in events] == [3, 4]


async def test_a_timed_out_wait_loses_nothing() -> None:
    bus = LocalBus(id_floor=0)
    async with bus.subscribe("t") as events:
        assert await events.get(0.01) is None
        await bus.publish("t", EventKind.STATUS, status("t", "processing"))
        event = await events.get(0.01)
        assert event is not None and event.id == 1


async def test_history_is_bounded_by_dropping_superseded_progress_only() -> None:
    bus = LocalBus(id_floor=0)
    await bus.publish("t", EventKind.STATUS, status("t", "processing"))
    for k in range(3 * HISTORY):
        await bus.publish("t", EventKind.PROGRESS, {"task_id": "t", "progress": k / (3 * HISTORY)})
        if k % 50 == 0:
            data = {"task_id": "t", "index": 0, "partial_index": k, "key": "k", "expires": 0}
            await bus.publish("t", EventKind.PARTIAL_IMAGE, data)
    await bus.publish("t", EventKind.COMPLETED, status("t", "completed"))
    async with bus.subscribe("t") as events:
        held = events.backlog()
    assert len(held) == HISTORY
    kinds = [e.kind for e in held]
    assert kinds[0] is EventKind.STATUS and kinds[-1] is EventKind.COMPLETED
    assert kinds.count(EventKind.PARTIAL_IMAGE) == len(range(0, 3 * HISTORY, 50)), "no partial dropped"
    assert [e.id for e in held] == sorted(e.id for e in held)
    assert held[-2].kind is EventKind.PROGRESS and held[-2].data["progress"] == (3 * HISTORY - 1) / (
        3 * HISTORY
    )


async def test_ended_tasks_are_forgotten_after_a_while_and_the_number_held_is_capped() -> None:
    clock = Clock()
    bus = LocalBus(now=clock, keep_ended_s=60, keep_idle_s=600, max_topics=100, id_floor=0)
    await bus.publish("old", EventKind.COMPLETED, status("old", "completed"))
    await bus.publish("running", EventKind.STATUS, status("running", "processing"))
    clock.t = 61
    await bus.publish("new", EventKind.STATUS, status("new", "pending"))
    async with bus.subscribe("old") as events:
        assert events.backlog() == [], "the ended task's history went after keep_ended_s"
    async with bus.subscribe("running") as events:
        assert len(events.backlog()) == 1, "an active one stays"
    for k in range(1_000):
        await bus.publish(f"task-{k}", EventKind.COMPLETED, status(f"task-{k}", "completed"))
    assert len(bus) <= 100


async def test_a_task_someone_listens_to_is_never_dropped() -> None:
    clock = Clock()
    bus = LocalBus(now=clock, keep_ended_s=1, keep_idle_s=1, max_topics=2, id_floor=0)
    async with bus.subscribe("watched") as events:
        await bus.publish("watched", EventKind.STATUS, status("watched", "pending"))
        clock.t = 100
        for k in range(10):
            await bus.publish(f"other-{k}", EventKind.COMPLETED, status(f"other-{k}", "completed"))
        await bus.publish("watched", EventKind.COMPLETED, status("watched", "completed"))
        assert [e.kind async for e in events] == [EventKind.STATUS, EventKind.COMPLETED]


async def test_cancel_requests_reach_the_registered_run_until_it_unregisters() -> None:
    bus = LocalBus()
    stopped: list[str] = []
    off = bus.on_cancel("t", lambda: stopped.append("t"))
    await bus.request_cancel("other")
    assert stopped == []
    await bus.request_cancel("t")
    assert stopped == ["t"]
    off()
    await bus.request_cancel("t")
    assert stopped == ["t"]


async def test_close_ends_every_subscription_and_refuses_new_ones() -> None:
    bus = LocalBus()
    async with bus.subscribe("t") as events:
        waiting = asyncio.create_task(events.get())
        await asyncio.sleep(0)
        bus.close()
        with pytest.raises(BusClosed):
            await waiting
        assert [e async for e in events] == []
    with pytest.raises(BusClosed):
        async with bus.subscribe("t"):
            pass


async def test_ids_start_above_the_time_the_bus_was_made() -> None:
    earlier = LocalBus()
    event = await earlier.publish("t", EventKind.STATUS, status("t", "pending"))
    later = LocalBus()
    again = await later.publish("t", EventKind.STATUS, status("t", "processing"))
    assert again.id > event.id, "a restarted process gives ids above those clients saw before"


async def test_ids_keep_increasing_for_a_task_whose_history_was_dropped() -> None:
    clock = Clock()
    bus = LocalBus(now=clock, keep_idle_s=10, max_topics=1, id_floor=0)
    first = await bus.publish("slow", EventKind.STATUS, status("slow", "processing"))
    clock.t = 100
    await bus.publish("other", EventKind.STATUS, status("other", "pending"))  # drops "slow"
    again = await bus.publish("slow", EventKind.PROGRESS, {"task_id": "slow", "progress": 0.5})
    assert again.id > first.id, "a client resuming after the first id still gets the second"
    async with bus.subscribe("slow", after=first.id) as events:
        assert [e.id for e in events.backlog()] == [again.id]
