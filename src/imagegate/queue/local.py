"""The embedded queue: an asyncio queue and a pool of worker coroutines in the server process.

Tasks are taken by a lease that the running worker renews, so a second process on the same
database never takes a task that is alive elsewhere. A sweeper takes over tasks whose lease
ran out (their worker crashed), fails those out of attempts, and deletes expired files.
"""

from __future__ import annotations

import asyncio
import logging

from imagegate.gateway import Gateway
from imagegate.tasks import recovery, runner
from imagegate.webhooks import delivery as webhooks

log = logging.getLogger("imagegate.queue")

RETRY_DELAY_S = 1.0
STOP_GRACE_S = 5.0  # how long stop() waits for runs to hand their tasks back


class LocalQueue:
    def __init__(self, gw: Gateway, workers: int, *, sweep: bool = True) -> None:
        self.gw = gw
        self.size = workers
        self.sweep = sweep
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[bool]] = {}
        self._retries: set[asyncio.TimerHandle] = set()
        self._stopping = False

    def enqueue(self, task_id: str) -> None:
        if self._stopping or task_id in self._queued or task_id in self._running:
            return
        self._queued.add(task_id)
        self._queue.put_nowait(task_id)

    async def start(self) -> None:
        await self.recover()
        self._workers = [asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(self.size)]
        if self.sweep:
            self._workers.append(asyncio.create_task(self._sweep(), name="sweeper"))
            self._workers.append(asyncio.create_task(self._webhooks(), name="webhooks"))

    async def recover(self) -> None:
        for task_id in await recovery.recover(self.gw):
            self.enqueue(task_id)

    async def stop(self) -> None:
        self._stopping = True
        for handle in self._retries:
            handle.cancel()
        jobs = list(self._running.values())
        for job in jobs:
            job.cancel()  # each run hands its task back, attempt unspent
        if jobs:
            await asyncio.wait(jobs, timeout=STOP_GRACE_S)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def drain(self) -> None:
        await self._queue.join()
        while self._retries:  # a retry timer will queue more
            await asyncio.sleep(0.01)
            await self._queue.join()

    async def _work(self) -> None:
        while True:
            task_id = await self._queue.get()
            self._queued.discard(task_id)
            job = asyncio.create_task(runner.run(self.gw, task_id), name=f"task-{task_id}")
            self._running[task_id] = job
            retry = False
            try:
                retry = await job
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    job.cancel()
                    raise
                # the job alone was canceled: by stop(), which hands its task back
            except Exception:
                log.exception("worker crashed on task %s", task_id)
            finally:
                self._running.pop(task_id, None)
                self._queue.task_done()
            if retry and not self._stopping:
                self._retry_later(task_id)

    def _retry_later(self, task_id: str) -> None:
        def fire() -> None:
            self._retries.discard(handle)
            self.enqueue(task_id)

        handle = asyncio.get_running_loop().call_later(RETRY_DELAY_S, fire)
        self._retries.add(handle)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.gw.settings.sweep_interval_s)
            try:
                await recovery.sweep_expired(self.gw)
                await webhooks.sweep(self.gw)
                await self.recover()
            except Exception:
                log.exception("sweep failed; trying again in %s s", self.gw.settings.sweep_interval_s)

    async def _webhooks(self) -> None:
        """Send due webhook attempts; several processes may run this at once (leases)."""
        while True:
            await asyncio.sleep(self.gw.settings.webhook_poll_s)
            try:
                while await webhooks.deliver_due(self.gw) >= webhooks.BATCH:
                    pass  # a full batch: more may be due
            except Exception:
                log.exception("webhook pass failed; trying again in %s s", self.gw.settings.webhook_poll_s)


__all__ = ["LocalQueue"]
